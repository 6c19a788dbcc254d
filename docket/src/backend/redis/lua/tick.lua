-- Move due future tasks into the stream, and take over deliveries whose worker stopped
-- renewing them (forgetting such workers once nothing is pending for them).
--
-- A stalled delivery seen for the first time was most likely the victim of its worker's crash;
-- one delivered before is a suspect: it may be what crashed its workers (it exits the process,
-- exhausts memory). Victims are taken over in bulk; suspects one at a time, so that a poison task
-- does not drag the same companions down with it again and again.
--
-- KEYS: stream, index, schedule, parked
-- ARGV: now (ms), most tasks to move, consumer, reclaim idle time (ms; 0: do not reclaim),
--       reclaim cursor (an id, or '-'), most deliveries to reclaim
-- Returns { next due (ms, or -1 when nothing is scheduled), reclaim cursor (`-` when the scan
--           reached the end), reclaimed entries, how often each has now been delivered,
--           1 when stalled deliveries were left for the next look }.
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, limit = ARGV[1], tonumber(ARGV[2])

local due = redis.call('ZRANGEBYSCORE', schedule, '-inf', now, 'LIMIT', 0, limit)
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

local cursor, reclaimed, deliveries, more = ARGV[5], {}, {}, 0
local idle, most = tonumber(ARGV[4]), tonumber(ARGV[6])
if idle > 0 then
  local scan = most * 10
  local stalled = redis.call('XPENDING', stream, 'workers', 'IDLE', idle, cursor, '+', scan)
  local take, counts, suspect = {}, {}, false
  for _, row in ipairs(stalled) do
    local id, delivered = row[1], row[4]
    if #take < most and (delivered <= 1 or not suspect) then
      suspect = suspect or delivered > 1
      take[#take + 1] = id
      counts[id] = delivered + 1
    end
  end
  if #take < #stalled then
    more = 1
  end
  if #stalled < scan then
    cursor = '-'
  else
    cursor = '(' .. stalled[#stalled][1]
  end
  if #take > 0 then
    local args = { stream, 'workers', ARGV[3], idle }
    for _, id in ipairs(take) do
      args[#args + 1] = id
    end
    reclaimed = redis.call('XCLAIM', unpack(args))
    for i, entry in ipairs(reclaimed) do
      deliveries[i] = counts[entry[1]] or 0
    end
  end
  -- A consumer silent for twice the redelivery timeout with nothing pending is a worker that
  -- died; a live one that was only idle is made again by its next read.
  for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', stream, 'workers')) do
    local fields = {}
    for i = 1, #consumer, 2 do
      fields[consumer[i]] = consumer[i + 1]
    end
    if fields['pending'] == 0 and fields['idle'] > 2 * idle and fields['name'] ~= ARGV[3] then
      redis.call('XGROUP', 'DELCONSUMER', stream, 'workers', fields['name'])
    end
  end
end

local next_due = -1
if #due == limit then
  next_due = 0 -- more are due already
else
  local first = redis.call('ZRANGE', schedule, 0, 0, 'WITHSCORES')
  if #first > 0 then
    next_due = tonumber(first[2])
  end
end
return { next_due, cursor, reclaimed, deliveries, more }
