-- Storing a task: in the stream when due, in the schedule until then. Times in ms since the
-- epoch.
--
-- include: index

-- Put a task in the stream when it is due, in the schedule until then. With a `batch` table,
-- the index write of a due task is left in it (key → stream id) for one HSET of the whole batch.
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
  redis.call('HSET', index, key, SCHEDULED)
  if #first == 0 or tonumber(first[2]) > due then
    -- The earliest future task changed: wake a parked worker so it sets its timer again.
    redis.call('XADD', stream, '*', 'w', tostring(due))
  end
end

-- The message JSON with its due time set to `due`. docket's codec writes `task`, `attempt` and
-- `due` first; the task name is skipped as a JSON string (quotes inside it are escaped), so
-- nothing in it can pass for the field. A message of any other shape is returned unchanged.
local function restamp(message, due)
  if string.sub(message, 1, 9) ~= '{"task":"' then
    return message
  end
  local i = 10
  while true do
    local j = string.find(message, '["\\]', i)
    if not j then
      return message
    end
    if string.sub(message, j, j) == '"' then
      i = j + 1
      break
    end
    i = j + 2 -- an escape: skip the escaped character
  end
  local head, tail = string.match(message, '^(,"attempt":%d+,"due":)%d+(.*)$', i)
  if not head then
    return message
  end
  return string.sub(message, 1, i - 1) .. head .. string.format('%.0f', due) .. tail
end
