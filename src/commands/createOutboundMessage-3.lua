--[[
  createOutboundMessage: stores an agent's reply in its conversation with the next seq, status
  queued. With an idempotency key, a repeated request returns the first message instead, and the
  key sent with another request body is refused ('reused') with nothing changed.

  KEYS[1] conversation hash   KEYS[2] idempotency key ('' hash slot when none is given)
  KEYS[3] the new message hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] message id   ARGV[4] message body JSON
  ARGV[5] idempotency ttl seconds ('0' = no key)   ARGV[6] the request body's digest

  The message also enters the outbox until its status leaves queued (includes/outbox.lua).

  Returns {'created', messageId, seq} | {'existing', messageId} | {'reused'} | {'closed'} | {'missing'}
]]
--- @include "idempotency"
--- @include "sequence"
--- @include "outbox"

local prefix, nowIso, messageId = ARGV[1], ARGV[2], ARGV[3]
if ARGV[5] ~= '0' then
  local replay, existing = idempotentReplay(KEYS[2], ARGV[6])
  if replay == 'same' then return {'existing', existing} end
  if replay == 'reused' then return {'reused'} end
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
if ARGV[5] ~= '0' then recordIdempotency(KEYS[2], messageId, ARGV[6], tonumber(ARGV[5])) end
return {'created', messageId, seq}
