--[[
  assignConversation: gives an open, unassigned conversation to the least busy online agent with
  room, or puts it in the account's waiting queue (once). Emits conversation.assigned or
  conversation.queued. Calling it again for an assigned or waiting conversation changes nothing.

  KEYS[1] conversation hash   KEYS[2] account's online agents (zset, score = load)
  KEYS[3] account's waiting conversations (zset, score = waiting since, ms)
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] now (ms)

  Returns {'assigned', agentId} | {'waiting'} | {'queued'} | {'closed'} | {'missing'}
]]
--- @include "emitEvent"
--- @include "assignment"

local prefix, nowIso = ARGV[1], ARGV[2]
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local f = redis.call('HMGET', KEYS[1], 'status', 'assigneeId', 'id', 'accountId', 'inboxId', 'visitorHint')
if f[1] ~= 'open' then return {'closed'} end
if f[2] and f[2] ~= '' then return {'assigned', f[2]} end
local agentId = pickAgent(prefix, KEYS[2])
if agentId then
  assignTo(prefix, KEYS[1], agentId, KEYS[2], KEYS[3], nowIso, 'conversation.assigned', nil)
  return {'assigned', agentId}
end
if redis.call('ZSCORE', KEYS[3], f[3]) then return {'waiting'} end
redis.call('ZADD', KEYS[3], ARGV[3], f[3])
redis.call('HSET', KEYS[1], 'waitingSince', nowIso)
local n = redis.call('HINCRBY', KEYS[1], 'queued', 1)
local data = string.sub(conversationJson(KEYS[1]), 1, -2) .. ',"position":' .. redis.call('ZRANK', KEYS[3], f[3]) + 1 .. '}'
emitEvent(prefix, f[4], 'evt_' .. f[3] .. '_q' .. n, 'conversation.queued', conversationSource(f[4], f[5]),
  f[3], nowIso, data, '', f[6] or '')
return {'queued'}
