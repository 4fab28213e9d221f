--[[
  upsertContact: the CRM's contact, by the CRM's own external id (unique per account). Unknown id with
  a channel identity: the identity's contact is linked to it (it may have written in already) or a
  new contact is made (contact.created). Known id: name and attributes change (contact.updated).
  Exactly one event per change, none when nothing changed. Attributes are merged in TypeScript and
  written only if nobody changed the contact in between ({'changed'}: read again and retry).

  KEYS[1] external id key (account + external id digest) -> contact id
  KEYS[2] contact identity key (account + channel + channel id digest); KEYS[1] again when none is given
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] account id   ARGV[4] external id   ARGV[5] new contact id
  ARGV[6] channel ('' = no identity given)   ARGV[7] channel id   ARGV[8] inbox id
  ARGV[9] the contact id the caller read ('' = none)   ARGV[10] its attributes JSON as read
  ARGV[11] merged attributes JSON ('' = unchanged)   ARGV[12] name ('' = unchanged)

  Returns {'created'|'updated'|'unchanged', contactId} | {'changed'} | {'missing'}
    | {'linked', otherExternalId} (the identity's contact has another external id) | {'identity'} (the
    external id's contact has another channel identity)
]]
--- @include "emitEvent"

local prefix, nowIso, accountId, externalId = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local hasIdentity = ARGV[6] ~= ''
local byExternal = redis.call('GET', KEYS[1])
local contactId = byExternal
if not contactId and hasIdentity then contactId = redis.call('GET', KEYS[2]) end
if (contactId or '') ~= ARGV[9] then return {'changed'} end

local function contactJson(contactKey)
  local f = redis.call('HMGET', contactKey, 'id', 'accountId', 'channel', 'channelId', 'name', 'inboxId', 'attributes',
    'createdAt', 'updatedAt', 'externalId')
  return '{"id":' .. cjson.encode(f[1]) .. ',"accountId":' .. cjson.encode(f[2]) .. ',"channel":' .. cjson.encode(f[3])
    .. ',"channelId":' .. cjson.encode(f[4]) .. ',"name":' .. cjson.encode(f[5] or '') .. ',"inboxId":' .. cjson.encode(f[6])
    .. ',"attributes":' .. (f[7] or '{}') .. ',"externalId":' .. cjson.encode(f[10]) .. ',"createdAt":' .. cjson.encode(f[8])
    .. ',"updatedAt":' .. cjson.encode(f[9]) .. '}'
end

if not contactId then
  if not hasIdentity then return {'missing'} end
  contactId = ARGV[5]
  local contactKey = prefix .. ':contact:' .. contactId
  redis.call('SET', KEYS[2], contactId)
  redis.call('SET', KEYS[1], contactId)
  redis.call('HSET', contactKey, 'id', contactId, 'accountId', accountId, 'channel', ARGV[6], 'channelId', ARGV[7],
    'name', ARGV[12], 'inboxId', ARGV[8], 'createdAt', nowIso, 'updatedAt', nowIso, 'externalId', externalId)
  if ARGV[11] ~= '' then redis.call('HSET', contactKey, 'attributes', ARGV[11]) end
  redis.call('ZADD', prefix .. ':acc:' .. accountId .. ':contacts', 0, contactId)
  emitEvent(prefix, accountId, 'evt_' .. contactId .. '_c', 'contact.created', '/accounts/' .. accountId, contactId, nowIso,
    contactJson(contactKey), '', '')
  return {'created', contactId}
end

local contactKey = prefix .. ':contact:' .. contactId
local f = redis.call('HMGET', contactKey, 'accountId', 'channel', 'channelId', 'externalId', 'name', 'attributes')
if f[1] ~= accountId then return {'missing'} end
local changed = false
if not byExternal then
  if f[4] and f[4] ~= externalId then return {'linked', f[4]} end
  redis.call('SET', KEYS[1], contactId)
  redis.call('HSET', contactKey, 'externalId', externalId)
  changed = true
elseif hasIdentity and (f[2] ~= ARGV[6] or f[3] ~= ARGV[7]) then
  return {'identity'}
end
local current = f[6] or '{}'
if ARGV[11] ~= '' and ARGV[10] ~= current then return {'changed'} end
if ARGV[11] ~= '' and ARGV[11] ~= current then redis.call('HSET', contactKey, 'attributes', ARGV[11]); changed = true end
if ARGV[12] ~= '' and ARGV[12] ~= (f[5] or '') then redis.call('HSET', contactKey, 'name', ARGV[12]); changed = true end
if not changed then return {'unchanged', contactId} end
redis.call('HSET', contactKey, 'updatedAt', nowIso)
local n = redis.call('HINCRBY', contactKey, 'updates', 1)
emitEvent(prefix, accountId, 'evt_' .. contactId .. '_u' .. n, 'contact.updated', '/accounts/' .. accountId, contactId, nowIso,
  contactJson(contactKey), '', '')
return {'updated', contactId}
