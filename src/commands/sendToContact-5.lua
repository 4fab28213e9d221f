--[[
  sendToContact: a CRM's message to a contact through an inbox, with no conversation needed: the
  contact (created on first sight, contact.created), its open conversation in that inbox (created
  when none is open, conversation.created; routed when the customer answers) and the outbound
  message (status queued), in one step. With an idempotency key a repeated request returns the first,
  and the key sent with another request body is refused ('reused') with nothing changed.

  KEYS[1] idempotency key   KEYS[2] contact identity key (account + channel + channel id digest)
  KEYS[3] open conversation key (inbox + digest)   KEYS[4] last conversation key (inbox + digest)
  KEYS[5] the new message hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] account id   ARGV[4] inbox id   ARGV[5] channel
  ARGV[6] channel id   ARGV[7] new contact id   ARGV[8] new conversation id   ARGV[9] message id
  ARGV[10] message body JSON   ARGV[11] idempotency ttl seconds ('0' = no key)   ARGV[12] sequence key
  ARGV[13] visitor hint   ARGV[14] contact name (for a new contact)
  ARGV[15] the contact the caller named ('' = whoever the identity belongs to)   ARGV[16] the request body's digest

  Returns {'created', messageId, conversationId, contactId, conversationCreated, contactCreated}
    | {'existing', messageId} | {'reused'} | {'mismatch'}
]]
--- @include "idempotency"
--- @include "emitEvent"
--- @include "contact"
--- @include "conversation"
--- @include "sequence"
--- @include "outbox"

local prefix, nowIso, accountId, inboxId, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if ARGV[11] ~= '0' then
  local replay, existing = idempotentReplay(KEYS[1], ARGV[16])
  if replay == 'same' then return {'existing', existing} end
  if replay == 'reused' then return {'reused'} end
end
if ARGV[15] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[15] then return {'mismatch'} end
local contactId, contactCreated = ensureContact(prefix, KEYS[2], ARGV[7], accountId, channel, ARGV[6], ARGV[14], inboxId, nowIso)

local convId = redis.call('GET', KEYS[3])
local convCreated = 0
if convId and redis.call('HGET', prefix .. ':conv:' .. convId, 'status') ~= 'open' then convId = false end
if not convId then
  convId = ARGV[8]
  convCreated = 1
  openNewConversation(prefix, KEYS[3], KEYS[4], convId, accountId, inboxId, contactId, channel, ARGV[6], ARGV[13], ARGV[12], nowIso, 'api')
end

local convKey = prefix .. ':conv:' .. convId
local messageId = ARGV[9]
local seq = nextSequence(ARGV[12])
redis.call('HSET', KEYS[5], 'body', ARGV[10], 'accountId', accountId, 'conversationId', convId, 'contactId', contactId,
  'seq', seq, 'status', 'queued', 'statusAt', nowIso)
redis.call('ZADD', convKey .. ':msgs', seq, messageId)
addToOutbox(prefix, messageId)
redis.call('HSET', convKey, 'lastMessageAt', nowIso, 'updatedAt', nowIso)
if ARGV[11] ~= '0' then recordIdempotency(KEYS[1], messageId, ARGV[16], tonumber(ARGV[11])) end
return {'created', messageId, convId, contactId, convCreated, contactCreated}
