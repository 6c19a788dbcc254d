-- Let a delivery past its limits, or set it aside: take its concurrency slot and its rate
-- allowance, both or neither.
--
-- A slot is held by a delivery (its stream id), not by a key: two runs of one key (a `replace`
-- while one runs, or a copy taken over from a stalled worker) each need a slot, and the copy
-- taken over keeps the slot its first delivery took.
--
-- include: index, delivery, entry, settle, store
-- KEYS: stream, index, schedule, parked, slot, gated, rate (the last three of its scopes; only
--       those of the limits it has are touched)
-- ARGV: id, key, message, now (ms), slot size (0: no concurrency limit), rate count (0: no rate
--       limit), rate window (ms), consumer
-- Returns { 0 } to run it; { 1 } when its slot is full: it waits, settled and acknowledged but
-- kept in the stream, until a slot is released; { 2, due } when its rate is spent: it is back on
-- the schedule, due then (ms). A stale copy (settled or taken over elsewhere) answers { 1 }
-- and must not run; a cancelled one is set aside too ({ 1 }).
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local slot, gated, rate = KEYS[5], KEYS[6], KEYS[7]
local id, key, message, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local size, count, window = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local consumer = ARGV[8]

-- The holders of the slot whose delivery is no longer pending: settled without releasing (a
-- worker that crashed between, or a task buried as poison after its workers died).
local function gone(holders)
  local found = {}
  for _, holder in ipairs(holders) do
    if not owner(stream, holder) then
      found[#found + 1] = holder
    end
  end
  return found
end

-- Settled already (an earlier call of this one whose reply was lost set it aside), or taken
-- over: this copy must not run, even if a slot is free now.
if owner(stream, id) ~= consumer then
  return { 1 }
end

local took = false
if size > 0 then
  if redis.call('SCARD', slot) < size then
    took = redis.call('SADD', slot, id) == 1
  elseif redis.call('SISMEMBER', slot, id) == 0 then
    local holders = redis.call('SMEMBERS', slot)
    local dead = gone(holders)
    for first = 1, #dead, 1000 do
      redis.call('SREM', slot, unpack(dead, first, math.min(first + 999, #dead)))
    end
    if #holders - #dead < size then
      took = redis.call('SADD', slot, id) == 1
    else
      local outcome = decide(stream, index, id, key, consumer)
      if outcome == 'keep' then
        redis.call('RPUSH', gated, id)
        redis.call('HSET', index, key, gated_mark(id))
      end
      if outcome ~= 'stale' then
        settle(stream, index, id, key, outcome, outcome == 'keep')
      end
      return { 1 }
    end
  end
end

if count > 0 then
  redis.call('ZREMRANGEBYSCORE', rate, '-inf', now - window)
  if redis.call('ZCARD', rate) >= count then
    local oldest = redis.call('ZRANGE', rate, 0, 0, 'WITHSCORES')
    local due = tonumber(oldest[2]) + window
    if took then
      redis.call('SREM', slot, id)
    end
    local outcome = decide(stream, index, id, key, consumer)
    if outcome == 'keep' then
      store(stream, index, schedule, parked, key, restamp(message, due), due, now)
    end
    if outcome ~= 'stale' then
      settle(stream, index, id, key, outcome)
    end
    return { 2, due }
  end
  redis.call('ZADD', rate, now, now .. ':' .. id)
  redis.call('PEXPIRE', rate, window)
end
return { 0 }
