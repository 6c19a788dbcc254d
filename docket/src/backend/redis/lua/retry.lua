-- Settle a failed delivery and store its next attempt, unless this copy is stale, the task was
-- cancelled, or a newer task holds its key.
--
-- include: index, delivery, entry, settle, store
-- KEYS: stream, index, schedule, parked
-- ARGV: id, key, message (the next attempt), due (ms), now (ms), consumer
-- Returns 1 when the next attempt was stored, 0 when it was not (stale, cancelled or
-- superseded).
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, key, message = ARGV[1], ARGV[2], ARGV[3]
local due, now, consumer = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]

local outcome = decide(stream, index, id, key, consumer)
if outcome == 'stale' then
  return 0
end
if outcome == 'keep' then
  store(stream, index, schedule, parked, key, message, due, now)
end
settle(stream, index, id, key, outcome)
return outcome == 'keep' and 1 or 0
