-- The dashboard's overview in one call, reading only: how many keys the index, the pending
-- list, the schedule, the held tasks and the dead letters hold; the first running deliveries
-- with their entries; the consumers of the group; the fleet; the strikes.
--
-- The queued tasks are counted from the index, not the stream: the stream also holds wake-ups,
-- and running entries. Every waiting or running task has one index entry (scheduled ones `s`,
-- held ones `h`, gated ones `g` and their id); so the index less the scheduled, held and
-- running tasks is the queued ones, give or take a run cancelled or replaced while it runs.
--
-- KEYS: stream, index, schedule, held, dead, fleet, strikes
-- ARGV: shown (how many running deliveries to return with their entries)
-- Returns {index entries, pending count, scheduled, held, dead, running (a list of {id,
-- consumer, entry fields}), consumers (a list of {name, pending, idle ms}), fleet (consumer,
-- ms, ...), strikes (JSON, in order)}.
local stream, index, schedule, held, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local fleet, strikes = KEYS[6], KEYS[7]
local shown = tonumber(ARGV[1])

local pending, running, consumers = 0, {}, {}
if redis.call('EXISTS', stream) == 1 then
  -- No group yet: no worker ever read the stream, so nothing runs.
  local ok, summary = pcall(redis.call, 'XPENDING', stream, GROUP)
  if ok then
    pending = summary[1]
    if pending > 0 then
      for _, row in ipairs(redis.call('XPENDING', stream, GROUP, '-', '+', shown)) do
        local entry = redis.call('XRANGE', stream, row[1], row[1])[1]
        running[#running + 1] = {row[1], row[2], entry and entry[2] or {}}
      end
    end
    for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', stream, GROUP)) do
      local fields = {}
      for i = 1, #consumer, 2 do
        fields[consumer[i]] = consumer[i + 1]
      end
      consumers[#consumers + 1] = {fields['name'], fields['pending'], fields['idle']}
    end
  end
end

return {
  redis.call('HLEN', index),
  pending,
  redis.call('ZCARD', schedule),
  redis.call('HLEN', held),
  redis.call('HLEN', dead),
  running,
  consumers,
  redis.call('ZRANGE', fleet, 0, -1, 'WITHSCORES'),
  redis.call('ZRANGE', strikes, 0, -1),
}
