--[[
  updateContact: changes a contact's name and/or attributes and emits contact.updated, once. Used by
  the API and by channel events that describe the contact (WeChat subscribe, unsubscribe, QR scans),
  which may also create it (contact.created). Attributes are merged in TypeScript and written here
  only if nobody changed them in between (optimistic: {'changed'} asks the caller to read again).

  KEYS[1] the channel identity key (account + channel + id digest) -> contact id, or the contact hash
          key itself when ARGV[3] is ''
  KEYS[2] dedup key for a channel event ('' event = none: pass any key, it is not touched)
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] new contact id ('' = the contact must exist)
  ARGV[4] account id   ARGV[5] channel   ARGV[6] channel id   ARGV[7] inbox id
  ARGV[8] attributes JSON as read before the merge ('' = do not check)   ARGV[9] merged attributes JSON ('' = unchanged)
  ARGV[10] name ('' = unchanged)   ARGV[11] the channel event name ('' = an API change)   ARGV[12] dedup TTL seconds

  Returns {'updated', contactId} | {'duplicate', contactId} | {'changed'} | {'missing'}
]]
--- @include "emitEvent"
--- @include "contact"

local prefix, nowIso, accountId = ARGV[1], ARGV[2], ARGV[4]
local fromChannel = ARGV[11] ~= ''
if fromChannel then
  local seen = redis.call('GET', KEYS[2])
  if seen then return {'duplicate', seen} end
end
local contactId
if ARGV[3] ~= '' then
  contactId = ensureContact(prefix, KEYS[1], ARGV[3], accountId, ARGV[5], ARGV[6], '', ARGV[7], nowIso)
else
  contactId = redis.call('HGET', KEYS[1], 'id')
  if not contactId or redis.call('HGET', KEYS[1], 'accountId') ~= accountId then return {'missing'} end
end
local contactKey = prefix .. ':contact:' .. contactId
local current = redis.call('HGET', contactKey, 'attributes') or '{}'
if ARGV[8] ~= '' and ARGV[8] ~= current then return {'changed'} end
if ARGV[9] ~= '' then redis.call('HSET', contactKey, 'attributes', ARGV[9]) end
if ARGV[10] ~= '' then redis.call('HSET', contactKey, 'name', ARGV[10]) end
redis.call('HSET', contactKey, 'updatedAt', nowIso)
local n = redis.call('HINCRBY', contactKey, 'updates', 1)
local f = redis.call('HMGET', contactKey, 'id', 'accountId', 'channel', 'channelId', 'name', 'inboxId', 'attributes', 'createdAt', 'externalId')
local data = '{"id":' .. cjson.encode(f[1]) .. ',"accountId":' .. cjson.encode(f[2]) .. ',"channel":' .. cjson.encode(f[3])
  .. ',"channelId":' .. cjson.encode(f[4]) .. ',"name":' .. cjson.encode(f[5] or '') .. ',"attributes":' .. (f[7] or '{}')
  .. ',"createdAt":' .. cjson.encode(f[8]) .. ',"updatedAt":' .. cjson.encode(nowIso)
if f[9] then data = data .. ',"externalId":' .. cjson.encode(f[9]) end
if fromChannel then data = data .. ',"channelEvent":' .. cjson.encode(ARGV[11]) end
data = data .. '}'
emitEvent(prefix, accountId, 'evt_' .. contactId .. '_u' .. n, 'contact.updated', '/accounts/' .. accountId, contactId, nowIso, data, '', '')
if fromChannel then redis.call('SET', KEYS[2], contactId, 'EX', tonumber(ARGV[12])) end
return {'updated', contactId}
