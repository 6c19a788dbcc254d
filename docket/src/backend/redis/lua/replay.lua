-- Queue a dead letter again as a first attempt, if its key is free.
--
-- KEYS: stream, index, schedule, parked, dead
-- ARGV: key, message, now (ms)
-- Returns 1 when queued, 0 when there is no such dead letter or a live task holds the key.
local stream, index, schedule, parked, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local key, message, now = ARGV[1], ARGV[2], tonumber(ARGV[3])

if redis.call('HEXISTS', dead, key) == 0 or redis.call('HEXISTS', index, key) == 1 then
  return 0
end
store(stream, index, schedule, parked, key, message, now, now)
redis.call('HDEL', dead, key)
return 1
