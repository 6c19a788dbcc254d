-- The keeper's check of a partition other than 0, on a docket spread over several. The lease,
-- the fleet's count and the run counts live in partition 0, whose keeper checks every partition:
-- here it reads how many deliveries are pending, how long the stream is and when the earliest
-- future task falls due, and now and then forgets idle consumers and workers silent too long.
-- A partition with nothing pending and an empty stream needs no checks until an entry is added:
-- the keeper then waits for one in a blocking read instead.
--
-- include: consumers, glance
-- KEYS: stream, schedule, fleet
-- ARGV: consumer, count ('1': forget idle consumers, and workers silent since the given time),
--       silent since (ms), redelivery timeout (ms)
-- Returns { how many deliveries are pending in the whole group (0 when it has no group yet),
--           the earliest due time (ms; -1 when nothing is scheduled), the stream's length,
--           1 when a delivery has been idle for the redelivery timeout (it stalled) }.
local stream, schedule, fleet = KEYS[1], KEYS[2], KEYS[3]
local consumer = ARGV[1]

if ARGV[2] == '1' then
  -- Workers of a version that kept a fleet in every partition: forgotten as in partition 0's.
  redis.call('ZREMRANGEBYSCORE', fleet, '-inf', '(' .. ARGV[3])
  -- Forget consumers silent for twice the redelivery timeout with nothing pending.
  each_consumer(stream, consumer, 2 * tonumber(ARGV[4]), function() end)
end

local pending, stalled, next_due = glance(stream, schedule, ARGV[4])
return { pending, next_due, redis.call('XLEN', stream), stalled }
