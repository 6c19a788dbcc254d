-- Queue held tasks again, due now.
--
-- include: index, store
-- KEYS: stream, index, schedule, parked, held
-- ARGV: now (ms), keys...
-- Returns how many of the keys were held.
local stream, index, schedule, parked, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = tonumber(ARGV[1])

local count = 0
for i = 2, #ARGV do
  local key = ARGV[i]
  local message = redis.call('HGET', held, key)
  if message then
    redis.call('HDEL', held, key)
    count = count + 1
    -- A task scheduled under the key since (with `replace`) supersedes the held one, whether it
    -- waits, runs or ended: only a key that still says `h` gets its held task back.
    if is_held(redis.call('HGET', index, key)) then
      store(stream, index, schedule, parked, key, restamp(message, now), now, now)
    end
  end
end
return count
