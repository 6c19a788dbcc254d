-- Settle a delivery that cannot or may not run again, keeping it as a dead letter; then drop
-- the oldest letters past the retention limits.
--
-- include: index, delivery, entry, settle
-- KEYS: stream, index, dead, died
-- ARGV: id, key, dead letter, always ('1': keep it even when a newer task holds the key, for
--       entries that never were a docket task), consumer, now (ms), most letters kept, oldest
--       letter kept (age, ms)
-- Returns 1 when the dead letter was kept, 0 when not: this copy is stale (settled or taken
-- over elsewhere), the task was cancelled, or a newer task took the key.
local stream, index, dead, died = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, key, letter, always, consumer = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1', ARGV[5]
local now, most, age = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])

local outcome = decide(stream, index, id, key, consumer)
if outcome == 'stale' then
  return 0
end
-- A delivery whose key names another task, or that a `replace` went beside (its replacement
-- may have ended since, even as a dead letter of its own), was superseded: no letter, as no
-- retry; the key's letter, like the key, is the newer task's. Unless it is no docket task at
-- all. One whose key names nothing and that nothing superseded (an entry of a producer that
-- keeps no index) keeps its letter: nothing is dropped silently.
local kept = outcome == 'keep'
  or (outcome == 'drop' and (always
    or (redis.call('HEXISTS', index, key) == 0 and not is_beside(index, key, id))))
if kept then
  -- The letter first: should a write fail, the key still names the task.
  redis.call('HSET', dead, key, letter)
  redis.call('ZADD', died, now, key)
  if outcome == 'keep' then
    redis.call('HDEL', index, key)
  end
  -- Retention: the oldest letters past the count, then those past the age, a bounded number
  -- per burial so that one call stays short.
  local over = redis.call('ZCARD', died) - most
  local old = {}
  if over > 0 then
    old = redis.call('ZRANGE', died, 0, math.min(over, 100) - 1)
  end
  if #old == 0 then
    old = redis.call('ZRANGEBYSCORE', died, '-inf', now - age, 'LIMIT', 0, 100)
  end
  if #old > 0 then
    redis.call('HDEL', dead, unpack(old))
    redis.call('ZREM', died, unpack(old))
  end
end
settle(stream, index, id, key, outcome)
return kept and 1 or 0
