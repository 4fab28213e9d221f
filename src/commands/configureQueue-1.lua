--[[
  configureQueue: creates or changes a team's routing queue (strategy, offer timeout, members), or
  removes it. Members who join with room take waiting conversations at once; a removed queue's waiting
  conversations move to the account's 'default' queue, keeping their place.

  KEYS[1] the queue's cfg hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] now (ms)   ARGV[4] account id   ARGV[5] queue id
  ARGV[6] strategy (least_busy|round_robin|longest_idle|manual)   ARGV[7] offer timeout (ms, 0 = assign directly)
  ARGV[8] members, JSON [agentId] ('' = unchanged)   ARGV[9] '1' to remove the queue

  Returns the number of members
]]
--- @include "emitEvent"
--- @include "routing"

local prefix, nowIso, nowMs, accountId, queueId = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local membersKey = queueKey(prefix, accountId, queueId, 'members')

local function leave(agentId)
  redis.call('SREM', membersKey, agentId)
  redis.call('SREM', agentKey(prefix, agentId) .. ':queues', queueId)
  for _, channel in ipairs(routingChannels) do redis.call('ZREM', queueKey(prefix, accountId, queueId, 'avail:' .. channel), agentId) end
end

if ARGV[9] == '1' then
  for _, agentId in ipairs(redis.call('SMEMBERS', membersKey)) do leave(agentId) end
  for _, channel in ipairs(routingChannels) do
    local waitingKey = queueKey(prefix, accountId, queueId, 'waiting:' .. channel)
    local entries = redis.call('ZRANGE', waitingKey, 0, -1, 'WITHSCORES')
    local defaultKey = queueKey(prefix, accountId, 'default', 'waiting:' .. channel)
    for i = 1, #entries, 2 do
      local convKey = prefix .. ':conv:' .. entries[i]
      if redis.call('HGET', convKey, 'teamId') == queueId then
        redis.call('HSET', convKey, 'teamId', 'default', 'routeTargets', '[{"queueId":"default","timeoutMs":0}]', 'routeStep', 1)
        redis.call('HINCRBY', convKey, 'routeGen', 1)
        redis.call('ZADD', defaultKey, entries[i + 1], entries[i])
      end
    end
    redis.call('DEL', waitingKey)
    drainQueue(prefix, accountId, 'default', channel, nowIso, nowMs)
  end
  for _, channel in ipairs(routingChannels) do redis.call('DEL', queueKey(prefix, accountId, queueId, 'avail:' .. channel)) end
  redis.call('DEL', KEYS[1], membersKey, queueKey(prefix, accountId, queueId, 'turns'))
  return 0
end

redis.call('HSET', KEYS[1], 'strategy', ARGV[6], 'offerTimeoutMs', ARGV[7])
if ARGV[8] ~= '' then
  local wanted = {}
  for _, agentId in ipairs(cjson.decode(ARGV[8])) do wanted[agentId] = true end
  for _, agentId in ipairs(redis.call('SMEMBERS', membersKey)) do
    if not wanted[agentId] then leave(agentId) end
  end
  for agentId in pairs(wanted) do
    redis.call('SADD', membersKey, agentId)
    redis.call('SADD', agentKey(prefix, agentId) .. ':queues', queueId)
  end
end
local members = redis.call('SMEMBERS', membersKey)
for _, agentId in ipairs(members) do refreshAgentInQueue(prefix, accountId, queueId, agentId) end
for _, channel in ipairs(routingChannels) do drainQueue(prefix, accountId, queueId, channel, nowIso, nowMs) end
return #members
