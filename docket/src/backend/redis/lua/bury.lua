-- Settle a delivery that cannot or may not run again, keeping it as a dead letter.
--
-- KEYS: stream, index, dead
-- ARGV: id, key, dead letter, always ('1': keep it even when a newer task holds the key, for
--       entries that never were a docket task)
-- Returns 1 when the dead letter was kept, 0 when a newer task holds the key (this delivery
-- was a stale duplicate).
local stream, index, dead = KEYS[1], KEYS[2], KEYS[3]
local id, key, letter, always = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'

redis.call('XACK', stream, 'workers', id)
redis.call('XDEL', stream, id)
local current = redis.call('HGET', index, key)
if current and current ~= id and not always then
  return 0
end
if current == id then
  redis.call('HDEL', index, key)
end
redis.call('HSET', dead, key, letter)
return 1
