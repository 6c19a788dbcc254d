-- Set a struck delivery aside, settled, until its strike is restored; only if the strike is
-- still in place.
--
-- KEYS: stream, index, strikes, held
-- ARGV: id, key, message, strike (canonical JSON)
-- Returns 1 when the strike is in place: the delivery is settled, and held unless it was settled
-- already or a newer task waits under its key. 0 when the strike was lifted: nothing changed,
-- the task is to run.
local stream, index, strikes, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, key, message, strike = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

if not redis.call('ZSCORE', strikes, strike) then
  return 0
end
local outcome = aside(stream, index, id, key)
if outcome == 'keep' then
  redis.call('HSET', held, key, message)
  redis.call('HSET', index, key, 'h')
end
if outcome ~= 'settled' then
  redis.call('XDEL', stream, id)
end
return 1
