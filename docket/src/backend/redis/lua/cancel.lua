-- Cancel the task of a key wherever it is: remove it when it waits (queued, scheduled, held or
-- gated); when it was delivered (running on a live worker, or pending on a dead one), mark it
-- cancelled in the index, so no copy of it is handed out again, and tell every worker to stop
-- it. A copy held by a strike beside a newer task is removed too.
--
-- include: index, delivery, signals
-- KEYS: stream, index, schedule, parked, held, signals
-- ARGV: key
-- Returns 1 when a task was removed or marked cancelled, 0 when the key holds nothing.
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local held, signals = KEYS[5], KEYS[6]
local key = ARGV[1]

local current = redis.call('HGET', index, key)
local held_copy = redis.call('HDEL', held, key) == 1
if not current then
  return held_copy and 1 or 0
end
if is_cancelled(current) then
  return 1 -- cancelled already; its run is being stopped
end
if is_scheduled(current) then
  redis.call('ZREM', schedule, key)
  redis.call('HDEL', parked, key)
elseif is_gated(current) then
  -- Its id stays in the slot's queue; the release that reaches it finds the entry gone.
  redis.call('XDEL', stream, marked_id(current))
elseif not is_held(current) then
  if owner(stream, current) then
    redis.call('HSET', index, key, cancelled_mark(current), tombstone(current), 1)
    signal(signals, 'c', key, 'i', current)
    return 1
  end
  redis.call('XDEL', stream, current)
end
redis.call('HDEL', index, key)
return 1
