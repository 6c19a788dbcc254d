-- pydocket protocol: a run ends (completed, failed, cancelled): its record says so, with the
-- extra fields given (`error`, `result_key`), and expires after the time to live (or goes at
-- once, for 0); its progress goes; its delivery is acknowledged and deleted. A run of an older
-- generation than the key's leaves the record to the newer run and only cleans up after
-- itself. A run whose key was cancelled while it ran ends `cancelled`, whatever it reports.
--
-- KEYS: runs, state (the state channel), progress, stream
-- ARGV: generation (0 for no check), state, completed at (ISO 8601), time to live (seconds),
--       state JSON (published; '' for none), stream id ('' for none), key, [field, value]...
--       (more fields of the record)
-- Returns 'OK' or 'SUPERSEDED'.
local runs, state, progress, stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local generation, ended, completed = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local ttl, payload, id, key = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local PY_GROUP = 'docket-workers'

local function finish()
  if payload ~= '' then
    redis.call('PUBLISH', state, payload)
  end
  if id ~= '' then
    redis.call('XACK', stream, PY_GROUP, id)
    redis.call('XDEL', stream, id)
  end
end

if generation > 0 then
  local current = redis.call('HGET', runs, 'generation')
  if not current or tonumber(current) > generation then
    local tagged = redis.call('HGET', progress, 'generation')
    if not tagged or tonumber(tagged) <= generation then
      redis.call('DEL', progress)
    end
    finish()
    return 'SUPERSEDED'
  end
end

if redis.call('HGET', runs, 'state') == 'cancelled' then
  ended = 'cancelled'
  payload = cjson.encode({ type = 'state', key = key, state = ended, completed_at = completed })
end
local fields = { 'state', ended, 'completed_at', completed }
for i = 8, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
end
redis.call('HSET', runs, unpack(fields))
if ttl > 0 then
  redis.call('EXPIRE', runs, ttl)
else
  redis.call('DEL', runs)
end
redis.call('DEL', progress)
finish()
return 'OK'
