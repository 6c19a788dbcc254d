-- The keeper's periodic check: renew its lease, and say whether anything may need taking over
-- and when the earliest future task falls due. One worker of the fleet at a time holds the
-- lease and runs this; the others only look, now and then, whether the lease is free (a plain
-- `SET NX`), so that an idle fleet costs the same whatever its size.
--
-- The lease reads `<workers> <consumer>`: the fleet's size as the keeper last counted it tells
-- the others how rarely to look. A keeper that finds the lease in another worker's name (its
-- own lapsed while it could not reach Redis, and another took it) puts it back as it was and
-- steps down; one that resigns (its checks of another partition keep failing: that master is
-- unreachable from its process) frees it, and hands it to a reader with a wake-up marked
-- `keeper`.
--
-- The workers' run counts (`{name}:stats`, worker → `{"m":<newest minute>,…}`) whose newest
-- minute is before a given one are forgotten at the checks that ask for it (now and then: it
-- reads the whole hash).
--
-- include: consumers, glance
-- KEYS: lease, stream, schedule, fleet, stats
-- ARGV: consumer, lease (ms), now (ms), workers (the keeper's last count), count ('1': count
--       the fleet again, forgetting workers silent since the given time, and forget idle
--       consumers), silent since (ms), resign ('1': give the lease up), redelivery timeout (ms),
--       stale before (a minute since the epoch: forget run counts older; '0': leave them)
-- Returns { 1 when this worker holds the lease, how many deliveries are pending in the whole
--           group (0 when it has no group yet), the earliest due time (ms; -1 when nothing is
--           scheduled), the fleet's size, 1 when a delivery has been idle for the redelivery
--           timeout (it stalled) }.
local lease, stream, schedule, fleet, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local consumer, ms, now = ARGV[1], ARGV[2], ARGV[3]
local workers = tonumber(ARGV[4])

local function holder(value)
  return value and string.match(value, '^%d+ (.*)$')
end

if ARGV[7] == '1' then
  local value = redis.call('GET', lease)
  if holder(value) == consumer then
    redis.call('DEL', lease)
    -- Hand the lease on: the worker whose read takes this wake-up looks at the lease at once.
    redis.call('XADD', stream, '*', 'w', 'keeper')
  end
  return { 0, 0, -1, workers, 0 }
end

if ARGV[5] == '1' then
  redis.call('ZREMRANGEBYSCORE', fleet, '-inf', '(' .. ARGV[6])
  -- Forget consumers silent for twice the redelivery timeout with nothing pending; and leave
  -- out of the fleet's count those as silent with deliveries pending: a live worker renews its
  -- deliveries every quarter timeout, so these died. (Taking their deliveries over drops them
  -- too, but in a crash storm that can take a while, and meanwhile an inflated count would put
  -- off the others' looks at the lease, and so the next keeper.)
  local forget = 2 * tonumber(ARGV[8])
  each_consumer(stream, consumer, forget, function(name, silent, pending)
    if pending > 0 and silent > forget then
      redis.call('ZREM', fleet, name)
    end
  end)
  workers = math.max(redis.call('ZCARD', fleet), 1)
end

local stale_before = tonumber(ARGV[9])
if stale_before > 0 then
  local published = redis.call('HGETALL', stats)
  local stale = {}
  for i = 1, #published, 2 do
    local minute = tonumber(string.match(published[i + 1], '^{"m":(%d+)'))
    if not minute or minute < stale_before then
      stale[#stale + 1] = published[i]
    end
  end
  if #stale > 0 then
    redis.call('HDEL', stats, unpack(stale))
  end
end

local before = redis.call('SET', lease, workers .. ' ' .. consumer, 'PX', ms, 'GET')
if before and holder(before) ~= consumer then
  -- Another worker took the lease while ours had lapsed: it is the keeper.
  redis.call('SET', lease, before, 'PX', ms)
  return { 0, 0, -1, tonumber(string.match(before, '^(%d+) ')) or workers, 0 }
end

local pending, stalled, next_due = glance(stream, schedule, ARGV[8])
return { 1, pending, next_due, workers, stalled }
