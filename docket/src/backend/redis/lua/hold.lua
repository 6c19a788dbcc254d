-- Set a struck delivery aside, settled, until its strike is restored; only if the strike is
-- still in place.
--
-- include: index, delivery, entry, settle
-- KEYS: stream, index, strikes, held
-- ARGV: id, key, message, strike (canonical JSON), consumer
-- Returns 1 when this copy is not to run: the strike is in place (the delivery is settled, and
-- held unless it was cancelled or a newer task holds its key), or the copy is stale (settled by
-- an earlier call whose reply was lost, or taken over). 0 when the strike was lifted: nothing
-- changed, the task is to run.
local stream, index, strikes, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, key, message, strike, consumer = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

-- Settled already (an earlier call of this one whose reply was lost held it), or taken over:
-- this copy must not run, whatever became of the strike since.
local outcome = decide(stream, index, id, key, consumer)
if outcome == 'stale' then
  return 1
end
if not redis.call('ZSCORE', strikes, strike) then
  return 0
end
if outcome == 'keep' then
  redis.call('HSET', held, key, message)
  redis.call('HSET', index, key, HELD)
end
settle(stream, index, id, key, outcome)
return 1
