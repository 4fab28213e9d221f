-- The routing core's shared moves. Every script that changes who holds a conversation includes this,
-- so capacity, queues and offers are only ever changed inside one atomic script.
--
-- Per account, one routing queue per team plus 'default' (every agent of the account):
--   acc:{a}:q:{q}:cfg             hash: strategy, offerTimeoutMs, turn (round-robin counter), paceMs, lastDequeueMs
--   acc:{a}:q:{q}:members         set of agent ids
--   acc:{a}:q:{q}:avail:{channel} zset of members online with room for that channel, best first by strategy
--   acc:{a}:q:{q}:waiting:{channel} zset of conversation ids, score = (100 - priority) * 1e13 + waiting since (ms)
--   acc:{a}:q:{q}:turns           hash agent id -> the queue's turn when it last gave that agent one (round robin)
-- Per agent: agentstate:{id} hash (status, capacity, cap:{channel}, load, load:{channel}, lastAssignedMs, ...),
--   agentstate:{id}:queues (set of queue ids), agentstate:{id}:convs (conversations held or offered).
-- Timers (overflow, offer expiry, auto-away) are members of one zset scored by when they are due, written
-- in the same script as the move that needs them, so none is lost to a crash.

local routingChannels = { 'webchat', 'wechat', 'sms', 'email' }
local priorityBand = 10000000000000
-- Least busy scores load, then idle time: ms since 2024 stay below the load band (for decades), and
-- load up to the 1,000 capacity maximum keeps the score an exact double.
local loadBand, idleEpochMs = 1000000000000, 1704067200000

local function queueKey(prefix, accountId, queueId, part)
  return prefix .. ':acc:' .. accountId .. ':q:' .. queueId .. ':' .. part
end
local function agentKey(prefix, agentId) return prefix .. ':agentstate:' .. agentId end
local function timersKey(prefix) return prefix .. ':routingtimers' end

local function capacityFor(prefix, agentId, channel)
  local f = redis.call('HMGET', agentKey(prefix, agentId), 'cap:' .. channel, 'capacity')
  return tonumber(f[1] or f[2] or '0')
end
local function loadFor(prefix, agentId, channel)
  return tonumber(redis.call('HGET', agentKey(prefix, agentId), 'load:' .. channel) or '0')
end
local function hasRoom(prefix, agentId, channel)
  local f = redis.call('HMGET', agentKey(prefix, agentId), 'status', 'load:' .. channel, 'cap:' .. channel, 'capacity')
  return f[1] == 'online' and tonumber(f[2] or '0') < tonumber(f[3] or f[4] or '0')
end

-- A queue's strategy, read once per script run (scripts consult it many times).
local strategyCache = {}
local function queueStrategy(prefix, accountId, queueId)
  local k = accountId .. '|' .. queueId
  local s = strategyCache[k]
  if not s then
    s = redis.call('HGET', queueKey(prefix, accountId, queueId, 'cfg'), 'strategy') or 'least_busy'
    strategyCache[k] = s
  end
  return s
end

-- availScore: lower is picked first. Least busy: load, then longest idle; longest idle: oldest last
-- assignment; round robin: the oldest turn in this queue.
local function availScore(prefix, accountId, queueId, strategy, agentId, channel)
  if strategy == 'round_robin' then
    return tonumber(redis.call('HGET', queueKey(prefix, accountId, queueId, 'turns'), agentId) or '0')
  end
  local last = tonumber(redis.call('HGET', agentKey(prefix, agentId), 'lastAssignedMs') or '0')
  if strategy == 'longest_idle' then return last end
  return loadFor(prefix, agentId, channel) * loadBand + math.max(0, last - idleEpochMs)
end

