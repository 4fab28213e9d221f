--[[
  reopenConversation: opens a resolved conversation again, unassigned, unless the contact already
  has another open conversation in that inbox. Emits conversation.reopened. The caller then routes it
  (routeConversation).
  It also becomes the contact's last conversation in the inbox, so the visitor's history follows it.

  KEYS[1] conversation hash   KEYS[2] the conversation's open-conversation key
  KEYS[3] the contact's last-conversation key
  ARGV[1] prefix   ARGV[2] now (ISO)

  Returns {'reopened'} | {'already'} | {'conflict', otherConversationId} | {'missing'}
]]
--- @include "emitEvent"

local prefix, nowIso = ARGV[1], ARGV[2]
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local f = redis.call('HMGET', KEYS[1], 'status', 'id', 'accountId', 'inboxId', 'visitorHint')
if f[1] == 'open' then return {'already'} end
local other = redis.call('GET', KEYS[2])
if other and other ~= f[2] and redis.call('HGET', prefix .. ':conv:' .. other, 'status') == 'open' then
  return {'conflict', other}
end
redis.call('SET', KEYS[2], f[2])
redis.call('SET', KEYS[3], f[2])
redis.call('HSET', KEYS[1], 'status', 'open', 'assigneeId', '', 'updatedAt', nowIso)
redis.call('ZREM', prefix .. ':resolved', f[2])
redis.call('HDEL', KEYS[1], 'resolvedAt', 'resolvedAtMs', 'resolvedBy', 'routed', 'routingClaim', 'offeredTo', 'waitingSince', 'waitingSinceMs')
local n = redis.call('HINCRBY', KEYS[1], 'reopenings', 1)
emitEvent(prefix, f[3], 'evt_' .. f[2] .. '_o' .. n, 'conversation.reopened', conversationSource(f[3], f[4]),
  f[2], nowIso, conversationJson(KEYS[1]), '', f[5] or '')
return {'reopened'}
