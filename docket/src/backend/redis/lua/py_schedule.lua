-- pydocket protocol: store a task as pydocket's producers do, so that either language's workers
-- and pydocket's tools see it. A due task goes to the stream, a later one is parked in its own
-- hash and its key put in the queue (a sorted set by due time, in epoch seconds); the run's
-- record (the `runs` hash) says `queued` or `scheduled` and keeps the function's name and the
-- pickled arguments, and the key's generation counts up by one, so that an older delivery of
-- the key finds itself superseded when it claims or ends.
--
-- A key that is waiting (`known` set) or running refuses a new task, unless `replace`: then
-- the waiting one leaves the stream or the queue, and a running one is left to find itself
-- superseded. A worker ending a run by a retry or its next recurrence names the delivery
-- (`reschedule`): it is acknowledged and deleted in the same step, and the task takes the
-- key's next generation, unless `expected generation` is older than the stored one (a replace
-- came meanwhile).
--
-- KEYS: stream, queue, parked, runs, state (the state channel)
-- ARGV: key, when (epoch seconds), immediate ('1' to the stream, '0' parked), replace ('1' or
--       '0'), reschedule (the stream id of the delivery this ends; '' for none), expected
--       generation (0 for no check), state JSON (published), [field, value]... (the message)
-- Returns 'OK', 'REPLACED' (`replace` took a waiting task of the key out), 'EXISTS' (the key
-- is taken) or 'SUPERSEDED'.
local stream, queue, parked, runs, state = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local key, when, immediate = ARGV[1], ARGV[2], ARGV[3] == '1'
local replace, reschedule, expected = ARGV[4] == '1', ARGV[5], tonumber(ARGV[6])
local payload = ARGV[7]
local PY_GROUP = 'docket-workers'
local outcome = 'OK'

if expected > 0 then
  local stored = redis.call('HGET', runs, 'generation')
  if stored and tonumber(stored) > expected then
    return 'SUPERSEDED'
  end
end

local message, fields, generation_at = {}, {}, nil
for i = 8, #ARGV, 2 do
  message[#message + 1] = ARGV[i]
  message[#message + 1] = ARGV[i + 1]
  fields[ARGV[i]] = ARGV[i + 1]
  if ARGV[i] == 'generation' then
    generation_at = #message
  end
end

if reschedule ~= '' then
  redis.call('XACK', stream, PY_GROUP, reschedule)
  redis.call('XDEL', stream, reschedule)
else
  if replace then
    local waiting = redis.call('HGET', runs, 'stream_id')
    if waiting and redis.call('XDEL', stream, waiting) == 1 then
      outcome = 'REPLACED'
    end
    if redis.call('ZREM', queue, key) == 1 then
      outcome = 'REPLACED'
    end
    redis.call('DEL', parked)
  elseif redis.call('HEXISTS', runs, 'known') == 1
      or redis.call('HGET', runs, 'state') == 'running' then
    return 'EXISTS'
  end
  -- A key used again after its run ended starts a record of its own (without the old one's
  -- expiry), keeping only the generation counter.
  local previous = redis.call('HGET', runs, 'state')
  if previous == 'completed' or previous == 'failed' or previous == 'cancelled' then
    local generation = redis.call('HGET', runs, 'generation')
    redis.call('DEL', runs)
    if generation then
      redis.call('HSET', runs, 'generation', generation)
    end
  end
  redis.call('HDEL', runs, 'completed_at', 'error', 'result_key')
end

local generation = redis.call('HINCRBY', runs, 'generation', 1)
if generation_at then
  message[generation_at] = tostring(generation)
end
redis.call('HDEL', runs, 'worker', 'started_at')

local record = { 'when', when, 'known', when, 'function', fields['function'], 'args',
  fields['args'], 'kwargs', fields['kwargs'] }
if immediate then
  local id = redis.call('XADD', stream, '*', unpack(message))
  redis.call('HSET', runs, 'state', 'queued', 'stream_id', id, unpack(record))
else
  redis.call('HSET', parked, unpack(message))
  redis.call('ZADD', queue, when, key)
  redis.call('HSET', runs, 'state', 'scheduled', unpack(record))
  redis.call('HDEL', runs, 'stream_id')
end
redis.call('PUBLISH', state, payload)
return outcome
