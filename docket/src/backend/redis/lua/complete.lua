-- Acknowledge finished deliveries, and free their keys unless a newer task holds them.
--
-- The ids and the keys come in halves rather than pairs, so that they go to Redis by `unpack`
-- with no table built in between. At most 1,000 entries a call.
--
-- include: index
-- KEYS: stream, index
-- ARGV: n, ids... (n stream ids), keys... (the n keys of those entries; an empty key for
--       entries without one, such as wake-ups)
-- Returns how many deliveries were acknowledged.
local stream, index = KEYS[1], KEYS[2]
local n = tonumber(ARGV[1])

local current = redis.call('HMGET', index, unpack(ARGV, n + 2, 2 * n + 1))
local free = {}
for i = 1, n do
  local key, id = ARGV[n + 1 + i], ARGV[1 + i]
  -- A run cancelled while it ran (`x` and its id) frees its key when it ends, too.
  if key ~= '' and (current[i] == id or current[i] == cancelled_mark(id)) then
    free[#free + 1] = key
  end
  -- A run that no longer holds its key may have been cancelled: forget its tombstone (rare:
  -- a cancel, or a `replace` while it ran), and that a replace went beside it.
  if key ~= '' and current[i] ~= id then
    free[#free + 1] = tombstone(id)
    forget_beside(index, key, id)
  end
end
if #free > 0 then
  redis.call('HDEL', index, unpack(free))
end
local acknowledged = redis.call('XACK', stream, GROUP, unpack(ARGV, 2, n + 1))
redis.call('XDEL', stream, unpack(ARGV, 2, n + 1))
return acknowledged
