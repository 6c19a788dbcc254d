-- What a keeper's check reads of a partition: how many deliveries are pending in the group (0
-- without a group: nothing was ever delivered), whether any of them has stalled (1 when one has
-- been idle for the redelivery timeout `idle` (ms): only then is a reader asked to take stalled
-- ones over), and when the earliest future task falls due (ms, or -1 when nothing is scheduled).

local function glance(stream, schedule, idle)
  local pending, stalled = 0, 0
  local ok, summary = pcall(redis.call, 'XPENDING', stream, GROUP)
  if ok then
    pending = summary[1]
  end
  if pending > 0 then
    if #redis.call('XPENDING', stream, GROUP, 'IDLE', idle, '-', '+', 1) > 0 then
      stalled = 1
    end
  end
  local next_due = -1
  local head = redis.call('ZRANGE', schedule, 0, 0, 'WITHSCORES')
  if #head > 0 then
    next_due = tonumber(head[2])
  end
  return pending, stalled, next_due
end
