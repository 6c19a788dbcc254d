-- Give back a delivery pending to a worker that will not run it: store it anew at the end of the
-- stream, as it was, and settle this copy, so that another worker starts it at once. One whose
-- key no longer names it (cancelled or superseded meanwhile) is settled as a takeover would
-- settle it (`judge`), and one that is gone from the stream is acknowledged. Returns 1 when it
-- was given back.
--
-- include: index, delivery, entry, settle

local function give_back(stream, index, id)
  local entry = redis.call('XRANGE', stream, id, id)[1]
  if not entry then
    redis.call('XACK', stream, GROUP, id)
    return 0
  end
  if judge(stream, index, entry) ~= 'hand' then
    return 0
  end
  local copy = redis.call('XADD', stream, '*', unpack(entry[2]))
  local key = entry_field(entry, 'k')
  if key then
    redis.call('HSET', index, key, copy)
  end
  redis.call('XACK', stream, GROUP, id)
  redis.call('XDEL', stream, id)
  return 1
end
