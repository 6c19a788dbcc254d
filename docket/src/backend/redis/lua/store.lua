-- Shared by the scripts that store a task (prepended to each): the stream when it is due, the
-- schedule until then. Keys and times as in the scripts; times in ms since the epoch. With a
-- `batch` table, the index write of a due task is left in it (key → stream id) for one HSET of
-- the whole batch.
local function store(stream, index, schedule, parked, key, message, due, now, batch)
  if due <= now then
    local id = redis.call('XADD', stream, '*', 'k', key, 'm', message)
    if batch then
      batch[key] = id
    else
      redis.call('HSET', index, key, id)
    end
    return
  end
  if batch then
    batch[key] = nil -- this task's own HSET below supersedes an earlier one of the batch
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

