-- pickAgent: the online agent with the lowest load that is below its capacity (least busy).
-- The online zset is scored by load, so the first agent with room is the answer.
local function pickAgent(prefix, onlineKey)
  local entries = redis.call('ZRANGE', onlineKey, 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    local agentId = entries[i]
    local load = tonumber(entries[i + 1])
    local capacity = tonumber(redis.call('HGET', prefix .. ':agentstate:' .. agentId, 'capacity') or '0')
    if load < capacity then return agentId end
  end
  return nil
end

-- assignTo: gives one conversation to one agent, counts it against the agent's capacity, emits the event.
local function assignTo(prefix, convKey, agentId, onlineKey, waitingKey, nowIso, eventType, previousAgentId, note)
  local convId = redis.call('HGET', convKey, 'id')
  local accountId = redis.call('HGET', convKey, 'accountId')
  redis.call('HINCRBY', prefix .. ':agentstate:' .. agentId, 'load', 1)
  if redis.call('ZSCORE', onlineKey, agentId) then redis.call('ZINCRBY', onlineKey, 1, agentId) end
  redis.call('HSET', convKey, 'assigneeId', agentId, 'assignedAt', nowIso, 'updatedAt', nowIso)
  redis.call('HDEL', convKey, 'waitingSince')
  redis.call('ZREM', waitingKey, convId)
  local n = redis.call('HINCRBY', convKey, 'assignments', 1)
  local data = string.sub(conversationJson(convKey), 1, -2)
  if previousAgentId and previousAgentId ~= '' then
    data = data .. ',"previousAssigneeId":' .. cjson.encode(previousAgentId)
  end
  if note and note ~= '' then data = data .. ',"note":' .. cjson.encode(note) end
  data = data .. '}'
  local envelope = emitEvent(prefix, accountId, 'evt_' .. convId .. '_a' .. n, eventType,
    conversationSource(accountId, redis.call('HGET', convKey, 'inboxId')), convId, nowIso, data,
    agentId, redis.call('HGET', convKey, 'visitorHint') or '')
  if previousAgentId and previousAgentId ~= '' then tellAgent(prefix, envelope, previousAgentId) end
  return convId
end

-- releaseFrom: takes one conversation off an agent's load (never below zero).
local function releaseFrom(prefix, agentId, onlineKey)
  local stateKey = prefix .. ':agentstate:' .. agentId
  local load = tonumber(redis.call('HGET', stateKey, 'load') or '0')
  if load > 0 then
    redis.call('HINCRBY', stateKey, 'load', -1)
    if redis.call('ZSCORE', onlineKey, agentId) then redis.call('ZINCRBY', onlineKey, -1, agentId) end
  end
end

-- drainWaiting: the moment capacity frees, the longest-waiting conversations go to agents with room.
local function drainWaiting(prefix, onlineKey, waitingKey, nowIso)
  local assigned = {}
  while true do
    local head = redis.call('ZRANGE', waitingKey, 0, 0)
    if #head == 0 then break end
    local agentId = pickAgent(prefix, onlineKey)
    if not agentId then break end
    local convKey = prefix .. ':conv:' .. head[1]
    local fields = redis.call('HMGET', convKey, 'status', 'assigneeId')
    if fields[1] == 'open' and (fields[2] == '' or not fields[2]) then
      assignTo(prefix, convKey, agentId, onlineKey, waitingKey, nowIso, 'conversation.assigned', nil)
      assigned[#assigned + 1] = head[1]
    else
      redis.call('ZREM', waitingKey, head[1])
    end
  end
  return assigned
end
