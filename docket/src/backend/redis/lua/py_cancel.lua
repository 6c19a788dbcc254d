-- pydocket protocol: cancel a key. A waiting task leaves the stream or the queue, and its
-- record says `cancelled` (a running one's too: its worker, told on the cancel channel, ends
-- it); the record then expires after the time to live. A record already ended is left as it
-- is.
--
-- KEYS: stream, queue, parked, runs, progress, state (the state channel)
-- ARGV: key, completed at (ISO 8601), time to live (seconds), state JSON (published when the
--       task was waiting)
-- Returns the state the key was in ('' for none).
local stream, queue, parked, runs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local progress, state = KEYS[5], KEYS[6]
local key, completed, ttl, payload = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]

local waiting = redis.call('HGET', runs, 'stream_id')
if waiting then
  redis.call('XDEL', stream, waiting)
end
redis.call('ZREM', queue, key)
redis.call('DEL', parked, progress)
redis.call('HDEL', runs, 'known', 'stream_id')
local current = redis.call('HGET', runs, 'state') or ''
if current == 'scheduled' or current == 'queued' or current == 'running' then
  redis.call('HSET', runs, 'state', 'cancelled', 'completed_at', completed)
  redis.call('EXPIRE', runs, math.max(ttl, 1))
end
if current == 'scheduled' or current == 'queued' then
  redis.call('PUBLISH', state, payload)
end
return current
