--[[
  assignToAgent: hands an open conversation to a named agent (manual assignment or transfer).
  Refused when the agent is at capacity unless forced. A previous assignee is released and the
  waiting queue drained into the capacity that frees. Emits conversation.assigned, or
  conversation.transferred when it had an assignee.

  KEYS[1] conversation hash   KEYS[2] account's online agents   KEYS[3] account's waiting queue
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] agent id   ARGV[4] '1' to exceed capacity
  ARGV[5] a note for the new agent ('' = none), carried in the event

  Returns {'assigned'} | {'unchanged'} | {'full'} | {'closed'} | {'missing'}
]]
--- @include "emitEvent"
--- @include "assignment"

local prefix, nowIso, agentId = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local f = redis.call('HMGET', KEYS[1], 'status', 'assigneeId')
if f[1] ~= 'open' then return {'closed'} end
local previous = f[2] or ''
if previous == agentId then return {'unchanged'} end
local state = redis.call('HMGET', prefix .. ':agentstate:' .. agentId, 'load', 'capacity')
if ARGV[4] ~= '1' and tonumber(state[1] or '0') >= tonumber(state[2] or '0') then return {'full'} end
if previous ~= '' then releaseFrom(prefix, previous, KEYS[2]) end
local eventType = 'conversation.assigned'
if previous ~= '' then eventType = 'conversation.transferred' end
assignTo(prefix, KEYS[1], agentId, KEYS[2], KEYS[3], nowIso, eventType, previous, ARGV[5])
if previous ~= '' then drainWaiting(prefix, KEYS[2], KEYS[3], nowIso) end
return {'assigned'}
