-- Store tasks, honouring their keys: one, or a batch in one round trip.
--
-- KEYS: stream, index, schedule, parked
-- ARGV: now (ms since the epoch), then for each task: key, message, due (ms), mode
--   mode: 'add' (keep a task already holding the key), 'replace' (swap a waiting one),
--         'fresh' (a generated key no other task can hold: skip the look-up)
-- Returns, for each task, 0 (added), 1 (replaced) or 2 (duplicate).
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = tonumber(ARGV[1])
-- Index writes of due tasks, made with one HSET at the end.
local batch = {}

local function enqueue(key, message, due, mode)
  local outcome = 0
  if mode ~= 'fresh' then
    local current = batch[key] or redis.call('HGET', index, key)
    if current then
      if mode == 'add' then
        return 2
      end
      if current == 's' then
        redis.call('ZREM', schedule, key)
        redis.call('HDEL', parked, key)
        outcome = 1
      elseif waiting(stream, current) then
        -- Queued but not yet delivered: take it out. A delivered one is running, and a held or
        -- gated one is set aside: those are left alone, and this task is added beside them.
        redis.call('XDEL', stream, current)
        outcome = 1
      end
    end
  end
  store(stream, index, schedule, parked, key, message, due, now, batch)
  return outcome
end

local outcomes = {}
for i = 2, #ARGV, 4 do
  outcomes[#outcomes + 1] = enqueue(ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3])
end
local writes = {}
for key, id in pairs(batch) do
  writes[#writes + 1] = key
  writes[#writes + 1] = id
end
if #writes > 0 then
  redis.call('HSET', index, unpack(writes))
end
return outcomes
