-- Store tasks of the common kind, one or a batch: each has a generated key no other task can
-- hold, is due now, keeps no record and has no cooldown. Each is what enqueue.lua would store
-- for it (an entry in the stream and its index entry), without the look-ups and bookkeeping
-- that only keys, schedules, records and cooldowns need: a script called once per task at a
-- time costs Redis less than half as much this way.
--
-- KEYS: stream, index
-- ARGV: [key, message]... (one pair a task, at most 500)
-- Returns how many tasks were stored (all of them: each is added).
local stream, index = KEYS[1], KEYS[2]

local writes = {}
for i = 1, #ARGV, 2 do
  local key = ARGV[i]
  writes[#writes + 1] = key
  writes[#writes + 1] = redis.call('XADD', stream, '*', 'k', key, 'm', ARGV[i + 1])
end
if #writes > 0 then
  redis.call('HSET', index, unpack(writes))
end
return #writes / 2
