-- Keep a task's record for a while and publish it to its watchers: the changes a worker makes
-- (running, with progress, completed, failed, retried). A task's first record is written by
-- enqueue.lua as it stores the task, and its cancellation by cancel.lua, so no record here can
-- be older than the one it replaces.
--
-- KEYS: record (the key, also the channel)
-- ARGV: record JSON, time to live (ms)
-- Returns 1.
local record = KEYS[1]
local json, ttl = ARGV[1], ARGV[2]

redis.call('SET', record, json, 'PX', ttl)
redis.call('PUBLISH', record, json)
return 1
