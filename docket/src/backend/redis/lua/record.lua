-- Keep a task's state for a while and publish it to its watchers.
--
-- A new task's first state (queued or scheduled) is recorded by its producer after storing the
-- task, so a worker may have started it, and recorded that, first: then the first state is stale
-- and is dropped, never to overwrite a later one. While the task runs and its worker has not
-- recorded anything yet, the first state is kept, so the task is never without a state.
--
-- include: index, delivery
-- KEYS: state (the key, also the channel), stream, index
-- ARGV: state JSON, time to live (ms), key (the task's), first ('1' when this is a new task's
--       first state)
-- Returns 1 when recorded, 0 when dropped as stale.
local state, stream, index = KEYS[1], KEYS[2], KEYS[3]
local json, ttl, key, first = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'

if first then
  local current = redis.call('HGET', index, key)
  if is_free(current) then
    return 0 -- it ended already (or was cancelled): its own last state stands
  end
  local set_aside = is_scheduled(current) or is_held(current) or is_gated(current)
  if not set_aside and owner(stream, current) then
    -- It is running: the worker's state stands, if it has recorded one yet.
    if not redis.call('SET', state, json, 'PX', ttl, 'NX') then
      return 0
    end
    redis.call('PUBLISH', state, json)
    return 1
  end
end
redis.call('SET', state, json, 'PX', ttl)
redis.call('PUBLISH', state, json)
return 1
