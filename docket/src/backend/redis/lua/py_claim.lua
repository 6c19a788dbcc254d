-- pydocket protocol: a worker takes a delivery it read. A delivery of an older generation
-- than the key's (a replace or a retry came after it) or of a cancelled key is acknowledged,
-- deleted and not run; otherwise the run's record says `running`, by whom and since when, and
-- its progress starts at 0 of 100.
--
-- KEYS: runs, progress, state (the state channel), stream
-- ARGV: worker, started at (ISO 8601), generation (0 for no check), state JSON (published),
--       key, stream id
-- Returns 'OK', 'SUPERSEDED' or 'CANCELLED'.
local runs, progress, state, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local worker, started, generation = ARGV[1], ARGV[2], tonumber(ARGV[3])
local payload, key, id = ARGV[4], ARGV[5], ARGV[6]
local PY_GROUP = 'docket-workers'

if generation > 0 then
  local current = redis.call('HGET', runs, 'generation')
  if not current or tonumber(current) > generation then
    redis.call('XACK', stream, PY_GROUP, id)
    redis.call('XDEL', stream, id)
    return 'SUPERSEDED'
  end
end

if redis.call('HGET', runs, 'state') == 'cancelled' then
  redis.call('XACK', stream, PY_GROUP, id)
  redis.call('XDEL', stream, id)
  local ended = redis.call('HGET', runs, 'completed_at') or started
  redis.call('PUBLISH', state, cjson.encode({ type = 'state', key = key, state = 'cancelled',
    completed_at = ended }))
  return 'CANCELLED'
end

redis.call('HSET', runs, 'state', 'running', 'worker', worker, 'started_at', started)
redis.call('HDEL', runs, 'known', 'stream_id')
redis.call('HSET', progress, 'current', '0', 'total', '100', 'generation', generation)
redis.call('HDEL', progress, 'message', 'updated_at')
redis.call('PUBLISH', state, payload)
return 'OK'
