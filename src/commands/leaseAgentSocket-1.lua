--[[
  leaseAgentSocket: an agent's live socket holds a lease, renewed by its web process. While any lease of
  the agent is live the agent is connected. When the last one closes, or lapses because its web process
  died, the gone|{agent} routing timer turns an online agent away once the grace period has passed
  (agent.status_changed, reason "disconnected"), so no conversation is assigned to someone who is not
  there. The agent's next socket, or the renewal of a socket that was live all along (a stalled web
  process or Redis), brings it back online (reason "reconnected"), unless its status was set in between.
  Lease times are Redis's clock (TIME), never a web process's: processes whose clocks differ cannot
  prune each other's live leases.

  KEYS[1] the agent's state hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] agent id   ARGV[4] connection id
  ARGV[5] open | renew | close | untracked   ARGV[6] lease (ms)   ARGV[7] grace (ms)   ARGV[8] the caller's now (ms)
  untracked: a socket on a web process whose presence does not follow sockets (grace 0): a pending check
  left from when it did is dropped, and an agent it set away is back; nothing is written otherwise.

  Returns 1 while the agent has a live socket, else 0 (also for an agent that was removed)
]]
--- @include "emitEvent"
--- @include "routing"

local prefix, nowIso, agentId, connId, op = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leaseMs, graceMs = tonumber(ARGV[6]), tonumber(ARGV[7])
local stateKey = KEYS[1]
local accountId = redis.call('HGET', stateKey, 'accountId')
if not accountId then return 0 end

local function reconnect()
  if redis.call('HGET', stateKey, 'status') == 'away' and redis.call('HGET', stateKey, 'awayReason') == 'disconnected' then
    setAgentStatus(prefix, accountId, agentId, 'online', nowIso, nowMs, 'reconnected')
  end
end

if op == 'untracked' then
  if redis.call('ZREM', timersKey(prefix), 'gone|' .. agentId) == 1 or tonumber(redis.call('HGET', stateKey, 'disconnectGraceMs') or '0') > 0 then
    redis.call('HSET', stateKey, 'disconnectGraceMs', 0)
  end
  reconnect()
  return 0
end

local socketsKey = stateKey .. ':sockets'
if op == 'close' then
  redis.call('ZREM', socketsKey, connId)
else
  redis.call('ZADD', socketsKey, nowMs + leaseMs, connId)
end
redis.call('ZREMRANGEBYSCORE', socketsKey, '-inf', nowMs)
redis.call('HSET', stateKey, 'disconnectGraceMs', graceMs)
-- The check is due when the newest lease would lapse, plus the grace: every renewal pushes it later,
-- so a web process that dies leaves the check behind it. The timers zset runs on the callers' clocks
-- (fireRoutingTimers picks due timers by its own), so the due time is converted to the caller's.
local newest = redis.call('ZRANGE', socketsKey, -1, -1, 'WITHSCORES')
local lapsesInMs = (tonumber(newest[2]) or nowMs) - nowMs
redis.call('ZADD', timersKey(prefix), tonumber(ARGV[8]) + lapsesInMs + graceMs, 'gone|' .. agentId)

if op ~= 'close' then reconnect() end
return newest[1] and 1 or 0
