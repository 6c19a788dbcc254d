-- Give back deliveries a worker read ahead of its free slots and will not start (it stops), so
-- that another worker starts them at once instead of a redelivery timeout later. Only those
-- still pending to this worker are given back (as `give_back` in include/giveback.lua says);
-- others were taken over meanwhile and are left alone.
--
-- include: index, delivery, entry, settle, giveback
-- KEYS: stream, index
-- ARGV: consumer, ids...
-- Returns the number of deliveries given back.
local stream, index, consumer = KEYS[1], KEYS[2], ARGV[1]

local given = 0
for i = 2, #ARGV do
  if owner(stream, ARGV[i]) == consumer then
    given = given + give_back(stream, index, ARGV[i])
  end
end
return given
