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
-- XCLAIM stream workers consumer 0 id... JUSTID; `unpack` expands only in last position.
local args = { stream, 'workers', consumer, 0 }
for _, entry in ipairs(pending) do
  args[#args + 1] = entry[1]
end
args[#args + 1] = 'JUSTID'
redis.call('XCLAIM', unpack(args))
return #pending
