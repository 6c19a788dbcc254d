-- Put a strike in place and tell every worker, with the strikes now in place.
--
-- include: signals
-- KEYS: strikes, signals
-- ARGV: strike (canonical JSON)
-- Returns 1 when put in place, 0 when it was in place already.
local strikes, signals, strike = KEYS[1], KEYS[2], ARGV[1]

if redis.call('ZSCORE', strikes, strike) then
  return 0
end
-- Scored by order of arrival, so every reader lists (and matches) strikes in the same order.
local last = redis.call('ZRANGE', strikes, -1, -1, 'WITHSCORES')
local order = 1
if #last > 0 then
  order = tonumber(last[2]) + 1
end
redis.call('ZADD', strikes, order, strike)
signal_strikes(strikes, signals)
return 1
