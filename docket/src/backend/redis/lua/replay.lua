-- Queue a dead letter again as a first attempt, if its key is free.
--
-- KEYS: stream, index, dead
-- ARGV: key, message
-- Returns 1 when queued, 0 when there is no such dead letter or a live task holds the key.
local stream, index, dead = KEYS[1], KEYS[2], KEYS[3]
local key, message = ARGV[1], ARGV[2]

if redis.call('HEXISTS', dead, key) == 0 or redis.call('HEXISTS', index, key) == 1 then
  return 0
end
local id = redis.call('XADD', stream, '*', 'k', key, 'm', message)
redis.call('HSET', index, key, id)
redis.call('HDEL', dead, key)
return 1
