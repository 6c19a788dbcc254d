-- Keep a live worker's deliveries its own: reset their idle time so no other worker reclaims
-- them. Only deliveries the worker still owns are touched.
--
-- KEYS: stream
-- ARGV: consumer, most deliveries to renew
-- Returns how many were renewed.
local stream, consumer = KEYS[1], ARGV[1]

local pending = redis.call('XPENDING', stream, 'workers', '-', '+', ARGV[2], consumer)
if #pending == 0 then
  return 0
end
local ids = {}
for i, entry in ipairs(pending) do
  ids[i] = entry[1]
end
redis.call('XCLAIM', stream, 'workers', consumer, 0, unpack(ids), 'JUSTID')
return #ids
