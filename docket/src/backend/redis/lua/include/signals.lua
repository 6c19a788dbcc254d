-- Signals: the stream every worker follows, capped near 1,000 entries.

-- Add a signal (field and value pairs) for every worker to read.
local function signal(signals, ...)
  redis.call('XADD', signals, 'MAXLEN', '~', 1000, '*', ...)
end

-- Tell every worker the strikes now in place, in the order they were put in place.
local function signal_strikes(strikes, signals)
  local all = redis.call('ZRANGE', strikes, 0, -1)
  signal(signals, 's', '[' .. table.concat(all, ',') .. ']')
end
