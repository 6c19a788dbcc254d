-- Shared by the scripts that store or set aside tasks (prepended to each): `store` puts a task
-- in the stream when it is due, in the schedule until then. Keys and times as in the scripts;
-- times in ms since the epoch. With a `batch` table, the index write of a due task is left in
-- it (key → stream id) for one HSET of the whole batch.
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

-- Whether the index entry `current` of a key is a waiting task: scheduled, or in the stream and
-- not yet delivered. Held (`h`) and gated (`g…`) tasks are set aside, not waiting; delivered
-- ones are running.
local function waiting(stream, current)
  if not current or current == 'h' or string.sub(current, 1, 1) == 'g' then
    return false
  end
  return current == 's' or #redis.call('XPENDING', stream, 'workers', current, current, 1) == 0
end

-- Settle the delivery `id` of `key` to set it aside (held, gated or deferred). Returns 'keep'
-- when the task is to be kept, 'drop' when a newer task waits under its key (the caller deletes
-- the entry either way, unless it keeps it in the stream), and 'settled' when the delivery was
-- settled already, by a duplicate of it or a repeated call: then its entry is not touched, as it
-- may be one kept waiting for a slot.
local function aside(stream, index, id, key)
  if redis.call('XACK', stream, 'workers', id) == 0 then
    return 'settled'
  end
  local current = redis.call('HGET', index, key)
  if current == id or not waiting(stream, current) then
    return 'keep'
  end
  return 'drop'
end

