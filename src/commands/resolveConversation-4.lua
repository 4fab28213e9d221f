--[[
  resolveConversation: closes an open conversation, frees its agent's capacity and at once hands
  the longest-waiting conversations to agents with room. Emits conversation.resolved (and
  conversation.assigned for each one drained). Resolving twice changes nothing.

  KEYS[1] conversation hash   KEYS[2] account's online agents   KEYS[3] account's waiting queue
  KEYS[4] the conversation's open-conversation key
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] resolved by (agent id or '')   ARGV[4] now (ms)
  The conversation joins the retention index (prefix:resolved, scored by when), for purgeConversation.

  Returns {'resolved', drainedConversationIds...} | {'already'} | {'missing'}
]]
--- @include "emitEvent"
--- @include "assignment"

local prefix, nowIso = ARGV[1], ARGV[2]
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local f = redis.call('HMGET', KEYS[1], 'status', 'assigneeId', 'id', 'accountId', 'inboxId', 'visitorHint')
if f[1] ~= 'open' then return {'already'} end
redis.call('HSET', KEYS[1], 'status', 'resolved', 'resolvedAt', nowIso, 'resolvedBy', ARGV[3], 'updatedAt', nowIso, 'assigneeId', '')
if redis.call('GET', KEYS[4]) == f[3] then redis.call('DEL', KEYS[4]) end
redis.call('ZREM', KEYS[3], f[3])
redis.call('ZADD', prefix .. ':resolved', tonumber(ARGV[4]), f[3])
local n = redis.call('HINCRBY', KEYS[1], 'resolutions', 1)
local data = string.sub(conversationJson(KEYS[1]), 1, -2) .. ',"previousAssigneeId":' .. cjson.encode(f[2] or '') .. '}'
emitEvent(prefix, f[4], 'evt_' .. f[3] .. '_r' .. n, 'conversation.resolved', conversationSource(f[4], f[5]),
  f[3], nowIso, data, f[2] or '', f[6] or '')
if f[2] and f[2] ~= '' then releaseFrom(prefix, f[2], KEYS[2]) end
local drained = drainWaiting(prefix, KEYS[2], KEYS[3], nowIso)
local result = {'resolved'}
for i = 1, #drained do result[#result + 1] = drained[i] end
return result
