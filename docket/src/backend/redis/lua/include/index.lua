-- The index: what the index entry of a key says about its task, and the marks written there.
--
-- The index entry of a key says where its task is: a stream id (queued, or delivered and
-- running), `s` (scheduled), `h` (held by a strike), `g` and a stream id (waiting for a
-- concurrency slot), or `x` and a stream id (delivered, and cancelled: no copy of it may start
-- again; whichever settlement reaches that id frees the key). A cancelled delivery also leaves
-- a tombstone in the index, field `\1` and its stream id (no key holds a control character), so
-- that it stays cancelled when a new task of its key overwrites the `x` mark; its settlement
-- removes it. A delivery that a `replace` went beside is named by field `\2` and its key.

-- The index entries of a scheduled task and of a task held by a strike.
local SCHEDULED, HELD = 's', 'h'

-- The index entry of a task waiting for a concurrency slot as the stream entry `id`.
local function gated_mark(id)
  return 'g' .. id
end

-- The index entry of the delivery `id`, cancelled while delivered.
local function cancelled_mark(id)
  return 'x' .. id
end

-- The index field of the tombstone of the cancelled delivery `id`.
local function tombstone(id)
  return '\1' .. id
end

-- The index field naming the deliveries of `key` that a `replace` went beside (each was
-- running, or read ahead, when a newer task took the key), their stream ids separated by
-- spaces: a cancel of the key reaches each of them. Each one's settlement removes it
-- (`forget_beside`), so the field names only deliveries not settled yet.
local function beside(key)
  return '\2' .. key
end

-- The deliveries the field `beside(key)` names, in the order they were added.
local function beside_ids(index, key)
  local ids = {}
  for id in string.gmatch(redis.call('HGET', index, beside(key)) or '', '%S+') do
    ids[#ids + 1] = id
  end
  return ids
end

-- Name the delivery `id` of `key` as one a `replace` went beside.
local function add_beside(index, key, id)
  local ids = beside_ids(index, key)
  for _, known in ipairs(ids) do
    if known == id then
      return
    end
  end
  ids[#ids + 1] = id
  redis.call('HSET', index, beside(key), table.concat(ids, ' '))
end

-- Whether a `replace` went beside the delivery `id` of `key`, not settled yet.
local function is_beside(index, key, id)
  for _, known in ipairs(beside_ids(index, key)) do
    if known == id then
      return true
    end
  end
  return false
end

-- Forget that a `replace` went beside the delivery `id` of `key`, now settled; the others it
-- went beside are still named.
local function forget_beside(index, key, id)
  local ids = beside_ids(index, key)
  local kept = {}
  for _, known in ipairs(ids) do
    if known ~= id then
      kept[#kept + 1] = known
    end
  end
  if #kept == #ids then
    return
  elseif #kept == 0 then
    redis.call('HDEL', index, beside(key))
  else
    redis.call('HSET', index, beside(key), table.concat(kept, ' '))
  end
end

-- The stream id a gated or cancelled index entry carries after its mark.
local function marked_id(current)
  return string.sub(current, 2)
end

-- Whether the index entry `current` (not nil) is that of a scheduled task.
local function is_scheduled(current)
  return current == SCHEDULED
end

-- Whether the index entry `current` (not nil) is that of a task held by a strike.
local function is_held(current)
  return current == HELD
end

-- Whether the index entry `current` (not nil) is that of a task waiting for a concurrency slot.
local function is_gated(current)
  return string.sub(current, 1, 1) == 'g'
end

-- Whether the index entry `current` (not nil) is that of a delivery cancelled while delivered.
local function is_cancelled(current)
  return string.sub(current, 1, 1) == 'x'
end

-- Whether the index entry `current` frees its key for a new task: none, or a cancelled run.
local function is_free(current)
  return not current or is_cancelled(current)
end
