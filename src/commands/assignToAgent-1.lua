--[[
  assignToAgent: hands an open conversation to a named agent of its account (manual assignment,
  transfer to an agent, or accepting it from a queue). Refused when the agent is at capacity for the
  conversation's channel unless forced. A pending offer is withdrawn (or, when it was this agent's,
  accepted); a previous assignee is released and takes the next waiting conversation at once.
  Emits conversation.assigned, or conversation.transferred when it had an assignee.

  KEYS[1] conversation hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] now (ms)   ARGV[4] agent id   ARGV[5] '1' to exceed capacity
  ARGV[6] a note for the new agent ('' = none), carried in the event

  Returns {'assigned'} | {'unchanged'} | {'full'} | {'unknown'} | {'closed'} | {'missing'}
]]
--- @include "emitEvent"
--- @include "routing"

local prefix, nowIso, nowMs, agentId = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local f = redis.call('HMGET', KEYS[1], 'status', 'assigneeId', 'id', 'accountId', 'channel', 'offeredTo')
if f[1] ~= 'open' then return {'closed'} end
if redis.call('HGET', agentKey(prefix, agentId), 'accountId') ~= f[4] then return {'unknown'} end
local previous = f[2] or ''
if previous == agentId then return {'unchanged'} end
local reserved = f[6] == agentId
if not reserved and ARGV[5] ~= '1' and loadFor(prefix, agentId, f[5]) >= capacityFor(prefix, agentId, f[5]) then return {'full'} end
local withdrawn
if not reserved then withdrawn = withdrawOffer(prefix, KEYS[1]) end
if previous ~= '' then releaseCapacity(prefix, f[4], previous, f[5], f[3]) end
redis.call('HSET', KEYS[1], 'routed', '1')
local eventType = 'conversation.assigned'
if previous ~= '' then eventType = 'conversation.transferred' end
assignTo(prefix, KEYS[1], agentId, nowIso, nowMs, eventType, previous, ARGV[6], reserved)
if previous ~= '' then drainForAgent(prefix, f[4], previous, nowIso, nowMs, f[5]) end
if withdrawn then drainForAgent(prefix, f[4], withdrawn, nowIso, nowMs, f[5]) end
return {'assigned'}
