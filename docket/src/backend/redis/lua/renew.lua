-- Keep a live worker's deliveries its own: reset their idle time so no other worker takes them
-- over. Only the deliveries named, and only those this consumer still owns, are touched: an
-- entry delivered to it that it never saw (a read whose reply was lost) ages out and is taken
-- over, and one another worker took over is not taken back.
--
-- KEYS: stream
-- ARGV: consumer, ids... (the stream ids the worker holds, in stream order; at least one)
-- Returns how many were renewed.
local stream, consumer = KEYS[1], ARGV[1]

local wanted = {}
for i = 2, #ARGV do
  wanted[ARGV[i]] = true
end
-- Only the part of the pending list between the first and the last id named is read.
local ids, start, last = {}, ARGV[2], ARGV[#ARGV]
while true do
  local pending = redis.call('XPENDING', stream, GROUP, start, last, 1000, consumer)
  for _, entry in ipairs(pending) do
    if wanted[entry[1]] then
      ids[#ids + 1] = entry[1]
    end
  end
  if #pending < 1000 then
    break
  end
  start = '(' .. pending[#pending][1]
end
-- XCLAIM stream group consumer 0 id... JUSTID; `unpack` expands only in last position.
for first = 1, #ids, 1000 do
  local args = { stream, GROUP, consumer, 0 }
  for i = first, math.min(first + 999, #ids) do
    args[#args + 1] = ids[i]
  end
  args[#args + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(args))
end
return #ids
