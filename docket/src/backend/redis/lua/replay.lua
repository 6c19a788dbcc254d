-- Queue a dead letter again as a first attempt, if its key is free.
--
-- include: index, store
-- KEYS: stream, index, schedule, parked, dead, died
-- ARGV: key, message, now (ms)
-- Returns 1 when queued, 0 when there is no such dead letter or a live task holds the key.
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local dead, died = KEYS[5], KEYS[6]
local key, message, now = ARGV[1], ARGV[2], tonumber(ARGV[3])

if redis.call('HEXISTS', dead, key) == 0 or not is_free(redis.call('HGET', index, key)) then
  return 0
end
store(stream, index, schedule, parked, key, message, now, now)
redis.call('HDEL', dead, key)
redis.call('ZREM', died, key)
return 1
