-- Settling a delivery: deciding what becomes of it, and acknowledging it.
--
-- include: index, delivery, entry

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
  if current == cancelled_mark(id) or redis.call('HEXISTS', index, tombstone(id)) == 1 then
    return 'cancelled'
  end
  return 'drop'
end

-- Acknowledge the delivery `id` and, unless it is to stay in the stream (gated), delete it; a
-- cancelled one frees its key (unless a newer task took it) and its tombstone; a cancelled or
-- superseded one is no longer named as the one a replace went beside.
local function settle(stream, index, id, key, outcome, stay)
  if outcome == 'cancelled' then
    if redis.call('HGET', index, key) == cancelled_mark(id) then
      redis.call('HDEL', index, key)
    end
    redis.call('HDEL', index, tombstone(id))
  end
  if outcome == 'cancelled' or outcome == 'drop' then
    forget_beside(index, key, id)
  end
  redis.call('XACK', stream, GROUP, id)
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
  local id, key = entry[1], entry_field(entry, 'k')
  if not key then
    return 'hand'
  end
  local current = redis.call('HGET', index, key)
  local outcome = 'hand'
  if current == cancelled_mark(id) or redis.call('HEXISTS', index, tombstone(id)) == 1 then
    outcome = 'cancelled'
  elseif current ~= id then
    outcome = 'drop'
  end
  if outcome ~= 'hand' then
    settle(stream, index, id, key, outcome)
  end
  return outcome
end
