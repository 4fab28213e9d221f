--[[
  resolveConversation: closes an open conversation, withdraws it from its queue or offer, frees its
  agent's capacity and at once hands that agent the next waiting conversation (highest priority,
  longest wait). Emits conversation.resolved (then conversation.assigned for each one handed out).
  Resolving twice changes nothing. The conversation joins the retention index (prefix:resolved).

  KEYS[1] conversation hash   KEYS[2] the conversation's open-conversation key
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] resolved by (agent id or '')   ARGV[4] now (ms)

  Returns {'resolved'} | {'already'} | {'missing'}
]]
--- @include "emitEvent"
--- @include "routing"

local prefix, nowIso, nowMs = ARGV[1], ARGV[2], tonumber(ARGV[4])
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local f = redis.call('HMGET', KEYS[1], 'status', 'assigneeId', 'id', 'accountId', 'inboxId', 'visitorHint', 'channel')
if f[1] ~= 'open' then return {'already'} end
local withdrawn = withdrawOffer(prefix, KEYS[1])
redis.call('HSET', KEYS[1], 'status', 'resolved', 'resolvedAt', nowIso, 'resolvedAtMs', nowMs, 'resolvedBy', ARGV[3],
  'updatedAt', nowIso, 'assigneeId', '')
redis.call('HDEL', KEYS[1], 'routed', 'routingClaim', 'waitingSince', 'waitingSinceMs', 'placeInLineMs', 'handedBackBy')
redis.call('HINCRBY', KEYS[1], 'routeGen', 1) -- timers of this life of the conversation no longer apply
if redis.call('GET', KEYS[2]) == f[3] then redis.call('DEL', KEYS[2]) end
redis.call('ZADD', prefix .. ':resolved', nowMs, f[3])
local n = redis.call('HINCRBY', KEYS[1], 'resolutions', 1)
emitEvent(prefix, f[4], 'evt_' .. f[3] .. '_r' .. n, 'conversation.resolved', conversationSource(f[4], f[5]),
  f[3], nowIso, conversationJson(KEYS[1], '"previousAssigneeId":' .. cjson.encode(f[2] or '')), f[2] or '', f[6] or '')
if f[2] and f[2] ~= '' then
  releaseCapacity(prefix, f[4], f[2], f[7], f[3], true)
  drainForAgent(prefix, f[4], f[2], nowIso, nowMs, f[7])
end
if withdrawn then drainForAgent(prefix, f[4], withdrawn, nowIso, nowMs, f[7]) end
return {'resolved'}
