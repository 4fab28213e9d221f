--[[
  ingestInbound: stores one inbound message exactly once, finding or creating its contact and its
  open conversation in the same step, and emits contact.created / conversation.created /
  message.received. A second call with the same provider id changes nothing and returns the first result.

  KEYS[1] dedup key (inbox + provider message id) -> message id
  KEYS[2] contact identity key (account + channel + channel id) -> contact id
  KEYS[3] open conversation key (inbox + channel id) -> conversation id
  KEYS[4] last conversation key (inbox + channel id) -> the newest conversation, open or not

  ARGV[1] prefix          ARGV[2] accountId     ARGV[3] inboxId      ARGV[4] channel
  ARGV[5] channelId       ARGV[6] contactName   ARGV[7] messageId    ARGV[8] new contact id
  ARGV[9] new conv. id    ARGV[10] now (ISO)    ARGV[11] arrival seq  ARGV[12] message body JSON
  ARGV[13] visitor hint   ARGV[14] sequence key ARGV[15] retention seconds
  ARGV[16] now (ms)
  ARGV[17] thread (optional JSON, e.g. email): {candidates = ["c:<conversationId>" | "k:<key holding one>", ...] in
    priority order, pointers = [[key, ttlSeconds], ...] set to the conversation afterwards (NX: an anchor stays with
    its first conversation), refresh = [[key, ttlSeconds], ...] set always, openNew = 0|1, reopen = 0|1 (absent: 1), openKey = key}.
    With it the contact's open conversation is not looked at: the message joins the first candidate conversation of
    this inbox (reopening it when resolved, unless reopen is 0: then it is stored there and the conversation stays
    resolved and unrouted), else starts a new one with openKey as its own open key, or, with
    openNew 0, is not stored at all (returns {''}).
  A message within the account's reopen window (reopenWindowMs in its default queue's cfg) after the
  contact's last conversation was resolved reopens it (conversation.reopened) instead of starting one.

  Returns {messageId, contactId, conversationId, duplicate, assigneeId, contactCreated, conversationCreated, reopened,
    needsRouting (1: open, not routed yet, and this message holds the routing claim: see claimRouting)}
]]
--- @include "emitEvent"
--- @include "messageJson"
--- @include "contact"
--- @include "conversation"
--- @include "sequence"

-- A conversation this script has just opened or reopened: open, unassigned, not routed, unclaimed.
local freshState = { status = 'open', assigneeId = '' }

local prefix, accountId, inboxId, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local nowIso = ARGV[10]
local nowMs = tonumber(ARGV[16])

-- One message at a time routes a conversation not routed yet: without the claim, every message that arrives
-- while the first one is being routed would route it again. The claim's holder (its job retried after a
-- crash included) may route; after routingClaimMs without routing (a crash between this script and the
-- routing), the next message takes the claim over.
local routingClaimMs = 60000
-- c: the conversation's status, routed and routingClaim fields, as read by conversationState.
local function claimRouting(convKey, messageId, c)
  if c.status ~= 'open' or c.routed == '1' then return 0 end
  local holder, at = string.match(c.routingClaim or '', '^(.*)@(%d+)$')
  if holder and holder ~= messageId and tonumber(at) > nowMs - routingClaimMs then return 0 end
  redis.call('HSET', convKey, 'routingClaim', messageId .. '@' .. nowMs)
  return 1
end

-- What this script needs of a conversation, in one read.
local function conversationState(convKey)
  local f = redis.call('HMGET', convKey, 'status', 'assigneeId', 'routed', 'routingClaim')
  return { status = f[1], assigneeId = f[2] or '', routed = f[3], routingClaim = f[4] }
end

local existing = redis.call('GET', KEYS[1])
if existing then
  local f = redis.call('HMGET', prefix .. ':msg:' .. existing, 'contactId', 'conversationId', 'contactCreated', 'conversationCreated')
  local convKey = prefix .. ':conv:' .. f[2]
  local c = conversationState(convKey)
  return {existing, f[1], f[2], 1, c.assigneeId, tonumber(f[3]), tonumber(f[4]), 0, claimRouting(convKey, existing, c)}
end

-- A resolved conversation open again (unassigned, to be routed), with its open key pointing at it.
local function reopenResolved(convKey, id, openKeyOfIt)
  redis.call('SET', openKeyOfIt, id)
  redis.call('HSET', convKey, 'status', 'open', 'assigneeId', '', 'updatedAt', nowIso)
  redis.call('HDEL', convKey, 'resolvedAt', 'resolvedAtMs', 'resolvedBy', 'routed', 'routingClaim', 'offeredTo', 'waitingSince', 'waitingSinceMs')
  redis.call('ZREM', prefix .. ':resolved', id)
  local n = redis.call('HINCRBY', convKey, 'reopenings', 1)
  emitEvent(prefix, accountId, 'evt_' .. id .. '_o' .. n, 'conversation.reopened', conversationSource(accountId, inboxId),
    id, nowIso, conversationJson(convKey), '', ARGV[13])
