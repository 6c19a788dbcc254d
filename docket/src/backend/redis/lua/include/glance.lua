-- What a keeper's check reads of a partition: how many deliveries are pending in the group (0
-- without a group: nothing was ever delivered) and when the earliest future task falls due
-- (ms, or -1 when nothing is scheduled).

local function glance(stream, schedule)
  local pending = 0
  local ok, summary = pcall(redis.call, 'XPENDING', stream, GROUP)
  if ok then
    pending = summary[1]
  end
  local next_due = -1
  local head = redis.call('ZRANGE', schedule, 0, 0, 'WITHSCORES')
  if #head > 0 then
    next_due = tonumber(head[2])
  end
  return pending, next_due
end
