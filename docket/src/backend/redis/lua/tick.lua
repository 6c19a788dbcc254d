-- Move due future tasks into the stream, and take over deliveries whose worker stopped
-- renewing them (forgetting such workers once nothing is pending for them).
--
-- KEYS: stream, index, schedule, parked
-- ARGV: now (ms), most tasks to move, consumer, reclaim idle time (ms; 0: do not reclaim),
--       reclaim cursor, most deliveries to reclaim
-- Returns { next due (ms, or -1 when nothing is scheduled), reclaim cursor, reclaimed entries,
--           how many times each reclaimed entry has now been delivered }.
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

local cursor, reclaimed, deliveries = ARGV[5], {}, {}
local idle = tonumber(ARGV[4])
if idle > 0 then
  local claimed = redis.call('XAUTOCLAIM', stream, 'workers', ARGV[3], idle, cursor,
    'COUNT', ARGV[6])
  cursor, reclaimed = claimed[1], claimed[2]
  for i, entry in ipairs(reclaimed) do
    local pending = redis.call('XPENDING', stream, 'workers', entry[1], entry[1], 1)
    deliveries[i] = pending[1] and pending[1][4] or 0
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
return { next_due, cursor, reclaimed, deliveries }
