-- Claim again deliveries a worker was handed but never saw (the reply of a read or a takeover
-- was lost), at the delivery count they have: losing a reply is no delivery. Only those still
-- pending to the worker: the caller listed them before this call, and another worker may have
-- taken one over since (it had stalled); claiming it back would run it twice at once. Each is
-- judged as a takeover is (`judge` in include/settle.lua): one cancelled or superseded
-- meanwhile is settled, not handed out.
--
-- include: index, delivery, entry, settle
-- KEYS: stream, index
-- ARGV: consumer, [id, delivered]... (a stream id, and how often it has been delivered)
-- Returns { entries to hand out, entries settled instead }.
local stream, index, consumer = KEYS[1], KEYS[2], ARGV[1]

local handed, dropped = {}, {}
for i = 2, #ARGV, 2 do
  local entry = owner(stream, ARGV[i]) == consumer
    and redis.call('XCLAIM', stream, GROUP, consumer, 0, ARGV[i], 'RETRYCOUNT', ARGV[i + 1])[1]
  if entry then
    if judge(stream, index, entry) == 'hand' then
      handed[#handed + 1] = entry
    else
      dropped[#dropped + 1] = entry
    end
  end
end
return { handed, dropped }
