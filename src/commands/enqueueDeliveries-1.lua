--[[
  enqueueDeliveries: appends events to their subscriptions' delivery lanes: one FIFO list per
  (subscription, conversation) whose head alone is in flight, so a retried event can never arrive
  after a later one of the same conversation. A delivery that exists already is left alone (a
  dispatcher that retries its batch adds nothing twice). A lane that was empty becomes due now.
  The retry window starts at the first claim (claimDeliveries), not here: events queued behind a
  retrying head get their own full window.

  KEYS[1] the due set (lane -> when its head may be attempted; a claimed lane's lease end)
  ARGV[1] prefix, then 5 per delivery: subscription id, event id, lane, event JSON, event type
  Returns how many deliveries were new.
]]
local due, prefix = KEYS[1], ARGV[1]
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = 0
for i = 2, #ARGV, 5 do
  local subId, eventId, lane, event, eventType = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local base = prefix .. ':wh:' .. subId
  local deliveryKey = base .. ':dlv:' .. eventId
  if redis.call('EXISTS', deliveryKey) == 0 then
    redis.call('HSET', deliveryKey, 'event', event, 'type', eventType, 'lane', lane, 'status', 'pending', 'attempts', 0,
      'createdAt', nowMs, 'nextAttemptAt', nowMs)
    if redis.call('RPUSH', base .. ':lane:' .. lane, eventId) == 1 then
      redis.call('ZADD', due, 'NX', nowMs, subId .. '|' .. lane)
      redis.call('SADD', base .. ':lanes', lane)
    end
    redis.call('ZADD', base .. ':dlvs', 0, string.format('%015d', nowMs) .. ':' .. eventId)
    added = added + 1
  end
end
return added
