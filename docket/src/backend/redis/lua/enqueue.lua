-- Store one task, honouring its key.
--
-- KEYS: stream, index, schedule, parked
-- ARGV: key, message, due (ms since the epoch), now (ms), mode
--   mode: 'add' (keep a task already holding the key), 'replace' (swap a waiting one),
--         'fresh' (a generated key no other task can hold: skip the look-up)
-- Returns 'added', 'replaced' or 'duplicate'.
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local key, message, due, now, mode =
  ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]

local outcome = 'added'
if mode ~= 'fresh' then
  local current = redis.call('HGET', index, key)
  if current then
    if mode == 'add' then
      return 'duplicate'
    end
    if current == 's' then
      redis.call('ZREM', schedule, key)
      redis.call('HDEL', parked, key)
      outcome = 'replaced'
    elseif #redis.call('XPENDING', stream, 'workers', current, current, 1) == 0 then
      -- Queued but not yet delivered: take it out. A delivered one is running and is left
      -- alone; this task is added beside it.
      redis.call('XDEL', stream, current)
      outcome = 'replaced'
    end
  end
end

store(stream, index, schedule, parked, key, message, due, now)
return outcome
