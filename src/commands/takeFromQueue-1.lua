--[[
  takeFromQueue: an agent takes the next conversation (highest priority, longest wait) from a queue it
  serves, for a channel it has room for: how agents work a 'manual' queue. Emits conversation.assigned.

  KEYS[1] the agent's state hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] now (ms)   ARGV[4] account id   ARGV[5] agent id   ARGV[6] queue id

  Returns {'assigned', conversationId} | {'empty'} | {'full'} | {'notmember'}
]]
--- @include "emitEvent"
--- @include "routing"

local prefix, nowIso, nowMs, accountId, agentId, queueId = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
if redis.call('SISMEMBER', queueKey(prefix, accountId, queueId, 'members'), agentId) == 0 then return {'notmember'} end
local bestConv, bestScore, roomSomewhere = nil, nil, false
for _, channel in ipairs(routingChannels) do
  if loadFor(prefix, agentId, channel) < capacityFor(prefix, agentId, channel) then
    roomSomewhere = true
    local waitingKey = queueKey(prefix, accountId, queueId, 'waiting:' .. channel)
    for _ = 1, 1000 do
      local head = redis.call('ZRANGE', waitingKey, 0, 0, 'WITHSCORES')
      if not head[1] then break end
      if stillWaiting(prefix, waitingKey, head[1], queueId) then
        if not bestScore or tonumber(head[2]) < bestScore then bestConv, bestScore = head[1], tonumber(head[2]) end
        break
      end
    end
  end
end
if not roomSomewhere then return {'full'} end
if not bestConv then return {'empty'} end
assignTo(prefix, prefix .. ':conv:' .. bestConv, agentId, nowIso, nowMs, 'conversation.assigned', nil, nil, false)
return {'assigned', bestConv}
