-- Shared by the scripts that store a task (prepended to each): the stream when it is due, the
-- schedule until then. Keys and times as in the scripts; times in ms since the epoch.
local function store(stream, index, schedule, parked, key, message, due, now)
  if due <= now then
    local id = redis.call('XADD', stream, '*', 'k', key, 'm', message)
    redis.call('HSET', index, key, id)
    return
  end
  local first = redis.call('ZRANGE', schedule, 0, 0, 'WITHSCORES')
  redis.call('ZADD', schedule, due, key)
  redis.call('HSET', parked, key, message)
  redis.call('HSET', index, key, 's')
  if #first == 0 or tonumber(first[2]) > due then
    -- The earliest future task changed: wake a parked worker so it sets its timer again.
    redis.call('XADD', stream, '*', 'w', tostring(due))
  end
end

