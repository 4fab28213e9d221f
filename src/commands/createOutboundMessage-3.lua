--[[
  createOutboundMessage: stores an agent's reply in its conversation with the next seq, status
  queued. With an idempotency key, a repeated request returns the first message instead.

  KEYS[1] conversation hash   KEYS[2] idempotency key ('' hash slot when none is given)
  KEYS[3] the new message hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] message id   ARGV[4] message body JSON
  ARGV[5] idempotency ttl seconds ('0' = no key)

  The message also enters the outbox until its status leaves queued (includes/outbox.lua).

  Returns {'created', messageId, seq} | {'existing', messageId} | {'closed'} | {'missing'}
]]
--- @include "sequence"
--- @include "outbox"

local prefix, nowIso, messageId = ARGV[1], ARGV[2], ARGV[3]
if ARGV[5] ~= '0' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return {'existing', existing} end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local f = redis.call('HMGET', KEYS[1], 'status', 'id', 'contactId', 'sequenceKey', 'accountId')
if f[1] ~= 'open' then return {'closed'} end
local seq = nextSequence(f[4])
redis.call('HSET', KEYS[3], 'body', ARGV[4], 'accountId', f[5], 'conversationId', f[2], 'contactId', f[3], 'seq', seq,
  'status', 'queued', 'statusAt', nowIso)
redis.call('ZADD', prefix .. ':conv:' .. f[2] .. ':msgs', seq, messageId)
addToOutbox(prefix, messageId)
redis.call('HSET', KEYS[1], 'lastMessageAt', nowIso, 'updatedAt', nowIso)
if ARGV[5] ~= '0' then redis.call('SET', KEYS[2], messageId, 'EX', tonumber(ARGV[5])) end
return {'created', messageId, seq}
