-- Shared by the scripts that store, settle or set aside tasks (prepended to each). Keys and
-- times as in the scripts; times in ms since the epoch.
--
-- The index entry of a key says where its task is: a stream id (queued, or delivered and
-- running), `s` (scheduled), `h` (held by a strike), `g` and a stream id (waiting for a
-- concurrency slot), or `x` and a stream id (delivered, and cancelled: no copy of it may start
-- again; whichever settlement reaches that id frees the key). A cancelled delivery also leaves
-- a tombstone in the index, field `\1` and its stream id (no key holds a control character), so
-- that it stays cancelled when a new task of its key overwrites the `x` mark; its settlement
-- removes it.

-- The index field of the tombstone of the cancelled delivery `id`.
local function tombstone(id)
  return '\1' .. id
end

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

-- The consumer a stream entry is delivered to and not yet settled by; nil when it is not
-- pending (never delivered, or settled), or when the group does not exist yet (no worker ever
-- read the stream, so nothing was delivered).
local function owner(stream, id)
  local ok, pending = pcall(redis.call, 'XPENDING', stream, 'workers', id, id, 1)
  if ok and pending[1] then
    return pending[1][2]
  end
  return nil
end

-- Whether the index entry `current` of a key is a waiting task: scheduled, or in the stream and
-- not yet delivered. Held (`h`), gated (`g…`) and cancelled (`x…`) tasks are not waiting;
-- delivered ones are running.
local function waiting(stream, current)
  if not current then
    return false
  end
  local mark = string.sub(current, 1, 1)
  if mark == 'h' or mark == 'g' or mark == 'x' then
    return false
  end
  return current == 's' or owner(stream, current) == nil
end

-- Whether the index entry `current` frees its key for a new task: none, or a cancelled run.
local function free(current)
  return not current or string.sub(current, 1, 1) == 'x'
end

-- What becomes of the delivery `id` of `key`, settled by `consumer`, that is to be set aside
-- (held, gated or deferred) or stored anew (retried, buried): 'stale' when this consumer no
-- longer owns it (another copy settled it, or another worker took it over: this copy's word
-- does not count); 'cancelled' when it was cancelled while delivered; 'keep' when it is still
-- the key's task; 'drop' when a newer task holds the key. Reads only: the caller writes the new
-- state first and settles the delivery last (`settle`), so that an error writes nothing that
-- loses the task.
local function decide(stream, index, id, key, consumer)
  if owner(stream, id) ~= consumer then
    return 'stale'
  end
  local current = redis.call('HGET', index, key)
  if current == id then
    return 'keep'
  end
  if current == 'x' .. id or redis.call('HEXISTS', index, tombstone(id)) == 1 then
    return 'cancelled'
  end
  return 'drop'
end

-- Acknowledge the delivery `id` and, unless it is to stay in the stream (gated), delete it; a
-- cancelled one frees its key (unless a newer task took it) and its tombstone.
local function settle(stream, index, id, key, outcome, stay)
  if outcome == 'cancelled' then
    if redis.call('HGET', index, key) == 'x' .. id then
      redis.call('HDEL', index, key)
    end
    redis.call('HDEL', index, tombstone(id))
  end
  redis.call('XACK', stream, 'workers', id)
  if not stay then
    redis.call('XDEL', stream, id)
  end
end

-- Whether a delivery taken over (from a silent worker, or recovered after a lost reply) may be
-- handed out: 'hand' when its key still names it, or it has no key (a wake-up, or an entry that
-- is no task, for the worker to sort out); 'cancelled' when it was cancelled while delivered;
-- 'drop' when its key names another task, or none: a newer task of the key (a `replace` while
-- this one ran) superseded it, and waits, runs, or ended (completed, or cancelled: a cancel
-- stops every task of its key). A delivery not handed out is settled here (`settle`), never
-- run.
local function judge(stream, index, entry)
  local id, fields, key = entry[1], entry[2], nil
  if type(fields) == 'table' then
    for i = 1, #fields, 2 do
      if fields[i] == 'k' then
        key = fields[i + 1]
      end
    end
  end
  if not key then
    return 'hand'
  end
  local current = redis.call('HGET', index, key)
  local outcome = 'hand'
  if current == 'x' .. id or redis.call('HEXISTS', index, tombstone(id)) == 1 then
    outcome = 'cancelled'
  elseif current ~= id then
    outcome = 'drop'
  end
  if outcome ~= 'hand' then
    settle(stream, index, id, key, outcome)
  end
  return outcome
end
