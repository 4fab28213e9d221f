--[[
  updateAgentPresence: sets an agent's status, capacity (the default per channel), capacities per
  channel and auto-away period; every agent serves the account's 'default' queue. Going online or
  gaining capacity hands the agent waiting conversations at once. Emits agent.status_changed when
  the status moves.

  KEYS[1] the agent's state hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] now (ms)   ARGV[4] account id   ARGV[5] agent id
  ARGV[6] status (online|away|busy|offline, '' = unchanged)   ARGV[7] capacity ('' = unchanged)
  ARGV[8] capacities per channel, JSON {channel: n} ('' = unchanged)   ARGV[9] auto-away (ms, 0 = off, '' = unchanged)

  Returns {status, capacity, load}
]]
--- @include "emitEvent"
--- @include "routing"

local prefix, nowIso, nowMs, accountId, agentId = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local stateKey = KEYS[1]
if ARGV[7] ~= '' then redis.call('HSET', stateKey, 'capacity', ARGV[7]) end
if ARGV[8] ~= '' then
  for _, channel in ipairs(routingChannels) do redis.call('HDEL', stateKey, 'cap:' .. channel) end
  for channel, n in pairs(cjson.decode(ARGV[8])) do redis.call('HSET', stateKey, 'cap:' .. channel, n) end
end
if ARGV[9] ~= '' then
  redis.call('HSET', stateKey, 'autoAwayMs', ARGV[9])
  if tonumber(ARGV[9]) == 0 then
    redis.call('ZREM', timersKey(prefix), 'away|' .. agentId)
  elseif redis.call('HGET', stateKey, 'status') == 'online' then
    redis.call('ZADD', timersKey(prefix), nowMs + tonumber(ARGV[9]), 'away|' .. agentId)
  end
end
redis.call('HSETNX', stateKey, 'capacity', 0)
redis.call('HSETNX', stateKey, 'load', 0)
redis.call('HSET', stateKey, 'accountId', accountId)
redis.call('SADD', stateKey .. ':queues', 'default')
redis.call('SADD', queueKey(prefix, accountId, 'default', 'members'), agentId)
local status = ARGV[6]
-- A status the agent or an admin chose stays, even across a reconnect (see leaseAgentSocket).
if status ~= '' then redis.call('HDEL', stateKey, 'awayReason') end
if status == '' then status = redis.call('HGET', stateKey, 'status') or 'offline' end
setAgentStatus(prefix, accountId, agentId, status, nowIso, nowMs, 'set')
return {status, redis.call('HGET', stateKey, 'capacity'), tostring(redis.call('HGET', stateKey, 'load'))}
