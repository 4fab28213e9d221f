-- openNewConversation: a new open conversation of a contact in an inbox, indexed for the account and
-- as the identity's open and last one, with its conversation.created event (after emitEvent).
-- startedBy: '' for a customer's message, 'api' for one a CRM opened (the event says so).
local function openNewConversation(prefix, openKey, lastKey, convId, accountId, inboxId, contactId, channel, channelId,
    visitorHint, sequenceKey, nowIso, startedBy)
  redis.call('SET', openKey, convId)
  redis.call('SET', lastKey, convId)
  local convKey = prefix .. ':conv:' .. convId
  redis.call('HSET', convKey, 'id', convId, 'accountId', accountId, 'inboxId', inboxId, 'contactId', contactId,
    'channel', channel, 'channelId', channelId, 'status', 'open', 'assigneeId', '', 'createdAt', nowIso,
    'updatedAt', nowIso, 'visitorHint', visitorHint, 'openKey', openKey, 'lastKey', lastKey, 'sequenceKey', sequenceKey)
  if startedBy ~= '' then redis.call('HSET', convKey, 'startedBy', startedBy) end
  redis.call('ZADD', prefix .. ':acc:' .. accountId .. ':conversations', 0, convId)
  emitEvent(prefix, accountId, 'evt_' .. convId .. '_c', 'conversation.created', conversationSource(accountId, inboxId), convId, nowIso,
    conversationJson(convKey, startedBy ~= '' and ('"startedBy":' .. cjson.encode(startedBy)) or nil), '', visitorHint)
end
