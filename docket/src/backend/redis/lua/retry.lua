-- Settle a failed delivery and store its next attempt, unless a newer task holds its key.
--
-- KEYS: stream, index, schedule, parked
-- ARGV: id, key, message (the next attempt), due (ms), now (ms)
-- Returns 1 when the next attempt was stored, 0 when a newer task superseded it.
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, key, message, due, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])

redis.call('XACK', stream, 'workers', id)
redis.call('XDEL', stream, id)
local current = redis.call('HGET', index, key)
if current and current ~= id then
  return 0
end

store(stream, index, schedule, parked, key, message, due, now)
return 1
