-- ensureContact: the contact a channel identity belongs to, created (with contact.created) on first sight.
-- Returns contactId, created (0 or 1).
local function ensureContact(prefix, identityKey, newContactId, accountId, channel, channelId, name, inboxId, nowIso)
  local contactId = redis.call('GET', identityKey)
  if contactId then return contactId, 0 end
  contactId = newContactId
  redis.call('SET', identityKey, contactId)
  redis.call('HSET', prefix .. ':contact:' .. contactId, 'id', contactId, 'accountId', accountId, 'channel', channel,
    'channelId', channelId, 'name', name, 'inboxId', inboxId, 'createdAt', nowIso, 'updatedAt', nowIso)
  redis.call('ZADD', prefix .. ':acc:' .. accountId .. ':contacts', 0, contactId)
  emitEvent(prefix, accountId, 'evt_' .. contactId .. '_c', 'contact.created', '/accounts/' .. accountId, contactId, nowIso,
    cjson.encode({ id = contactId, accountId = accountId, channel = channel, channelId = channelId, name = name, createdAt = nowIso }), '', '')
  return contactId, 1
end
