--[[
  fireRoutingTimers: runs the routing timers that are due, each at most once whichever worker gets it:
    offer|{conv}|{n}            an offer not accepted in time goes to the next agent (respondToOffer's timeout)
    overflow|{conv}|{gen}|{step} a conversation still waiting at route step {step} moves to the next target
    redrain|{account}|{queue}|{channel}  agents who were passed over after declining may be offered again
    away|{agent}                an online agent inactive for its auto-away period becomes away
    gone|{agent}                an online agent with no live socket for its grace period becomes away (leaseAgentSocket)
    handback|{agent}            an agent still away by disconnect hands its open conversations back to their queues

  KEYS[1] the timers zset (member -> due, ms)
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] now (ms)   ARGV[4] at most this many timers
  ARGV[5] handback period (ms) after an agent goes away by disconnect (0 or absent = its conversations stay with it)

  Returns the number of timers fired
]]
--- @include "emitEvent"
--- @include "routing"

local prefix, nowIso, nowMs = ARGV[1], ARGV[2], tonumber(ARGV[3])
local handbackMs = tonumber(ARGV[5] or '0')
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowMs, 'LIMIT', 0, tonumber(ARGV[4]))

local function split(member)
  local parts = {}
  for part in string.gmatch(member, '[^|]+') do parts[#parts + 1] = part end
  return parts
end

local function offerExpired(convId, n)
  local convKey = prefix .. ':conv:' .. convId
  local f = redis.call('HMGET', convKey, 'status', 'accountId', 'channel', 'offeredTo', 'offerN')
  if f[1] ~= 'open' or not f[4] or f[5] ~= n then return end
  letOfferGo(prefix, convKey, nowIso, nowMs)
  drainForAgent(prefix, f[2], f[4], nowIso, nowMs, f[3])
end

local function overflow(convId, gen, step)
  local convKey = prefix .. ':conv:' .. convId
  local f = redis.call('HMGET', convKey, 'status', 'assigneeId', 'offeredTo', 'routeGen', 'routeStep', 'routeTargets',
    'offerExpiresMs', 'waitingSinceMs')
  if f[1] ~= 'open' or (f[2] and f[2] ~= '') or f[4] ~= gen or f[5] ~= step then return end
  local targets = cjson.decode(f[6])
  local nextStep = tonumber(step) + 1
  if not targets[nextStep] then return end
  -- The team did not take it in time, offered or not: a pending offer is withdrawn and the next target gets it.
  local withdrawn = withdrawOffer(prefix, convKey)
  leaveWaiting(prefix, convKey)
  redis.call('HSET', convKey, 'routeStep', nextStep)
  enqueue(prefix, convKey, targets[nextStep].queueId, tonumber(f[8] or nowMs), nowIso, nowMs)
  if withdrawn then drainForAgent(prefix, redis.call('HGET', convKey, 'accountId'), withdrawn, nowIso, nowMs) end
end

local function autoAway(member, agentId)
  local stateKey = agentKey(prefix, agentId)
  local f = redis.call('HMGET', stateKey, 'status', 'autoAwayMs', 'lastActivityMs', 'accountId')
  local period = tonumber(f[2] or '0')
  if f[1] ~= 'online' or period <= 0 then return end
  local at = tonumber(f[3] or '0') + period
  if at > nowMs then
    redis.call('ZADD', KEYS[1], at, member)
    return
  end
  setAgentStatus(prefix, f[4], agentId, 'away', nowIso, nowMs, 'inactive')
end

local function disconnected(member, agentId)
  local stateKey = agentKey(prefix, agentId)
  local socketsKey = stateKey .. ':sockets'
  -- Leases are scored on Redis's clock (leaseAgentSocket), so they are pruned on it too.
  local t = redis.call('TIME')
  local redisNowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', socketsKey, '-inf', redisNowMs)
  local f = redis.call('HMGET', stateKey, 'status', 'accountId', 'disconnectGraceMs')
  -- Presence stopped following the sockets (the agent's sockets are now on web processes with a grace of 0).
  if not f[2] or tonumber(f[3] or '0') <= 0 then return end
  local newest = redis.call('ZRANGE', socketsKey, -1, -1, 'WITHSCORES')
  -- A socket is live again (or still, on another web process): check again after it would lapse,
  -- on this zset's clock (the callers'), however far it is from Redis's.
  if newest[2] then
    redis.call('ZADD', KEYS[1], nowMs + (tonumber(newest[2]) - redisNowMs) + tonumber(f[3]), member)
    return
  end
  if f[1] ~= 'online' then return end
  setAgentStatus(prefix, f[2], agentId, 'away', nowIso, nowMs, 'disconnected')
  redis.call('HSET', stateKey, 'awayReason', 'disconnected', 'awaySinceMs', nowMs)
  if handbackMs > 0 then redis.call('ZADD', KEYS[1], nowMs + handbackMs, 'handback|' .. agentId) end
end

-- An agent away by disconnect all through the handback period: its customers are not left waiting on it.
-- Each open conversation it holds goes back to its queue and on to another agent with room, as when an
-- agent is removed. Back online (reconnected) or a status chosen since: nothing happens. A timer left from an
-- earlier disconnect (the agent came back, then went again) waits for this one's period: the batch's ZREM of
-- the shared member may have taken the new timer with it, so it is put back at the new due time.
local function handBack(agentId)
  local stateKey = agentKey(prefix, agentId)
  local f = redis.call('HMGET', stateKey, 'status', 'awayReason', 'accountId', 'awaySinceMs')
  if f[1] ~= 'away' or f[2] ~= 'disconnected' or not f[3] or handbackMs <= 0 then return end
  local dueAt = tonumber(f[4] or '0') + handbackMs
  if dueAt > nowMs then
    redis.call('ZADD', KEYS[1], dueAt, 'handback|' .. agentId)
    return
  end
  for _, convId in ipairs(redis.call('SMEMBERS', stateKey .. ':convs')) do
    local convKey = prefix .. ':conv:' .. convId
    local c = redis.call('HMGET', convKey, 'status', 'assigneeId', 'channel')
    if c[1] == 'open' and c[2] == agentId then
      releaseCapacity(prefix, f[3], agentId, c[3], convId, true)
      handBackToQueue(prefix, convKey, agentId, nowIso, nowMs)
    end
  end
  refreshAgent(prefix, f[3], agentId)
end

for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local p = split(member)
  if p[1] == 'offer' then offerExpired(p[2], p[3])
  elseif p[1] == 'overflow' then overflow(p[2], p[3], p[4])
  elseif p[1] == 'redrain' then drainQueue(prefix, p[2], p[3], p[4], nowIso, nowMs)
  elseif p[1] == 'away' then autoAway(member, p[2])
  elseif p[1] == 'gone' then disconnected(member, p[2])
  elseif p[1] == 'handback' then handBack(p[2])
  end
end
return #due
