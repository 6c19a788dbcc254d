-- Remove the waiting task of a key.
--
-- KEYS: stream, index, schedule, parked
-- ARGV: key
-- Returns 1 when a waiting task was removed, 0 when none was waiting (absent, or running).
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local key = ARGV[1]

local current = redis.call('HGET', index, key)
if not current then
  return 0
end
if current == 's' then
  redis.call('ZREM', schedule, key)
  redis.call('HDEL', parked, key)
elseif #redis.call('XPENDING', stream, 'workers', current, current, 1) > 0 then
  return 0
else
  redis.call('XDEL', stream, current)
end
redis.call('HDEL', index, key)
return 1
