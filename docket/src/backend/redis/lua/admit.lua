-- Let a delivery past its limits, or set it aside: take its concurrency slot and its rate
-- allowance, both or neither.
--
-- KEYS: stream, index, schedule, parked, slot, gated, rate (the last three of its scopes; only
--       those of the limits it has are touched)
-- ARGV: id, key, message, now (ms), slot size (0: no concurrency limit), rate count (0: no rate
--       limit), rate window (ms)
-- Returns { 0 } to run it; { 1 } when its slot is full: it waits, settled and acknowledged but
-- kept in the stream, until a slot is released; { 2, due } when its rate is spent: it is back on
-- the schedule, due then (ms).
local stream, index, schedule, parked = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local slot, gated, rate = KEYS[5], KEYS[6], KEYS[7]
local id, key, message, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local size, count, window = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])

-- The holders of the slot whose task is gone: buried as poison after its workers died, it never
-- released its slot. Found by their index entry, which a task keeps until it ends.
local function gone(holders)
  local found = {}
  for first = 1, #holders, 1000 do
    local last = math.min(first + 999, #holders)
    local current = redis.call('HMGET', index, unpack(holders, first, last))
    for i = first, last do
      if not current[i - first + 1] then
        found[#found + 1] = holders[i]
      end
    end
  end
  return found
end

local took = false
if size > 0 then
  if redis.call('SCARD', slot) < size then
    took = redis.call('SADD', slot, key) == 1
  elseif redis.call('SISMEMBER', slot, key) == 0 then
    local holders = redis.call('SMEMBERS', slot)
    local dead = gone(holders)
    for first = 1, #dead, 1000 do
      redis.call('SREM', slot, unpack(dead, first, math.min(first + 999, #dead)))
    end
    if #holders - #dead < size then
      took = redis.call('SADD', slot, key) == 1
    else
      local outcome = aside(stream, index, id, key)
      if outcome == 'keep' then
        redis.call('RPUSH', gated, id)
        redis.call('HSET', index, key, 'g' .. id)
      elseif outcome == 'drop' then
        redis.call('XDEL', stream, id)
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
      redis.call('SREM', slot, key)
    end
    local outcome = aside(stream, index, id, key)
    if outcome == 'keep' then
      store(stream, index, schedule, parked, key, restamp(message, due), due, now)
    end
    if outcome ~= 'settled' then
      redis.call('XDEL', stream, id)
    end
    return { 2, due }
  end
  redis.call('ZADD', rate, now, now .. ':' .. id)
  redis.call('PEXPIRE', rate, window)
end
return { 0 }
