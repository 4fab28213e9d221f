--[[
  transferToQueue: moves an open conversation to a team's queue (or 'default', every agent) with a
  note: its agent or pending offer is released, it joins the queue and is placed at once when a member
  has room. Emits conversation.transferred, then conversation.assigned or conversation.queued.
  A conversation already waiting keeps the time it started waiting.

  KEYS[1] conversation hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] now (ms)   ARGV[4] queue id   ARGV[5] note ('' = none)

  Returns {'assigned', agentId} | {'offered', agentId} | {'queued', position} | {'closed'} | {'missing'}
]]
--- @include "emitEvent"
--- @include "routing"

local prefix, nowIso, nowMs, queueId = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local convKey = KEYS[1]
if redis.call('EXISTS', convKey) == 0 then return {'missing'} end
local f = redis.call('HMGET', convKey, 'status', 'assigneeId', 'id', 'accountId', 'channel', 'inboxId', 'visitorHint',
  'teamId', 'waitingSinceMs')
if f[1] ~= 'open' then return {'closed'} end
local withdrawn = withdrawOffer(prefix, convKey)
local previous = f[2] or ''
if previous ~= '' then
  releaseCapacity(prefix, f[4], previous, f[5], f[3])
  redis.call('HSET', convKey, 'assigneeId', '')
end
local targets = cjson.encode({ { queueId = queueId, timeoutMs = 0 } })
redis.call('HSET', convKey, 'routed', '1', 'routeTargets', targets, 'routeStep', 1, 'teamId', queueId, 'updatedAt', nowIso)
redis.call('HINCRBY', convKey, 'routeGen', 1)
local n = redis.call('HINCRBY', convKey, 'transfers', 1)
local extra = '"previousAssigneeId":' .. cjson.encode(previous) .. ',"previousTeamId":'
  .. cjson.encode(((f[8] and f[8] ~= 'default') and f[8]) or cjson.null)
if ARGV[5] ~= '' then extra = extra .. ',"note":' .. cjson.encode(ARGV[5]) end
local envelope = emitEvent(prefix, f[4], 'evt_' .. f[3] .. '_t' .. n, 'conversation.transferred', conversationSource(f[4], f[6]),
  f[3], nowIso, conversationJson(convKey, extra), previous, f[7] or '')
-- Not straight back to the agent who passed it on (it may wait for another member instead).
excluded.agentId, excluded.convId = previous ~= '' and previous or withdrawn, f[3]
local result = enqueue(prefix, convKey, queueId, tonumber(f[9] or nowMs), nowIso, nowMs)
if previous ~= '' then drainForAgent(prefix, f[4], previous, nowIso, nowMs, f[5]) end
if withdrawn then drainForAgent(prefix, f[4], withdrawn, nowIso, nowMs, f[5]) end
excluded.agentId, excluded.convId = nil, nil
return result
