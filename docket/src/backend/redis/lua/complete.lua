-- Acknowledge finished deliveries, and free their keys unless a newer task holds them.
--
-- KEYS: stream, index
-- ARGV: id, key, id, key, ... (an empty key for entries without one, such as wake-ups)
-- Returns how many deliveries were acknowledged.
local stream, index = KEYS[1], KEYS[2]

local ids, keys, owners = {}, {}, {}
for i = 1, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  if ARGV[i + 1] ~= '' then
    keys[#keys + 1] = ARGV[i + 1]
    owners[#owners + 1] = ARGV[i]
  end
end

local acknowledged = redis.call('XACK', stream, 'workers', unpack(ids))
redis.call('XDEL', stream, unpack(ids))
if #keys > 0 then
  local current = redis.call('HMGET', index, unpack(keys))
  local free = {}
  for i, key in ipairs(keys) do
    if current[i] == owners[i] then
      free[#free + 1] = key
    end
  end
  if #free > 0 then
    redis.call('HDEL', index, unpack(free))
  end
end
return acknowledged
