-- Remove every queued and scheduled task; running tasks (pending entries), held and gated ones
-- stay.
--
-- include: index, entry
-- KEYS: stream, index, schedule, parked
-- ARGV: none
-- Returns how many tasks were removed.
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local removed = 0

if redis.call('EXISTS', stream) == 1 then
  local running = {}
  local ok, pending = pcall(redis.call, 'XPENDING', stream, GROUP, '-', '+', 1000000)
  if ok then
    for _, entry in ipairs(pending) do
      running[entry[1]] = true
    end
  end
  for _, entry in ipairs(redis.call('XRANGE', stream, '-', '+')) do
    local id = entry[1]
    if not running[id] then
      local key = entry_field(entry, 'k')
      local current = key and redis.call('HGET', index, key)
      -- An acknowledged entry whose index reads `g` and its id waits for a concurrency slot:
      -- it is gated, not queued, and stays.
      if current ~= gated_mark(id) then
        redis.call('XDEL', stream, id)
        if key then
          if current == id then
            redis.call('HDEL', index, key)
          end
          removed = removed + 1
        end
      end
    end
  end
end

for _, key in ipairs(redis.call('ZRANGE', schedule, 0, -1)) do
  if is_scheduled(redis.call('HGET', index, key)) then
    redis.call('HDEL', index, key)
  end
  removed = removed + 1
end
redis.call('DEL', schedule, parked)
return removed
