-- Retire a stopping worker: give back the deliveries still pending for it that it does not hold
-- (a read it dropped as it stopped, whose entries it never saw; a delivery it gave up), so that
-- they run at once on another worker instead of a redelivery timeout later; then forget its
-- consumer, unless deliveries it holds are still pending. It leaves the fleet, and frees the
-- keeper's lease if it holds it (another worker takes it at its next look).
--
-- A delivery is given back as `give_back` (include/giveback.lua) says.
--
-- include: index, delivery, entry, settle, giveback
-- KEYS: stream, index, lease, fleet
-- ARGV: consumer, held... (ids of deliveries the worker still holds: left as they are)
-- Returns the number of deliveries given back.
local stream, index, lease, fleet, consumer = KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1]

local held = {}
for i = 2, #ARGV do
  held[ARGV[i]] = true
end

local given, kept = 0, 0
for _, row in ipairs(redis.call('XPENDING', stream, GROUP, '-', '+', 1000, consumer)) do
  local id = row[1]
  if held[id] then
    kept = kept + 1
  else
    given = given + give_back(stream, index, id)
  end
end

if kept == 0 then
  redis.call('XGROUP', 'DELCONSUMER', stream, GROUP, consumer)
end
redis.call('ZREM', fleet, consumer)
local keeper = redis.call('GET', lease)
if keeper and string.match(keeper, '^%d+ (.*)$') == consumer then
  redis.call('DEL', lease)
end
return given
