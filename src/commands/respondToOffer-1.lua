--[[
  respondToOffer: the agent accepts an offered conversation (it becomes theirs: conversation.assigned),
  or declines it, or the offer times out (ARGV[5] = the offer's number, from the timer): the reserved
  capacity is freed, the agent is passed over for one offer period, and the conversation goes back to
  its place in the queue and on to the next agent with room.

  KEYS[1] conversation hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] now (ms)   ARGV[4] agent id ('' with a timeout)
  ARGV[5] 'accept' | 'decline' | 'timeout'   ARGV[6] offer number (timeout only)

  Returns {'assigned'} | {'declined'} | {'stale'} (no such offer pending) | {'closed'} | {'missing'}
]]
--- @include "emitEvent"
--- @include "routing"

local prefix, nowIso, nowMs = ARGV[1], ARGV[2], tonumber(ARGV[3])
local convKey = KEYS[1]
if redis.call('EXISTS', convKey) == 0 then return {'missing'} end
local f = redis.call('HMGET', convKey, 'status', 'id', 'accountId', 'channel', 'offeredTo', 'offerN', 'assigneeId')
if f[1] ~= 'open' then return {'closed'} end
local agentId = f[5]
-- A repeated accept (a retry after a lost answer) finds the conversation already this agent's.
if ARGV[5] == 'accept' and f[7] == ARGV[4] and ARGV[4] ~= '' then return {'assigned'} end
if not agentId then return {'stale'} end
if ARGV[5] == 'timeout' then
  if f[6] ~= ARGV[6] then return {'stale'} end
elseif agentId ~= ARGV[4] then
  return {'stale'}
end
if ARGV[5] == 'accept' then
  assignTo(prefix, convKey, agentId, nowIso, nowMs, 'conversation.assigned', nil, nil, true)
  return {'assigned'}
end
letOfferGo(prefix, convKey, nowIso, nowMs)
drainForAgent(prefix, f[3], agentId, nowIso, nowMs, f[4])
return {'declined'}
