--[[
  removeAgent: an agent leaves the account: offline (agent.status_changed), out of every queue, and
  each conversation it held or was offered goes back to its queue and on to another agent at once. One it
  held takes back the place in line it had before (handBackToQueue); one it was offered never lost it.

  KEYS[1] the agent's state hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] now (ms)   ARGV[4] account id   ARGV[5] agent id

  Returns the number of conversations handed back
]]
--- @include "emitEvent"
--- @include "routing"

local prefix, nowIso, nowMs, accountId, agentId = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
setAgentStatus(prefix, accountId, agentId, 'offline', nowIso, nowMs, 'removed')
for _, queueId in ipairs(redis.call('SMEMBERS', KEYS[1] .. ':queues')) do
  redis.call('SREM', queueKey(prefix, accountId, queueId, 'members'), agentId)
  for _, channel in ipairs(routingChannels) do redis.call('ZREM', queueKey(prefix, accountId, queueId, 'avail:' .. channel), agentId) end
end
redis.call('DEL', KEYS[1] .. ':queues')
redis.call('ZREM', timersKey(prefix), 'away|' .. agentId, 'gone|' .. agentId, 'handback|' .. agentId)
local convs = redis.call('SMEMBERS', KEYS[1] .. ':convs')
for _, convId in ipairs(convs) do
  local convKey = prefix .. ':conv:' .. convId
  local f = redis.call('HMGET', convKey, 'status', 'assigneeId', 'offeredTo', 'channel')
  releaseCapacity(prefix, accountId, agentId, f[4], convId)
  if f[1] == 'open' and f[2] == agentId then
    handBackToQueue(prefix, convKey, agentId, nowIso, nowMs)
  elseif f[1] == 'open' and f[3] == agentId then
    -- Only offered: it kept its place in line all along.
    redis.call('HDEL', convKey, 'offeredTo', 'offerExpiresMs')
    requeue(prefix, convKey, nowIso, nowMs)
  end
end
redis.call('DEL', KEYS[1], KEYS[1] .. ':convs', KEYS[1] .. ':sockets')
return #convs
