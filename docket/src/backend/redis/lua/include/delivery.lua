-- Deliveries: whether a stream entry is delivered, and to whom.
--
-- include: index

-- The consumer a stream entry is delivered to and not yet settled by; nil when it is not
-- pending (never delivered, or settled), or when the group does not exist yet (no worker ever
-- read the stream, so nothing was delivered).
local function owner(stream, id)
  local ok, pending = pcall(redis.call, 'XPENDING', stream, GROUP, id, id, 1)
  if ok and pending[1] then
    return pending[1][2]
  end
  return nil
end

-- Whether the index entry `current` of a key is a waiting task: scheduled, or in the stream and
-- not yet delivered. Held, gated and cancelled tasks are not waiting; delivered ones are
-- running.
local function is_waiting(stream, current)
  if not current then
    return false
  end
  if is_held(current) or is_gated(current) or is_cancelled(current) then
    return false
  end
  return is_scheduled(current) or owner(stream, current) == nil
end
