--[[
  settleDelivery: records one attempt of a lane's head and moves the lane on. 2xx: delivered, the
  next event of the lane is due now. A failure: due again after the delay, until the retry window
  has passed (then kept as failed, and the lane moves on). 410: failed, and the subscription is
  disabled (webhook.disabled). A subscription whose every delivery has failed for pauseAfter is
  paused (webhook.paused). Both events are written here, with the change they report.
  An attempt whose lease was taken over (a worker that outlived it) is recorded and changes nothing else.

  KEYS[1] the due set
  ARGV[1] prefix  ARGV[2] subscription id  ARGV[3] event id  ARGV[4] lease token
  ARGV[5] outcome: ok | retry | gone | refused   ARGV[6] HTTP status ('' = none)  ARGV[7] error ('' = none)
  ARGV[8] duration ms  ARGV[9] retry delay ms  ARGV[10] retry window ms  ARGV[11] pause after ms
  ARGV[12] retention seconds of a settled delivery  ARGV[13] account id  ARGV[14] now (ISO)  ARGV[15] attempt start (ISO)
  Returns 'delivered' | 'retrying' | 'failed' | 'disabled' | 'stale' | 'missing', and ',paused' when it paused
]]
--- @include "emitEvent"

local due, prefix, subId, eventId, token, outcome = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local httpStatus, errorText = ARGV[6], ARGV[7]
local durationMs, delayMs, windowMs, pauseAfterMs = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local retention, accountId, nowIso, startedIso = tonumber(ARGV[12]), ARGV[13], ARGV[14], ARGV[15]
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local base = prefix .. ':wh:' .. subId
local deliveryKey, attemptsKey, healthKey = base .. ':dlv:' .. eventId, base .. ':dlv:' .. eventId .. ':attempts', base .. ':health'

local f = redis.call('HMGET', deliveryKey, 'lane', 'lease', 'windowStart')
if not f[1] then return 'missing' end
local lane = f[1]
local member, laneKey = subId .. '|' .. lane, base .. ':lane:' .. lane

local n = redis.call('HINCRBY', deliveryKey, 'attempts', 1)
redis.call('RPUSH', attemptsKey, cjson.encode({ attempt = n, at = startedIso, durationMs = durationMs, outcome = outcome,
  status = (httpStatus ~= '' and tonumber(httpStatus)) or cjson.null, error = (errorText ~= '' and errorText) or cjson.null }))
redis.call('LTRIM', attemptsKey, -100, -1)
redis.call('HSET', deliveryKey, 'lastAttemptAt', startedIso, 'lastStatus', httpStatus, 'lastError', errorText)
if f[2] ~= token then return 'stale' end
redis.call('HDEL', deliveryKey, 'lease')

-- The head leaves its lane; the next event of the conversation is due now.
local function advance()
  if redis.call('LINDEX', laneKey, 0) == eventId then redis.call('LPOP', laneKey) end
  if redis.call('LLEN', laneKey) == 0 then
    redis.call('ZREM', due, member)
    redis.call('SREM', base .. ':lanes', lane)
  else
    redis.call('ZADD', due, nowMs, member)
  end
  redis.call('HDEL', deliveryKey, 'nextAttemptAt')
  redis.call('EXPIRE', deliveryKey, retention)
  redis.call('EXPIRE', attemptsKey, retention)
end

-- Pauses or disables the subscription (once) and says so in an event.
local function turnOff(eventType, letter, reason, failingSinceIso)
  local recordKey = prefix .. ':webhook:' .. subId
  local raw = redis.call('GET', recordKey)
  if not raw then return false end
  local record = cjson.decode(raw)
  if record.enabled ~= true then return false end
  record.enabled = false
  record.disabledReason = reason
  record.updatedAt = nowIso
  if eventType == 'webhook.paused' then record.pausedAt = nowIso end
  redis.call('SET', recordKey, cjson.encode(record))
  redis.call('SADD', prefix .. ':whoff', subId)
  local k = redis.call('HINCRBY', healthKey, 'offs', 1)
  emitEvent(prefix, accountId, 'evt_' .. subId .. '_' .. letter .. k, eventType, '/accounts/' .. accountId, subId, nowIso,
    cjson.encode({ id = subId, accountId = accountId, url = record.url, reason = reason, failingSince = failingSinceIso or cjson.null }), '', '')
  return true
end

if outcome == 'ok' then
  redis.call('HSET', deliveryKey, 'status', 'succeeded', 'deliveredAt', nowIso)
  redis.call('HDEL', healthKey, 'failingSince', 'failingSinceIso')
  redis.call('HSET', healthKey, 'lastSuccessAt', nowIso)
  advance()
  return 'delivered'
end

if redis.call('HSETNX', healthKey, 'failingSince', nowMs) == 1 then redis.call('HSET', healthKey, 'failingSinceIso', startedIso) end
local failingSince = tonumber(redis.call('HGET', healthKey, 'failingSince'))
local failingSinceIso = redis.call('HGET', healthKey, 'failingSinceIso')

if outcome == 'gone' then
  redis.call('HSET', deliveryKey, 'status', 'failed', 'failedReason', 'the endpoint answered 410 Gone')
  advance()
  turnOff('webhook.disabled', 'd', 'the endpoint answered 410 Gone', failingSinceIso)
  return 'disabled'
end

local result
if outcome == 'refused' or nowMs - (tonumber(f[3]) or nowMs) >= windowMs then
  redis.call('HSET', deliveryKey, 'status', 'failed', 'failedReason', (outcome == 'refused' and errorText) or 'retried for the whole retry window')
  advance()
  result = 'failed'
else
  -- Never wait past the end of the retry window (one last attempt comes then).
  delayMs = math.min(delayMs, math.max(0, (tonumber(f[3]) or nowMs) + windowMs - nowMs))
  redis.call('HSET', deliveryKey, 'status', 'pending', 'nextAttemptAt', nowMs + delayMs)
  redis.call('ZADD', due, nowMs + delayMs, member)
  result = 'retrying'
end
if nowMs - failingSince >= pauseAfterMs and turnOff('webhook.paused', 'p', 'paused: every delivery failed since ' .. failingSinceIso, failingSinceIso) then
  result = result .. ',paused'
end
return result
