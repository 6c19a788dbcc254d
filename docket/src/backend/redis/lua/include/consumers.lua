-- The consumers of the group: who was heard from, and forgetting those gone silent.

-- Call `each(name, silent, pending)` for every consumer of the group (`silent`: ms since it was
-- last seen), and forget, as it goes, each one other than `consumer` that has nothing pending
-- and has been silent longer than `forget` ms: a worker that died idle (a live one blocked in
-- its read is made again by the read that serves it). Without a stream or group there are no
-- consumers.
local function each_consumer(stream, consumer, forget, each)
  local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', stream, GROUP)
  for _, info in ipairs(ok and consumers or {}) do
    local fields = {}
    for i = 1, #info, 2 do
      fields[info[i]] = info[i + 1]
    end
    local name, silent = fields['name'], tonumber(fields['idle']) or forget
    each(name, silent, fields['pending'])
    if fields['pending'] == 0 and silent > forget and name ~= consumer then
      redis.call('XGROUP', 'DELCONSUMER', stream, GROUP, name)
    end
  end
end
