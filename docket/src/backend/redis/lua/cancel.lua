-- Cancel the task of a key wherever it is: remove it when it waits (queued, scheduled, held or
-- gated); when it was delivered (running on a live worker, or pending on a dead one), mark it
-- cancelled in the index, so no copy of it is handed out again, and tell every worker to stop
-- it. A copy held by a strike beside a newer task is removed too, and a delivery a `replace`
-- went beside is stopped as well. A kept record of the task that has not ended says cancelled
-- from here on.
--
-- include: index, delivery, signals
-- KEYS: stream, index, schedule, parked, held, signals, record (the key's kept record, also
--       its channel)
-- ARGV: key, now (ms since the epoch)
-- Returns 1 when a task was removed or marked cancelled, 0 when the key holds nothing.
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local held, signals, record = KEYS[5], KEYS[6], KEYS[7]
local key, now = ARGV[1], ARGV[2]

-- The record's status becomes cancelled, unless it ended already; it is kept as long as it
-- was going to be, and the state it was in joins its `changes`. The record is the JSON
-- `TaskRecord::encode` writes, whose `"status":"…"`, `"attempt":…`, `"updated_ms":…` and
-- `"changes":[` fields cannot occur inside its strings (their quotes are escaped), and whose
-- top-level `status`, `attempt` and `updated_ms` come before `changes`.
local function record_cancelled()
  local json = redis.call('GET', record)
  local status = json and string.match(json, '"status":"(%a+)"')
  if not status or status == 'completed' or status == 'failed' or status == 'cancelled' then
    return
  end
  local ttl = redis.call('PTTL', record)
  if ttl <= 0 then
    return
  end
  -- The state it ends joins the earlier ones, in `changes`: the record's last field, when it
  -- has one (then the JSON ends with `}]}`, which no record without it does).
  local change = string.format('{"status":"%s","attempt":%s,"at_ms":%s}', status,
    string.match(json, '"attempt":(%d+)') or '1', string.match(json, '"updated_ms":(%d+)') or now)
  if string.sub(json, -3) == '}]}' and string.find(json, ',"changes":%[{') then
    json = string.sub(json, 1, -3) .. ',' .. change .. ']}'
  else
    json = string.sub(json, 1, -2) .. ',"changes":[' .. change .. ']}'
  end
  json = string.gsub(json, '"status":"%a+"', '"status":"cancelled"', 1)
  json = string.gsub(json, '"updated_ms":%d+', '"updated_ms":' .. now, 1)
  redis.call('SET', record, json, 'PX', ttl)
  redis.call('PUBLISH', record, json)
end

-- The deliveries a `replace` went beside, still delivered: each stopped, and marked so that no
-- copy of it starts again (a signal reaches every earlier delivery of the key as well).
local stopped_aside = false
local aside = beside_ids(index, key)
if #aside > 0 then
  redis.call('HDEL', index, beside(key))
end
for _, id in ipairs(aside) do
  if owner(stream, id) then
    redis.call('HSET', index, tombstone(id), 1)
    signal(signals, 'c', key, 'i', id)
    stopped_aside = true
  end
end

local current = redis.call('HGET', index, key)
local held_copy = redis.call('HDEL', held, key) == 1
if not current then
  if stopped_aside then
    record_cancelled()
  end
  return (held_copy or stopped_aside) and 1 or 0
end
if is_cancelled(current) then
  return 1 -- cancelled already; its run is being stopped
end
if is_scheduled(current) then
  redis.call('ZREM', schedule, key)
  redis.call('HDEL', parked, key)
elseif is_gated(current) then
  -- Its id stays in the slot's queue; the release that reaches it finds the entry gone.
  redis.call('XDEL', stream, marked_id(current))
elseif not is_held(current) then
  if owner(stream, current) then
    redis.call('HSET', index, key, cancelled_mark(current), tombstone(current), 1)
    signal(signals, 'c', key, 'i', current)
    record_cancelled()
    return 1
  end
  redis.call('XDEL', stream, current)
end
redis.call('HDEL', index, key)
record_cancelled()
return 1
