--[[
  recordPayment: one WeChat Pay notification, once: the payer's contact (created on first sight; the
  same OpenID as on the official account), a payment.succeeded or payment.refunded event attached to
  it, and, when the contact has an open conversation, a note in it for the agent (message.received).

  KEYS[1] dedup key (inbox + notification id)   KEYS[2] the transaction's contact key (refunds carry no
  OpenID: they find the payer through the payment)   KEYS[3] the payer's contact identity key (any key
  when ARGV[6] is '')
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] account id   ARGV[4] wechatpay inbox id   ARGV[5] new contact id
  ARGV[6] payer OpenID ('' = unknown)   ARGV[7] payment data JSON (an object)   ARGV[8] event type
  ARGV[9] event id   ARGV[10] open conversation id ('' = none)   ARGV[11] note message id
  ARGV[12] note message body JSON   ARGV[13] dedup TTL seconds

  Returns {'recorded', contactId, conversationId} | {'duplicate'}
]]
--- @include "emitEvent"
--- @include "messageJson"
--- @include "contact"
--- @include "sequence"

local prefix, nowIso, accountId, inboxId = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('GET', KEYS[1]) then return {'duplicate'} end
local contactId = ''
if ARGV[6] ~= '' then
  contactId = ensureContact(prefix, KEYS[3], ARGV[5], accountId, 'wechat', ARGV[6], '', inboxId, nowIso)
else
  contactId = redis.call('GET', KEYS[2]) or ''
end
if contactId ~= '' then redis.call('SET', KEYS[2], contactId, 'EX', 400 * 86400) end

local convId = ARGV[10]
local convKey = prefix .. ':conv:' .. convId
if convId ~= '' then
  local c = redis.call('HMGET', convKey, 'status', 'contactId')
  if c[1] ~= 'open' or c[2] ~= contactId then convId = '' end
end
local c = convId ~= '' and redis.call('HMGET', convKey, 'assigneeId', 'visitorHint', 'sequenceKey') or {}
local data = string.sub(ARGV[7], 1, -2) .. ',"contactId":' .. cjson.encode(contactId ~= '' and contactId or cjson.null)
  .. ',"conversationId":' .. cjson.encode(convId ~= '' and convId or cjson.null) .. '}'
emitEvent(prefix, accountId, ARGV[9], ARGV[8], '/accounts/' .. accountId .. '/inboxes/' .. inboxId,
  contactId ~= '' and contactId or inboxId, nowIso, data, c[1] or '', c[2] or '')

if convId ~= '' then
  local messageId = ARGV[11]
  local msgKey = prefix .. ':msg:' .. messageId
  local seq = nextSequence(c[3])
  redis.call('HSET', msgKey, 'body', ARGV[12], 'accountId', accountId, 'conversationId', convId, 'contactId', contactId,
    'seq', seq, 'contactCreated', 0, 'conversationCreated', 0)
  redis.call('ZADD', convKey .. ':msgs', seq, messageId)
  redis.call('HSET', convKey, 'lastMessageAt', nowIso, 'updatedAt', nowIso)
  emitEvent(prefix, accountId, 'evt_' .. messageId .. '_r', 'message.received', conversationSource(accountId, redis.call('HGET', convKey, 'inboxId')),
    convId, nowIso, messageJson(msgKey), c[1] or '', c[2] or '')
end
redis.call('SET', KEYS[1], 'done', 'EX', tonumber(ARGV[13]))
return {'recorded', contactId, convId}
