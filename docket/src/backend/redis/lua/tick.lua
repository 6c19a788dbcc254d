-- Move due future tasks into the stream, and take over deliveries whose worker stopped
-- renewing them (forgetting such workers, once nothing is pending for them, when it looks).
--
-- A delivery counts against its task's `max_deliveries` only when it is taken over from a
-- worker that went silent (crashed, killed, frozen): one whose owner was heard from within the
-- redelivery timeout (it reads, renews or claims) was lost on the way (a read whose reply never
-- arrived, an outage), and is taken over without counting. A stalled delivery seen for the
-- first time was most likely the victim of its worker's crash; one delivered before is a
-- suspect: it may be what crashed its workers (it exits the process, exhausts memory). Victims
-- are taken over in bulk; a suspect alone, by a worker that holds nothing else (or, once it has
-- waited three timeouts, by one that holds no other suspect), so that a poison task does not
-- drag the same companions down with it again and again. A suspect taken over past the task's
-- `max_deliveries` is not run but buried by the caller: those go in bulk, whoever asks, so that
-- a backlog left by a crash storm is buried at once, not one per look.
--
-- A delivery taken over whose key no longer names it (cancelled while it ran, or superseded by
-- a newer task) is settled here, never handed out (`judge` in include/settle.lua).
--
-- include: index, delivery, entry, settle, consumers
-- KEYS: stream, index, schedule, parked, fleet
-- ARGV: now (ms), most tasks to move, consumer, reclaim idle time (ms; 0: do not reclaim),
--       reclaim cursor (an id, or '-'), most deliveries to reclaim, which suspects the worker
--       may take ('1': it holds no delivery, any one suspect; '0': it holds no suspect, one that
--       waited three timeouts; '-': none), the most deliveries a task may have (one taken over
--       past it is buried, never run)
-- Returns { next due (ms, or -1 when nothing is scheduled), reclaim cursor (`-` when the scan
--           reached the end), reclaimed entries, how often each has now been delivered,
--           1 when stalled deliveries were left for the next look, the entries taken over and
--           settled instead (cancelled or superseded: their concurrency slots are to be given
--           back), how many future tasks were moved into the stream }.
local stream, index, schedule, parked, fleet = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, limit, consumer = ARGV[1], tonumber(ARGV[2]), ARGV[3]

-- The schedule's head first: when it is not due, nothing is, and an idle tick costs one call
-- here instead of two.
local head = redis.call('ZRANGE', schedule, 0, 0, 'WITHSCORES')
local due = {}
if #head > 0 and tonumber(head[2]) <= tonumber(now) then
  due = redis.call('ZRANGEBYSCORE', schedule, '-inf', now, 'LIMIT', 0, limit)
end
if #due > 0 then
  local messages = redis.call('HMGET', parked, unpack(due))
  for i, key in ipairs(due) do
    if messages[i] then
      local id = redis.call('XADD', stream, '*', 'k', key, 'm', messages[i])
      redis.call('HSET', index, key, id)
    end
  end
  redis.call('HDEL', parked, unpack(due))
  redis.call('ZREM', schedule, unpack(due))
end

local cursor, handed, deliveries, dropped, more = ARGV[5], {}, {}, {}, 0
local idle, most = tonumber(ARGV[4]), tonumber(ARGV[6])
local alone, starved = ARGV[7] == '1', ARGV[7] == '0'
local max_deliveries = tonumber(ARGV[8])
if idle > 0 then
  -- Nothing pending in the whole group: nothing can be stalled, and the look below (two calls
  -- and a scan) is skipped. A missing group fails here quietly and below loudly, as before.
  local ok, summary = pcall(redis.call, 'XPENDING', stream, GROUP)
  if ok and summary[1] == 0 then
    idle, cursor = 0, '-'
  end
end
if idle > 0 then
  -- Who was heard from lately; and forget a consumer silent for twice the redelivery timeout
  -- with nothing pending (a worker that died; a live one that was only idle is made again by
  -- its next read).
  local heard = {}
  each_consumer(stream, consumer, 2 * idle, function(name, silent)
    heard[name] = silent < idle
  end)

  local scan = most * 10
  local stalled = redis.call('XPENDING', stream, GROUP, 'IDLE', idle, cursor, '+', scan)
  -- How often each delivery taken over will have been delivered, by id. Victims go in bulk. A
  -- suspect goes alone, to a worker that holds nothing else (or once it has waited three
  -- timeouts, so that a busy fleet does not starve it, to a worker that holds no other
  -- suspect): should it kill that worker too, no neighbour is counted with it, and a healthy
  -- task that shared a worker with a poison one runs alone next time and succeeds.
  local counts, counted, neutral, suspects, taken, left = {}, {}, {}, {}, 0, 0
  -- Owners that went silent with deliveries: dead workers, out of the fleet's count.
  local silent = {}
  for _, row in ipairs(stalled) do
    local id, owner, waited, delivered = row[1], row[2], row[3], row[4]
    if heard[owner] or delivered <= 1 then
      if taken == most then
        left = left + 1
      elseif heard[owner] then
        neutral[#neutral + 1] = id
        counts[id] = delivered
        taken = taken + 1
      else
        counted[#counted + 1] = id
        counts[id] = delivered + 1
        taken = taken + 1
        silent[owner] = true
      end
    elseif delivered >= max_deliveries then
      -- Past the limit: buried by the caller, never run. As many as the scan finds.
      counted[#counted + 1] = id
      counts[id] = delivered + 1
      silent[owner] = true
    elseif alone or (starved and waited >= 3 * idle) then
      suspects[#suspects + 1] = row
    end
  end
  if #counted + #neutral == 0 and #suspects > 0 then
    local row = table.remove(suspects, 1)
    counted[1] = row[1]
    counts[row[1]] = row[4] + 1
    taken = 1
  end
  -- Looked at again soon only when this worker left a delivery it could have taken: a suspect
  -- waiting for an empty-handed worker waits for the next regular look instead.
  if left + #suspects > 0 then
    more = 1
  end
  if #stalled < scan then
    cursor = '-'
  else
    cursor = '(' .. stalled[#stalled][1]
  end

  for owner in pairs(silent) do
    redis.call('ZREM', fleet, owner)
  end

  local reclaimed = {}
  if #counted > 0 then
    local args = { stream, GROUP, consumer, idle }
    for _, id in ipairs(counted) do
      args[#args + 1] = id
    end
    for _, entry in ipairs(redis.call('XCLAIM', unpack(args))) do
      reclaimed[#reclaimed + 1] = entry
    end
  end
  -- Kept at the count it had: one call each, as the count is per call (rare: lost replies,
  -- outages).
  for _, id in ipairs(neutral) do
    local entry = redis.call('XCLAIM', stream, GROUP, consumer, idle, id, 'RETRYCOUNT', counts[id])[1]
    if entry then
      reclaimed[#reclaimed + 1] = entry
    end
  end

  for _, entry in ipairs(reclaimed) do
    if judge(stream, index, entry) == 'hand' then
      handed[#handed + 1] = entry
      deliveries[#handed] = counts[entry[1]]
    else
      dropped[#dropped + 1] = entry
    end
  end
end

local next_due = -1
if #due == limit then
  next_due = 0 -- more are due already
elseif #due > 0 then
  local first = redis.call('ZRANGE', schedule, 0, 0, 'WITHSCORES')
  if #first > 0 then
    next_due = tonumber(first[2])
  end
elseif #head > 0 then
  next_due = tonumber(head[2])
end
return { next_due, cursor, handed, deliveries, more, dropped, #due }
