-- Lift a strike and tell every worker, with the strikes still in place.
--
-- include: signals
-- KEYS: strikes, signals
-- ARGV: strike (canonical JSON)
-- Returns 1 when lifted, 0 when it was not in place.
local strikes, signals, strike = KEYS[1], KEYS[2], ARGV[1]

if redis.call('ZREM', strikes, strike) == 0 then
  return 0
end
signal_strikes(strikes, signals)
return 1