-- refreshAgentInQueue / refreshAgent: keep the agent in each avail set exactly when it can take more.
-- The agent's state is read in one HMGET: {status, capacity, lastAssignedMs, then cap and load per channel}.
local snapshotFields = { 'status', 'capacity', 'lastAssignedMs' }
for _, channel in ipairs(routingChannels) do
  snapshotFields[#snapshotFields + 1] = 'cap:' .. channel
  snapshotFields[#snapshotFields + 1] = 'load:' .. channel
end
local function agentSnapshot(prefix, agentId)
  return redis.call('HMGET', agentKey(prefix, agentId), unpack(snapshotFields))
end
local function refreshAgentInQueue(prefix, accountId, queueId, agentId, snap)
  local strategy = queueStrategy(prefix, accountId, queueId)
  -- Only members: a conversation of this queue held by an outsider (sticky, manual) must not enrol them.
  if redis.call('SISMEMBER', queueKey(prefix, accountId, queueId, 'members'), agentId) == 0 then strategy = 'manual' end
  local s = snap or agentSnapshot(prefix, agentId)
  local last = tonumber(s[3] or '0')
  for i, channel in ipairs(routingChannels) do
    local availKey = queueKey(prefix, accountId, queueId, 'avail:' .. channel)
    local cap = tonumber(s[2 + 2 * i] or s[2] or '0')
    local load = tonumber(s[3 + 2 * i] or '0')
    if strategy ~= 'manual' and s[1] == 'online' and load < cap then
      local score
      if strategy == 'round_robin' then
        score = tonumber(redis.call('HGET', queueKey(prefix, accountId, queueId, 'turns'), agentId) or '0')
      elseif strategy == 'longest_idle' then score = last
      else score = load * loadBand + math.max(0, last - idleEpochMs) end
      redis.call('ZADD', availKey, score, agentId)
    else
      redis.call('ZREM', availKey, agentId)
    end
  end
end
local function refreshAgent(prefix, accountId, agentId)
  local snap = agentSnapshot(prefix, agentId)
  for _, queueId in ipairs(redis.call('SMEMBERS', agentKey(prefix, agentId) .. ':queues')) do
    refreshAgentInQueue(prefix, accountId, queueId, agentId, snap)
  end
end

local function agentLoadJson(prefix, agentId, channel)
  local f = redis.call('HMGET', agentKey(prefix, agentId), 'load:' .. channel, 'cap:' .. channel, 'capacity')
  return '"agent":' .. cjson.encode({ id = agentId, load = tonumber(f[1] or '0'), capacity = tonumber(f[2] or f[3] or '0'), channel = channel })
end

-- take / release: count a conversation against an agent's capacity for its channel, or free it.
-- While drainForAgent hands one agent several conversations, its avail entries are refreshed once at the end.
local deferredRefresh = nil
local function takeCapacity(prefix, accountId, agentId, channel, convId, nowMs)
  local stateKey = agentKey(prefix, agentId)
  redis.call('HINCRBY', stateKey, 'load', 1)
  redis.call('HINCRBY', stateKey, 'load:' .. channel, 1)
  redis.call('HSET', stateKey, 'lastAssignedMs', nowMs)
  redis.call('SADD', stateKey .. ':convs', convId)
  if deferredRefresh ~= agentId then refreshAgent(prefix, accountId, agentId) end
end
-- skipRefresh: the caller drains the agent next, which refreshes it.
local function releaseCapacity(prefix, accountId, agentId, channel, convId, skipRefresh)
  local stateKey = agentKey(prefix, agentId)
  if redis.call('SREM', stateKey .. ':convs', convId) == 0 then return end
  if tonumber(redis.call('HGET', stateKey, 'load:' .. channel) or '0') > 0 then
    redis.call('HINCRBY', stateKey, 'load:' .. channel, -1)
    redis.call('HINCRBY', stateKey, 'load', -1)
  end
  if not skipRefresh then refreshAgent(prefix, accountId, agentId) end
end

-- The pace of a queue (an average of the time between two conversations leaving it) gives the wait estimate.
local function notePace(prefix, accountId, queueId, nowMs)
  local cfgKey = queueKey(prefix, accountId, queueId, 'cfg')
  local f = redis.call('HMGET', cfgKey, 'lastDequeueMs', 'paceMs')
  if f[1] then
    local gap = math.min(nowMs - tonumber(f[1]), 3600000)
    local pace = gap
    if f[2] then pace = math.floor(tonumber(f[2]) * 0.8 + gap * 0.2) end
    redis.call('HSET', cfgKey, 'paceMs', pace, 'lastDequeueMs', nowMs)
  else
    redis.call('HSET', cfgKey, 'lastDequeueMs', nowMs)
  end
end

-- leaveWaiting: out of its queue's waiting set; `f` = the conversation's {id, accountId, teamId, channel} when at hand.
local function leaveWaiting(prefix, convKey, f)
  f = f or redis.call('HMGET', convKey, 'id', 'accountId', 'teamId', 'channel')
  if f[3] and f[3] ~= '' then
    redis.call('ZREM', queueKey(prefix, f[2], f[3], 'waiting:' .. f[4]), f[1])
  end
end

-- advanceTurn: in a round-robin queue, the agent just given one (assigned or offered) goes to the back.
local function advanceTurn(prefix, accountId, queueId, agentId)
  if queueStrategy(prefix, accountId, queueId) ~= 'round_robin' then return end
  if redis.call('SISMEMBER', queueKey(prefix, accountId, queueId, 'members'), agentId) == 0 then return end
  local turn = redis.call('HINCRBY', queueKey(prefix, accountId, queueId, 'cfg'), 'turn', 1)
  redis.call('HSET', queueKey(prefix, accountId, queueId, 'turns'), agentId, turn)
  refreshAgentInQueue(prefix, accountId, queueId, agentId)
end

-- assignTo: the agent now holds the conversation. `reserved` says its capacity was taken by an offer.
local function assignTo(prefix, convKey, agentId, nowIso, nowMs, eventType, previousAgentId, note, reserved)
  local f = redis.call('HMGET', convKey, 'id', 'accountId', 'inboxId', 'channel', 'contactId', 'teamId', 'visitorHint', 'waitingSinceMs', 'handedBackBy')
  local convId, accountId, channel, queueId = f[1], f[2], f[4], f[6]
  -- Handed back by an agent who went away: that agent is the one it came from.
  if (not previousAgentId or previousAgentId == '') and f[9] and f[9] ~= agentId then previousAgentId = f[9] end
  leaveWaiting(prefix, convKey, { convId, accountId, queueId, channel })
  if not reserved then takeCapacity(prefix, accountId, agentId, channel, convId, nowMs) end
  if queueId and queueId ~= '' then
    notePace(prefix, accountId, queueId, nowMs)
    if not reserved then advanceTurn(prefix, accountId, queueId, agentId) end
  end
  local held = { 'assigneeId', agentId, 'assignedAt', nowIso, 'updatedAt', nowIso }
  -- Its place in line is kept, should this agent let go of it through no doing of the customer's (handBackToQueue).
  if f[8] then held[#held + 1], held[#held + 2] = 'placeInLineMs', f[8] end
  redis.call('HSET', convKey, unpack(held))
  redis.call('HDEL', convKey, 'offeredTo', 'offerExpiresMs', 'waitingSince', 'waitingSinceMs', 'handedBackBy')
  redis.call('DEL', convKey .. ':declined')
  redis.call('HSET', prefix .. ':contact:' .. f[5], 'lastAgentId', agentId, 'lastAgentMs', nowMs)
  local n = redis.call('HINCRBY', convKey, 'assignments', 1)
  local extra = agentLoadJson(prefix, agentId, channel)
  if previousAgentId and previousAgentId ~= '' then extra = extra .. ',"previousAssigneeId":' .. cjson.encode(previousAgentId) end
  if note and note ~= '' then extra = extra .. ',"note":' .. cjson.encode(note) end
  local envelope = emitEvent(prefix, accountId, 'evt_' .. convId .. '_a' .. n, eventType,
    conversationSource(accountId, f[3]), convId, nowIso, conversationJson(convKey, extra), agentId, f[7] or '')
  if previousAgentId and previousAgentId ~= '' then tellAgent(prefix, envelope, previousAgentId) end
  return convId
end

-- offerTo: the agent's capacity is reserved and it has offerTimeoutMs to accept; the customer keeps
-- their place (the queue score stays on the conversation). Only the agent is told (live feed).
local function offerTo(prefix, convKey, agentId, nowIso, nowMs, timeoutMs)
  local f = redis.call('HMGET', convKey, 'id', 'accountId', 'inboxId', 'channel', 'visitorHint', 'teamId')
  local convId, accountId = f[1], f[2]
  leaveWaiting(prefix, convKey)
  takeCapacity(prefix, accountId, agentId, f[4], convId, nowMs)
  if f[6] and f[6] ~= '' then advanceTurn(prefix, accountId, f[6], agentId) end
  local n = redis.call('HINCRBY', convKey, 'offers', 1)
  local expires = nowMs + timeoutMs
  redis.call('HSET', convKey, 'offeredTo', agentId, 'offerExpiresMs', expires, 'offerN', n, 'updatedAt', nowIso)
  redis.call('ZADD', timersKey(prefix), expires, 'offer|' .. convId .. '|' .. n)
  local envelope = '{"specversion":"1.0","id":' .. cjson.encode('evt_' .. convId .. '_f' .. n)
    .. ',"source":' .. cjson.encode(conversationSource(accountId, f[3])) .. ',"type":"conversation.offered","time":"' .. nowIso
    .. '","subject":' .. cjson.encode(convId) .. ',"datacontenttype":"application/json","data":'
    .. conversationJson(convKey, '"offeredTo":' .. cjson.encode(agentId) .. ',"expiresAt":' .. expires) .. '}'
  tellAgent(prefix, envelope, agentId)
end

local function place(prefix, convKey, agentId, queueId, nowIso, nowMs, accountId)
  accountId = accountId or redis.call('HGET', convKey, 'accountId')
  local timeoutMs = tonumber(redis.call('HGET', queueKey(prefix, accountId, queueId, 'cfg'), 'offerTimeoutMs') or '0')
  if timeoutMs > 0 then
    offerTo(prefix, convKey, agentId, nowIso, nowMs, timeoutMs)
  else
    assignTo(prefix, convKey, agentId, nowIso, nowMs, 'conversation.assigned', nil, nil, false)
  end
end

-- declinedRecently: an agent who declined (or let expire) an offer of this conversation is passed over
-- for one offer period, so the offer moves on to the next agent instead of ringing the same one.
local function declinedRecently(prefix, accountId, queueId, convId, agentId, nowMs)
  local declinedAt = redis.call('ZSCORE', prefix .. ':conv:' .. convId .. ':declined', agentId)
  if not declinedAt then return false end
  local cooldown = tonumber(redis.call('HGET', queueKey(prefix, accountId, queueId, 'cfg'), 'offerTimeoutMs') or '0')
  return tonumber(declinedAt) > nowMs - cooldown
end

-- excluded: within one script run, the agent a conversation was just transferred away from is not
-- handed it straight back.
local excluded = { agentId = nil, convId = nil }
local function isExcluded(agentId, convId) return excluded.agentId == agentId and excluded.convId == convId end

-- pickAgent: the best agent with room in the queue for this conversation. Each candidate's room is
-- checked again, and a stale avail entry is dropped, so the avail sets can never overfill an agent.
local function pickAgent(prefix, accountId, queueId, channel, convId, nowMs)
  local availKey = queueKey(prefix, accountId, queueId, 'avail:' .. channel)
  local hasDeclined = redis.call('EXISTS', prefix .. ':conv:' .. convId .. ':declined') == 1
  for _, agentId in ipairs(redis.call('ZRANGE', availKey, 0, 99)) do
    if not hasRoom(prefix, agentId, channel) then
      redis.call('ZREM', availKey, agentId)
    elseif not isExcluded(agentId, convId) and not (hasDeclined and declinedRecently(prefix, accountId, queueId, convId, agentId, nowMs)) then
      return agentId
    end
  end
  return nil
end

-- stillWaiting: the queue entry is current (open, unassigned, not on offer, in this queue); stale ones are dropped.
local function stillWaiting(prefix, waitingKey, convId, queueId)
  local c = redis.call('HMGET', prefix .. ':conv:' .. convId, 'status', 'assigneeId', 'offeredTo', 'teamId')
  if c[1] == 'open' and (not c[2] or c[2] == '') and not c[3] and c[4] == queueId then return true end
  redis.call('ZREM', waitingKey, convId)
  return false
end

-- drainQueue: while the queue has someone waiting for this channel and an agent with room, place the
-- highest-priority, longest-waiting conversation (looking past a head whose agents all just declined it).
local function drainQueue(prefix, accountId, queueId, channel, nowIso, nowMs)
  if queueStrategy(prefix, accountId, queueId) == 'manual' then return end
  local waitingKey = queueKey(prefix, accountId, queueId, 'waiting:' .. channel)
  local availKey = queueKey(prefix, accountId, queueId, 'avail:' .. channel)
  for _ = 1, 100000 do
    if redis.call('ZCARD', availKey) == 0 then return end
    local heads = redis.call('ZRANGE', waitingKey, 0, 19)
    if #heads == 0 then return end
    local progressed = false
    for _, convId in ipairs(heads) do
      if not stillWaiting(prefix, waitingKey, convId, queueId) then
        progressed = true
      else
        local agentId = pickAgent(prefix, accountId, queueId, channel, convId, nowMs)
        if agentId then
          place(prefix, prefix .. ':conv:' .. convId, agentId, queueId, nowIso, nowMs, accountId)
          progressed = true
          break
        end
      end
    end
    if not progressed then
      -- Only agents who just declined have room: try again when their pass-over ends.
      local cooldown = tonumber(redis.call('HGET', queueKey(prefix, accountId, queueId, 'cfg'), 'offerTimeoutMs') or '0')
      redis.call('ZADD', timersKey(prefix), nowMs + math.max(cooldown, 1000), 'redrain|' .. accountId .. '|' .. queueId .. '|' .. channel)
      return
    end
  end
end

-- drainForAgent: capacity freed (resolve, online, more capacity, a transfer away): the agent takes the
-- highest-priority, longest-waiting conversation among the queues it serves, until full or none wait.
-- onlyChannel: the one channel that gained room (a resolve), else every channel.
local function drainForAgentNow(prefix, accountId, agentId, nowIso, nowMs, onlyChannel)
  if redis.call('HGET', agentKey(prefix, agentId), 'status') ~= 'online' then return end
  local queues = redis.call('SMEMBERS', agentKey(prefix, agentId) .. ':queues')
  for _, channel in ipairs(onlyChannel and { onlyChannel } or routingChannels) do
    for _ = 1, 100000 do
      if not hasRoom(prefix, agentId, channel) then break end
      local bestQueue, bestConv, bestScore
      for _, queueId in ipairs(queues) do
        if queueStrategy(prefix, accountId, queueId) ~= 'manual' then
          local waitingKey = queueKey(prefix, accountId, queueId, 'waiting:' .. channel)
          local heads = redis.call('ZRANGE', waitingKey, 0, 19, 'WITHSCORES')
          for i = 1, #heads, 2 do
            local convId, score = heads[i], tonumber(heads[i + 1])
            if bestScore and score >= bestScore then break end
            if stillWaiting(prefix, waitingKey, convId, queueId) and not isExcluded(agentId, convId)
              and not declinedRecently(prefix, accountId, queueId, convId, agentId, nowMs) then
              bestQueue, bestConv, bestScore = queueId, convId, score
              break
            end
          end
        end
      end
      if not bestQueue then break end
      place(prefix, prefix .. ':conv:' .. bestConv, agentId, bestQueue, nowIso, nowMs, accountId)
    end
  end
end

local function drainForAgent(prefix, accountId, agentId, nowIso, nowMs, onlyChannel)
  deferredRefresh = agentId
  drainForAgentNow(prefix, accountId, agentId, nowIso, nowMs, onlyChannel)
  deferredRefresh = nil
  refreshAgent(prefix, accountId, agentId)
end

local function queuePosition(prefix, convKey)
  local f = redis.call('HMGET', convKey, 'id', 'accountId', 'teamId', 'channel')
  local rank = redis.call('ZRANK', queueKey(prefix, f[2], f[3], 'waiting:' .. f[4]), f[1])
  if not rank then return nil end
  return rank + 1
end

local function estimatedWaitSeconds(prefix, accountId, queueId, position)
  local pace = redis.call('HGET', queueKey(prefix, accountId, queueId, 'cfg'), 'paceMs')
  if not pace then return cjson.null end
  return math.ceil(tonumber(pace) * position / 1000)
end

-- scheduleOverflow: while the conversation waits in route step `step`, its timeout moves it on.
-- Scheduled once per step (NX): a requeue within the step (a declined offer) keeps the deadline.
local function scheduleOverflow(prefix, convKey, nowMs)
  local f = redis.call('HMGET', convKey, 'id', 'routeTargets', 'routeStep', 'routeGen')
  if not f[2] then return end
  local targets = cjson.decode(f[2])
  local step = tonumber(f[3])
  local target = targets[step]
  if step < #targets and target and (target.timeoutMs or 0) > 0 then
    redis.call('ZADD', timersKey(prefix), 'NX', nowMs + target.timeoutMs, 'overflow|' .. f[1] .. '|' .. f[4] .. '|' .. step)
  end
end

-- enqueue: the conversation joins a queue (keeping the time it started waiting, so an overflow or a
-- declined offer never costs the customer their place), is placed at once when someone has room,
-- otherwise emits conversation.queued with its position and estimated wait. `tellAgentId`: the agent who
-- just handed it back, whose live feed gets that conversation.queued too.
-- Returns {'assigned', agentId} | {'offered', agentId} | {'queued', position}
local function enqueue(prefix, convKey, queueId, waitingSinceMs, nowIso, nowMs, tellAgentId)
  local f = redis.call('HMGET', convKey, 'id', 'accountId', 'inboxId', 'channel', 'priority', 'visitorHint', 'handedBackBy')
  local convId, accountId, channel = f[1], f[2], f[4]
  -- A team deleted since the route was chosen: its conversations go to the default queue.
  if queueId ~= 'default' and redis.call('EXISTS', queueKey(prefix, accountId, queueId, 'cfg')) == 0 then
    queueId = 'default'
    redis.call('HSET', convKey, 'routeTargets', '[{"queueId":"default","timeoutMs":0}]', 'routeStep', 1)
  end
  local priority = tonumber(f[5] or '0')
  local score = (100 - priority) * priorityBand + waitingSinceMs
  redis.call('ZADD', queueKey(prefix, accountId, queueId, 'waiting:' .. channel), score, convId)
  redis.call('HSET', convKey, 'teamId', queueId, 'waitingSinceMs', waitingSinceMs)
  scheduleOverflow(prefix, convKey, nowMs)
  drainQueue(prefix, accountId, queueId, channel, nowIso, nowMs)
  local c = redis.call('HMGET', convKey, 'assigneeId', 'offeredTo')
  if c[1] and c[1] ~= '' then return {'assigned', c[1]} end
  if c[2] then return {'offered', c[2]} end
  local waitingSinceIso = redis.call('HGET', convKey, 'waitingSince')
  if not waitingSinceIso then redis.call('HSET', convKey, 'waitingSince', nowIso) end
  local position = queuePosition(prefix, convKey)
  local n = redis.call('HINCRBY', convKey, 'queued', 1)
  local extra = '"position":' .. position .. ',"estimatedWaitSeconds":' .. cjson.encode(estimatedWaitSeconds(prefix, accountId, queueId, position))
  if f[7] then extra = extra .. ',"previousAssigneeId":' .. cjson.encode(f[7]) end
  local envelope = emitEvent(prefix, accountId, 'evt_' .. convId .. '_q' .. n, 'conversation.queued', conversationSource(accountId, f[3]),
    convId, nowIso, conversationJson(convKey, extra), '', f[6] or '')
  -- Told once, at the hand-back: a later overflow or transfer while it waits is no news to that agent.
  if tellAgentId then tellAgent(prefix, envelope, tellAgentId) end
  return {'queued', tostring(position)}
end

-- withdrawOffer: the conversation leaves routing: out of its queue, its offer (if any) cancelled and the
-- reserved capacity freed. Returns the agent whose offer was cancelled, if any.
local function withdrawOffer(prefix, convKey)
  local f = redis.call('HMGET', convKey, 'id', 'accountId', 'channel', 'offeredTo')
  leaveWaiting(prefix, convKey)
  if f[4] then
    redis.call('HDEL', convKey, 'offeredTo', 'offerExpiresMs')
    releaseCapacity(prefix, f[2], f[4], f[3], f[1])
    return f[4]
  end
  return nil
end

-- requeue: a conversation whose agent let go of it (declined offer, removed agent) waits again in its
-- queue, keeping the time it started waiting when it had one.
local function requeue(prefix, convKey, nowIso, nowMs, tellAgentId)
  local f = redis.call('HMGET', convKey, 'teamId', 'waitingSinceMs')
  local queueId = f[1]
  if not queueId or queueId == '' then queueId = 'default' end
  return enqueue(prefix, convKey, queueId, tonumber(f[2] or nowMs), nowIso, nowMs, tellAgentId)
end

-- handBackToQueue: the agent holding the conversation let go of it through no doing of the customer's (removed,
-- or away by disconnect past the handback period). It waits again at the place in line it had before that agent
-- got it, not behind customers who came later, and what follows (queued, assigned) names that agent as
-- previousAssigneeId. Capacity is the caller's to release.
local function handBackToQueue(prefix, convKey, agentId, nowIso, nowMs)
  -- Held, so not waiting (assignTo dropped waitingSinceMs): requeue waits from placeInLineMs, else from now.
  local placeInLine = redis.call('HGET', convKey, 'placeInLineMs')
  local released = { 'assigneeId', '', 'handedBackBy', agentId }
  if placeInLine then released[5], released[6] = 'waitingSinceMs', placeInLine end
  redis.call('HSET', convKey, unpack(released))
  redis.call('HDEL', convKey, 'offeredTo', 'offerExpiresMs')
  return requeue(prefix, convKey, nowIso, nowMs, agentId)
end

-- letOfferGo: the agent declined the offer, let it expire or went away: its reserved capacity is
-- freed, it is passed over for this conversation for one offer period, and the conversation goes
-- back to its place in line and on to the next agent with room.
local function letOfferGo(prefix, convKey, nowIso, nowMs)
  local f = redis.call('HMGET', convKey, 'id', 'accountId', 'channel', 'offeredTo')
  if not f[4] then return nil end
  redis.call('HDEL', convKey, 'offeredTo', 'offerExpiresMs')
  redis.call('ZADD', convKey .. ':declined', nowMs, f[4])
  redis.call('PEXPIRE', convKey .. ':declined', 86400000)
  releaseCapacity(prefix, f[2], f[4], f[3], f[1])
  requeue(prefix, convKey, nowIso, nowMs)
  return f[4]
end

-- setAgentStatus: one status move, with its agent.status_changed event; online drains the queues into the agent.
local function setAgentStatus(prefix, accountId, agentId, status, nowIso, nowMs, reason)
  local stateKey = agentKey(prefix, agentId)
  local previous = redis.call('HGET', stateKey, 'status') or 'offline'
  redis.call('HSET', stateKey, 'status', status)
  if status ~= 'online' and previous == 'online' then
    -- Offers pending with an agent who stepped away go on to others at once.
    for _, convId in ipairs(redis.call('SMEMBERS', stateKey .. ':convs')) do
      local convKey = prefix .. ':conv:' .. convId
      if redis.call('HGET', convKey, 'offeredTo') == agentId then letOfferGo(prefix, convKey, nowIso, nowMs) end
    end
  end
  if status ~= previous then
    -- Only the status the disconnect timer set is given back on reconnect (fireRoutingTimers sets the reason after this).
    redis.call('HDEL', stateKey, 'awayReason', 'awaySinceMs')
    redis.call('HSET', stateKey, 'statusSince', nowIso)
    if status == 'online' then
      redis.call('HSET', stateKey, 'lastActivityMs', nowMs)
      local autoAway = tonumber(redis.call('HGET', stateKey, 'autoAwayMs') or '0')
      if autoAway > 0 then redis.call('ZADD', timersKey(prefix), nowMs + autoAway, 'away|' .. agentId) end
    end
    local n = redis.call('HINCRBY', stateKey, 'statusChanges', 1)
    emitEvent(prefix, accountId, 'evt_' .. agentId .. '_s' .. n, 'agent.status_changed', '/accounts/' .. accountId,
      agentId, nowIso, cjson.encode({ agentId = agentId, status = status, previousStatus = previous, reason = reason }), agentId, '')
  end
  refreshAgent(prefix, accountId, agentId)
  if status == 'online' then drainForAgent(prefix, accountId, agentId, nowIso, nowMs) end
  return previous
end
