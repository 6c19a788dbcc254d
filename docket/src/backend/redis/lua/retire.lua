-- Forget a stopping worker's consumer, unless deliveries are still pending for it (they must
-- stay visible so that another worker can take them over).
--
-- KEYS: stream
-- ARGV: consumer
-- Returns 1 when the consumer was removed.
local stream, consumer = KEYS[1], ARGV[1]

if #redis.call('XPENDING', stream, GROUP, '-', '+', 1, consumer) > 0 then
  return 0
end
return redis.call('XGROUP', 'DELCONSUMER', stream, GROUP, consumer) and 1 or 0
