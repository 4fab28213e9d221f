--[[
  redeliverDelivery: sends a settled delivery again (same webhook-id and body), at the end of its
  conversation's lane, with a fresh retry window.

  KEYS[1] the due set
  ARGV[1] prefix  ARGV[2] subscription id  ARGV[3] event id
  Returns 'queued' | 'pending' (still on its way) | 'missing'
]]
local due, prefix, subId, eventId = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local base = prefix .. ':wh:' .. subId
local deliveryKey = base .. ':dlv:' .. eventId
local f = redis.call('HMGET', deliveryKey, 'status', 'lane')
if not f[1] then return 'missing' end
if f[1] == 'pending' then return 'pending' end
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', deliveryKey, 'status', 'pending', 'nextAttemptAt', nowMs)
-- A fresh window, started at its next claim (it may wait behind a retrying head).
redis.call('HDEL', deliveryKey, 'failedReason', 'deliveredAt', 'windowStart')
redis.call('PERSIST', deliveryKey)
redis.call('PERSIST', deliveryKey .. ':attempts')
if redis.call('RPUSH', base .. ':lane:' .. f[2], eventId) == 1 then
  redis.call('ZADD', due, 'NX', nowMs, subId .. '|' .. f[2])
  redis.call('SADD', base .. ':lanes', f[2])
end
return 'queued'
