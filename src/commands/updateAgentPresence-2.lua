--[[
  updateAgentPresence: sets an agent's status and/or capacity. Going online or gaining capacity
  drains the waiting queue into the agent at once. Emits agent.status_changed when the status moves.

  KEYS[1] account's online agents (zset, score = load)   KEYS[2] account's waiting queue
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] account id   ARGV[4] agent id
  ARGV[5] status (online|away|busy|offline, '' = unchanged)   ARGV[6] capacity ('' = unchanged)

  Returns {status, capacity, load}
]]
--- @include "emitEvent"
--- @include "assignment"

local prefix, nowIso, accountId, agentId = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local stateKey = prefix .. ':agentstate:' .. agentId
local previous = redis.call('HGET', stateKey, 'status') or 'offline'
local status = ARGV[5]
if status == '' then status = previous end
if ARGV[6] ~= '' then redis.call('HSET', stateKey, 'capacity', ARGV[6]) end
redis.call('HSETNX', stateKey, 'capacity', 0)
redis.call('HSETNX', stateKey, 'load', 0)
redis.call('HSET', stateKey, 'status', status, 'accountId', accountId)
local load = tonumber(redis.call('HGET', stateKey, 'load'))
if status == 'online' then
  redis.call('ZADD', KEYS[1], load, agentId)
else
  redis.call('ZREM', KEYS[1], agentId)
end
if status ~= previous then
  redis.call('HSET', stateKey, 'statusSince', nowIso)
  local n = redis.call('HINCRBY', stateKey, 'statusChanges', 1)
  emitEvent(prefix, accountId, 'evt_' .. agentId .. '_s' .. n, 'agent.status_changed', '/accounts/' .. accountId,
    agentId, nowIso, cjson.encode({ agentId = agentId, status = status, previousStatus = previous }), agentId, '')
end
if status == 'online' then drainWaiting(prefix, KEYS[1], KEYS[2], nowIso) end
local capacity = redis.call('HGET', stateKey, 'capacity')
return {status, capacity, tostring(redis.call('HGET', stateKey, 'load'))}
