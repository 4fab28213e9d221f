--[[
  recordSmsOptOut: a contact's STOP (opt out) or START (opt back in) for one SMS inbox. Changes the
  inbox's opt-out hash and emits contact.updated with `change` (sms_opted_out | sms_opted_in), once:
  a repeated push of the same message, or a keyword that changes nothing, emits nothing.
  The contact is created (contact.created) when this message is its first sight.

  KEYS[1] the inbox's opt-out hash   KEYS[2] the contact identity key   KEYS[3] dedup key of the message
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] new contact id   ARGV[4] account id   ARGV[5] E.164 number
  ARGV[6] inbox id   ARGV[7] 'out' | 'in'   ARGV[8] the keyword   ARGV[9] dedup TTL seconds

  Returns {'updated', contactId} | {'unchanged', contactId} | {'duplicate'}
]]
--- @include "emitEvent"
--- @include "contact"

local prefix, nowIso, accountId, phone, inboxId, action = ARGV[1], ARGV[2], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if redis.call('EXISTS', KEYS[3]) == 1 then return {'duplicate'} end
redis.call('SET', KEYS[3], '1', 'EX', tonumber(ARGV[9]))
local optedOut = redis.call('HEXISTS', KEYS[1], phone) == 1
local contactId = ensureContact(prefix, KEYS[2], ARGV[3], accountId, 'sms', phone, '', inboxId, nowIso)
if (action == 'out') == optedOut then return {'unchanged', contactId} end
if action == 'out' then redis.call('HSET', KEYS[1], phone, nowIso) else redis.call('HDEL', KEYS[1], phone) end
local contactKey = prefix .. ':contact:' .. contactId
redis.call('HSET', contactKey, 'updatedAt', nowIso)
local n = redis.call('HINCRBY', contactKey, 'updates', 1)
local f = redis.call('HMGET', contactKey, 'id', 'accountId', 'channel', 'channelId', 'name', 'attributes', 'createdAt')
local change = (action == 'out') and 'sms_opted_out' or 'sms_opted_in'
local data = '{"id":' .. cjson.encode(f[1]) .. ',"accountId":' .. cjson.encode(f[2]) .. ',"channel":' .. cjson.encode(f[3])
  .. ',"channelId":' .. cjson.encode(f[4]) .. ',"name":' .. cjson.encode(f[5] or '') .. ',"attributes":' .. (f[6] or '{}')
  .. ',"createdAt":' .. cjson.encode(f[7]) .. ',"updatedAt":' .. cjson.encode(nowIso)
  .. ',"change":"' .. change .. '","sms":{"inboxId":' .. cjson.encode(inboxId) .. ',"optedOut":' .. tostring(action == 'out')
  .. ',"keyword":' .. cjson.encode(ARGV[8]) .. '}}'
emitEvent(prefix, accountId, 'evt_' .. contactId .. '_u' .. n, 'contact.updated', '/accounts/' .. accountId, contactId, nowIso, data, '', '')
return {'updated', contactId}
