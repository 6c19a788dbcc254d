-- Remove the waiting, held or gated task of a key; if a run of it is in flight instead, tell
-- every worker to stop it.
--
-- KEYS: stream, index, schedule, parked, held, signals
-- ARGV: key
-- Returns 1 when a task was removed or a running one signalled, 0 when the key holds nothing.
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local held, signals = KEYS[5], KEYS[6]
local key = ARGV[1]

local current = redis.call('HGET', index, key)
if current == 's' then
  redis.call('ZREM', schedule, key)
  redis.call('HDEL', parked, key)
elseif current == 'h' then
  redis.call('HDEL', held, key)
elseif current and string.sub(current, 1, 1) == 'g' then
  -- Its id stays in the slot's queue; the release that reaches it finds the entry gone.
  redis.call('XDEL', stream, string.sub(current, 2))
elseif current and #redis.call('XPENDING', stream, 'workers', current, current, 1) == 0 then
  redis.call('XDEL', stream, current)
else
  -- Nothing waits under the key, but a held task may sit beside a newer run (scheduled with
  -- `replace` while it was held).
  if redis.call('HDEL', held, key) == 1 then
    return 1
  end
  if not current then
    return 0
  end
  redis.call('XADD', signals, 'MAXLEN', '~', 1000, '*', 'c', key)
  return 1
end
redis.call('HDEL', index, key)
return 1