end

local thread = (ARGV[17] and ARGV[17] ~= '') and cjson.decode(ARGV[17]) or nil
local threadConv = nil
if thread then
  for _, candidate in ipairs(thread.candidates or {}) do
    local id = string.sub(candidate, 1, 2) == 'c:' and string.sub(candidate, 3) or redis.call('GET', string.sub(candidate, 3))
    if id and id ~= '' and redis.call('HGET', prefix .. ':conv:' .. id, 'inboxId') == inboxId then threadConv = id break end
  end
  if not threadConv and tonumber(thread.openNew) ~= 1 then return {''} end
end

local contactId, contactCreated = ensureContact(prefix, KEYS[2], ARGV[8], accountId, channel, ARGV[5], ARGV[6], inboxId, nowIso)

local convId = (not thread) and redis.call('GET', KEYS[3])
local convCreated, reopened = 0, 0
local state = nil
local openKey = thread and thread.openKey or KEYS[3]
if threadConv then
  convId = threadConv
  local threadKey = prefix .. ':conv:' .. convId
  state = conversationState(threadKey)
  if state.status ~= 'open' and tonumber(thread.reopen or 1) == 1 then
    reopened = 1
    redis.call('SET', KEYS[4], convId)
    reopenResolved(threadKey, convId, redis.call('HGET', threadKey, 'openKey'))
    state = freshState
  end
end
if convId and not threadConv then
  state = conversationState(prefix .. ':conv:' .. convId)
  if state.status ~= 'open' then convId, state = false, nil end
end
if not convId and not thread then
  local reopenWindow = tonumber(redis.call('HGET', prefix .. ':acc:' .. accountId .. ':q:default:cfg', 'reopenWindowMs') or '0')
  local lastId = reopenWindow > 0 and redis.call('GET', KEYS[4])
  local lastKey = prefix .. ':conv:' .. (lastId or '')
  local last = lastId and redis.call('HMGET', lastKey, 'status', 'resolvedAtMs', 'inboxId') or {}
  if lastId and last[1] == 'resolved' and last[3] == inboxId and tonumber(last[2] or '0') >= nowMs - reopenWindow then
    convId = lastId
    reopened = 1
    reopenResolved(lastKey, convId, KEYS[3])
    state = freshState
  end
end
if not convId then
  convId = ARGV[9]
  convCreated = 1
  openNewConversation(prefix, openKey, KEYS[4], convId, accountId, inboxId, contactId, channel, ARGV[5], ARGV[13], ARGV[14], nowIso, '')
  state = freshState
end

local convKey = prefix .. ':conv:' .. convId
local messageId = ARGV[7]
local msgKey = prefix .. ':msg:' .. messageId
local seq = tonumber(ARGV[11])
raiseSequence(ARGV[14], seq)
redis.call('HSET', msgKey, 'body', ARGV[12], 'accountId', accountId, 'conversationId', convId, 'contactId', contactId,
  'seq', seq, 'contactCreated', contactCreated, 'conversationCreated', convCreated)
redis.call('ZADD', prefix .. ':conv:' .. convId .. ':msgs', seq, messageId)
redis.call('SET', KEYS[1], messageId, 'EX', tonumber(ARGV[15]))
redis.call('HSET', convKey, 'lastMessageAt', nowIso, 'updatedAt', nowIso)
if thread then
  for _, p in ipairs(thread.pointers or {}) do redis.call('SET', p[1], convId, 'EX', tonumber(p[2]), 'NX') end
  for _, p in ipairs(thread.refresh or {}) do redis.call('SET', p[1], convId, 'EX', tonumber(p[2])) end
end
-- The message as stored, without reading back what was just written (a new inbound message has no status or error
-- yet). Its seq goes in as the argument's digits: Lua prints a number of 16 digits as 1.7646480001235e+15.
emitEvent(prefix, accountId, 'evt_' .. messageId .. '_r', 'message.received', conversationSource(accountId, inboxId),
  convId, nowIso, messageJsonOf(ARGV[12], convId, contactId, ARGV[11]), state.assigneeId, ARGV[13])
return {messageId, contactId, convId, 0, state.assigneeId, contactCreated, convCreated, reopened, claimRouting(convKey, messageId, state)}
