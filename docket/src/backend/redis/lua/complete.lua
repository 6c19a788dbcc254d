-- Acknowledge finished deliveries, and free their keys unless a newer task holds them.
--
-- KEYS: stream, index
-- ARGV: n, then n stream ids, then the n keys of those entries (an empty key for entries
--       without one, such as wake-ups). Halves rather than pairs, so that the ids and keys go
--       to Redis by `unpack` with no table built in between. At most 1,000 entries a call.
-- Returns how many deliveries were acknowledged.
local stream, index = KEYS[1], KEYS[2]
local n = tonumber(ARGV[1])

local current = redis.call('HMGET', index, unpack(ARGV, n + 2, 2 * n + 1))
local free = {}
for i = 1, n do
  local key, id = ARGV[n + 1 + i], ARGV[1 + i]
  -- A run cancelled while it ran (`x` and its id) frees its key when it ends, too.
  if key ~= '' and (current[i] == id or current[i] == 'x' .. id) then
    free[#free + 1] = key
  end
  -- A run that no longer holds its key may have been cancelled: forget its tombstone (rare:
  -- a cancel, or a `replace` while it ran).
  if key ~= '' and current[i] ~= id then
    free[#free + 1] = '\1' .. id
  end
end
if #free > 0 then
  redis.call('HDEL', index, unpack(free))
end
local acknowledged = redis.call('XACK', stream, 'workers', unpack(ARGV, 2, n + 1))
redis.call('XDEL', stream, unpack(ARGV, 2, n + 1))
return acknowledged
