-- Give back a concurrency slot, and queue the first task waiting for it, due now.
--
-- include: index, entry, store
-- KEYS: stream, index, schedule, parked, slot, gated
-- ARGV: id (the delivery giving the slot back), now (ms)
-- Returns 1 when a waiting task was queued.
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local slot, gated = KEYS[5], KEYS[6]
local now = tonumber(ARGV[2])

redis.call('SREM', slot, ARGV[1])
while true do
  local id = redis.call('LPOP', gated)
  if not id then
    return 0
  end
  -- Gone when cancelled meanwhile; superseded when a task was scheduled under its key since.
  local entry = redis.call('XRANGE', stream, id, id)[1]
  if entry then
    local key, message = entry_field(entry, 'k'), entry_field(entry, 'm')
    redis.call('XDEL', stream, id)
    if key and message and redis.call('HGET', index, key) == gated_mark(id) then
      store(stream, index, schedule, parked, key, restamp(message, now), now, now)
      return 1
    end
  end
end
