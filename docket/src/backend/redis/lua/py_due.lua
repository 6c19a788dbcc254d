-- pydocket protocol: move tasks whose time has come from the queue to the stream, as
-- pydocket's workers do every quarter second. The caller read the due keys (ZRANGEBYSCORE) and
-- names each key's hashes; a key no longer due, or no longer in the queue (cancelled or
-- replaced meanwhile), is left alone. The run's record says `queued` and names its stream id,
-- so that a cancel can take the entry out again.
--
-- KEYS: queue, stream, [parked, runs, state (the state channel)]... (one group a key)
-- ARGV: now (epoch seconds), keys... (one a group of KEYS, in order)
-- Returns how many tasks were moved.
local queue, stream = KEYS[1], KEYS[2]
local now = tonumber(ARGV[1])

local moved = 0
for i = 2, #ARGV do
  local key = ARGV[i]
  local parked, runs, state = KEYS[3 * i - 3], KEYS[3 * i - 2], KEYS[3 * i - 1]
  local score = redis.call('ZSCORE', queue, key)
  if score and tonumber(score) <= now then
    local stored = redis.call('HGETALL', parked)
    redis.call('ZREM', queue, key)
    if #stored > 0 then
      local task = {}
      for j = 1, #stored, 2 do
        task[stored[j]] = stored[j + 1]
      end
      local message = {}
      for _, field in ipairs({ 'key', 'when', 'function', 'args', 'kwargs', 'attempt',
          'generation', 'traceparent', 'tracestate' }) do
        if task[field] then
          message[#message + 1] = field
          message[#message + 1] = task[field]
        end
      end
      local id = redis.call('XADD', stream, '*', unpack(message))
      redis.call('DEL', parked)
      redis.call('HSET', runs, 'state', 'queued', 'stream_id', id)
      redis.call('PUBLISH', state, cjson.encode({ type = 'state', key = key, state = 'queued',
        when = task['when'] }))
      moved = moved + 1
    end
  end
end
return moved
