--[[
  purgeConversation: forgets a conversation resolved longer ago than the retention: its messages,
  its message index, its notes and the conversation itself (the CRM, not the gateway, keeps years of history).
  The contact stays. A conversation reopened since, or already purged, is left alone.

  KEYS[1] the retention index (zset of resolved conversation ids, scored by resolution time, ms)
  ARGV[1] prefix   ARGV[2] conversation id   ARGV[3] resolved before (ms)

  Returns the number of messages purged, or -1 when nothing was due.
]]
local prefix, convId = ARGV[1], ARGV[2]
local resolvedAt = redis.call('ZSCORE', KEYS[1], convId)
if not resolvedAt or tonumber(resolvedAt) >= tonumber(ARGV[3]) then return -1 end
local convKey = prefix .. ':conv:' .. convId
local f = redis.call('HMGET', convKey, 'status', 'accountId', 'lastKey')
redis.call('ZREM', KEYS[1], convId)
if f[1] ~= 'resolved' then return -1 end
local msgsKey = convKey .. ':msgs'
local ids = redis.call('ZRANGE', msgsKey, 0, -1)
for i = 1, #ids do
  redis.call('DEL', prefix .. ':msg:' .. ids[i])
  redis.call('ZREM', prefix .. ':outbox', ids[i])
end
redis.call('DEL', msgsKey, convKey, convKey .. ':declined', convKey .. ':notes')
redis.call('ZREM', prefix .. ':acc:' .. f[2] .. ':conversations', convId)
if f[3] and redis.call('GET', f[3]) == convId then redis.call('DEL', f[3]) end
return #ids
