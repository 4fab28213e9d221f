--[[
  routeConversation: sends an open, not yet routed conversation down its route: the contact's last
  agent first when sticky applies, else the first target queue, placed at once when an agent has room
  (assigned, or offered when the queue wants acceptance), else waiting with conversation.queued and an
  overflow timer to the next target. Routing an already routed conversation changes nothing.

  KEYS[1] conversation hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] now (ms)
  ARGV[4] targets, JSON [{queueId, timeoutMs}] (queueId 'default' = every agent of the account)
  ARGV[5] priority (0-100, higher first)   ARGV[6] sticky window (ms, 0 = off)   ARGV[7] matched rule ('' = none)

  Returns {'assigned', agentId} | {'offered', agentId} | {'queued', position} | {'waiting'} | {'closed'} | {'missing'}
]]
--- @include "emitEvent"
--- @include "routing"

local prefix, nowIso, nowMs = ARGV[1], ARGV[2], tonumber(ARGV[3])
local convKey = KEYS[1]
if redis.call('EXISTS', convKey) == 0 then return {'missing'} end
local f = redis.call('HMGET', convKey, 'status', 'assigneeId', 'offeredTo', 'routed', 'accountId', 'channel', 'contactId')
if f[1] ~= 'open' then return {'closed'} end
if f[2] and f[2] ~= '' then return {'assigned', f[2]} end
if f[3] then return {'offered', f[3]} end
if f[4] == '1' then return {'waiting'} end

local targets = cjson.decode(ARGV[4])
redis.call('HSET', convKey, 'routed', '1', 'routeTargets', ARGV[4], 'routeStep', 1, 'priority', tonumber(ARGV[5]), 'rule', ARGV[7])
redis.call('HINCRBY', convKey, 'routeGen', 1)
local firstQueue = targets[1].queueId

local window = tonumber(ARGV[6])
if window > 0 then
  local last = redis.call('HMGET', prefix .. ':contact:' .. f[7], 'lastAgentId', 'lastAgentMs')
  -- The last agent, if it serves the route's first queue (a rule's team is not bypassed) and has room.
  if last[1] and nowMs - tonumber(last[2] or '0') <= window and queueStrategy(prefix, f[5], firstQueue) ~= 'manual'
    and redis.call('SISMEMBER', queueKey(prefix, f[5], firstQueue, 'members'), last[1]) == 1 and hasRoom(prefix, last[1], f[6]) then
    redis.call('HSET', convKey, 'teamId', firstQueue)
    place(prefix, convKey, last[1], firstQueue, nowIso, nowMs)
    local c = redis.call('HMGET', convKey, 'assigneeId', 'offeredTo')
    if c[2] then return {'offered', c[2]} end
    return {'assigned', c[1]}
  end
end
return enqueue(prefix, convKey, firstQueue, nowMs, nowIso, nowMs)
