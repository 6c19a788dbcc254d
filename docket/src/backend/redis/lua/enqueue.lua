-- Store tasks, honouring their keys: one, or a batch in one round trip (at most 500 tasks a
-- call: the caller splits larger batches).
--
-- Every task is decided first, by reads alone, and only then written: a predictable error
-- (a missing consumer group, say) writes nothing.
--
-- Tasks that keep results get their first record here, queued or scheduled, as they are
-- stored: a task is never without its record, and a worker's later record is never
-- overwritten by it. Duplicates leave the record of the task they found as it is.
--
-- A task with a cooldown is dropped while its scope's cooldown key lives; a task stored (added
-- or replaced) sets that key for its window. A duplicate neither drops on it nor sets it. Tasks
-- without a cooldown touch no cooldown key.
--
-- A `replace` that finds its key's task delivered adds beside it, names it in the index (for a
-- cancel of the key to reach), and tells the workers (a signal `r`): a worker that read that
-- delivery ahead and has not started it drops it, as the replace would have had it still
-- waited in the stream; a worker running it lets it run.
--
-- include: index, delivery, store, signals
-- KEYS: stream, index, schedule, parked, held, signals, task keys... (for each task in order:
--       its record's key when the tasks keep records, then its cooldown key when it has a
--       cooldown)
-- ARGV: now (ms since the epoch), keep (ms a record is kept after its task is due; 0 when the
--       tasks keep none), [key, message, due (ms), mode ('add': keep a task already holding the
--       key; 'replace': swap a waiting one, queued, scheduled, held by a strike or waiting for
--       a concurrency slot; 'fresh': a generated key no other task can hold, skip the
--       look-up), record (the first record's JSON; empty when none is kept), cooldown (ms of
--       its cooldown window; 0 when it has none)]... (one group a task)
-- Returns, for each task, 0 (added), 1 (replaced), 2 (duplicate) or 3 (cooled down).
local stream, index, schedule, parked, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local signals = KEYS[6]
local now, keep = tonumber(ARGV[1]), tonumber(ARGV[2])

local tasks, outcomes = {}, {}
-- The task of this batch that last took a key, by key.
local taken = {}
-- The cooldown keys a task of this batch set, so the later ones of its scope are dropped.
local cooling = {}
-- The next of the task keys.
local next_key = 7
for i = 3, #ARGV, 6 do
  local task = { key = ARGV[i], message = ARGV[i + 1], due = tonumber(ARGV[i + 2]) }
  if keep > 0 then
    task.record, task.json = KEYS[next_key], ARGV[i + 4]
    next_key = next_key + 1
  end
  local window = tonumber(ARGV[i + 5])
  if window > 0 then
    task.cooldown, task.window = KEYS[next_key], window
    next_key = next_key + 1
  end
  local mode, outcome = ARGV[i + 3], 0
  if mode ~= 'fresh' then
    local earlier = taken[task.key]
    if earlier then
      -- An earlier task of this batch holds the key, waiting: keep it, or take its place.
      if mode == 'add' then
        outcome = 2
      else
        task.replaces = earlier
        outcome = 1
      end
    else
      local current = redis.call('HGET', index, task.key)
      if not is_free(current) then
        if mode == 'add' then
          outcome = 2
        elseif is_held(current) or is_gated(current) or is_waiting(stream, current) then
          -- Queued, scheduled, held or gated, not running: take it out. A delivered one is
          -- running: it is left alone, and this task is added beside it.
          task.remove = current
          outcome = 1
        else
          -- Delivered: running, or read ahead by a worker that has not started it.
          task.beside = current
        end
      end
    end
  end
  if outcome ~= 2 and task.cooldown then
    if cooling[task.cooldown] or redis.call('EXISTS', task.cooldown) == 1 then
      -- Another task of its scope was stored less than the window ago: drop this one, and
      -- leave what it would have replaced.
      outcome = 3
    else
      cooling[task.cooldown] = true
    end
  end
  if outcome == 1 and task.replaces then
    task.replaces.skip = true
    task.remove, task.beside = task.replaces.remove, task.replaces.beside
  end
  outcomes[#outcomes + 1] = outcome
  if outcome < 2 then
    tasks[#tasks + 1] = task
    taken[task.key] = task
  end
end

-- Index writes of due tasks, made with one HSET at the end.
local batch = {}
for _, task in ipairs(tasks) do
  if not task.skip then
    if task.beside then
      add_beside(index, task.key, task.beside)
      signal(signals, 'r', task.key, 'i', task.beside)
    elseif not task.remove then
      -- The key was free.
    elseif is_scheduled(task.remove) then
      redis.call('ZREM', schedule, task.key)
      redis.call('HDEL', parked, task.key)
    elseif is_held(task.remove) then
      redis.call('HDEL', held, task.key)
    elseif is_gated(task.remove) then
      -- Its id stays in the slot's queue; the release that reaches it finds the entry gone.
      redis.call('XDEL', stream, marked_id(task.remove))
    else
      redis.call('XDEL', stream, task.remove)
    end
    store(stream, index, schedule, parked, task.key, task.message, task.due, now, batch)
    if task.record then
      redis.call('SET', task.record, task.json, 'PX', keep + math.max(0, task.due - now))
      redis.call('PUBLISH', task.record, task.json)
    end
  end
  if task.cooldown then
    -- Set for a task a later one of the batch replaced too: it was stored, if briefly.
    redis.call('SET', task.cooldown, '1', 'PX', task.window)
  end
end
local writes = {}
for key, id in pairs(batch) do
  writes[#writes + 1] = key
  writes[#writes + 1] = id
end
if #writes > 0 then
  redis.call('HSET', index, unpack(writes))
end
return outcomes
