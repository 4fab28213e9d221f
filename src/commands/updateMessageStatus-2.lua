--[[
  updateMessageStatus: moves an outbound message forward (queued → sent → delivered → read, or to
  failed) and emits message.sent / message.delivered / message.failed. A status that does not move
  it forward changes nothing, so receipts and retries may arrive in any order, any number of times.

  KEYS[1] message hash   KEYS[2] conversation hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] status   ARGV[4] provider id ('' = none)
  ARGV[5] error code   ARGV[6] error message

  Returns {'updated', previousStatus} | {'unchanged', status} | {'missing'}
]]
--- @include "emitEvent"
--- @include "messageJson"

local prefix, nowIso, status = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local rank = { queued = 0, sent = 1, delivered = 2, read = 3, failed = 4 }
local current = redis.call('HGET', KEYS[1], 'status') or 'queued'
local movesForward = (status == 'failed' and (current == 'queued' or current == 'sent'))
  or (status ~= 'failed' and current ~= 'failed' and rank[status] > rank[current])
if not movesForward then return {'unchanged', current} end
redis.call('HSET', KEYS[1], 'status', status, 'statusAt', nowIso)
redis.call('ZREM', prefix .. ':outbox', string.match(KEYS[1], '[^:]+$'))
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'externalId', ARGV[4]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'errorCode', ARGV[5], 'errorMessage', ARGV[6]) end
local eventType = ({ sent = 'message.sent', delivered = 'message.delivered', failed = 'message.failed' })[status]
if eventType then
  local c = redis.call('HMGET', KEYS[2], 'id', 'accountId', 'inboxId', 'assigneeId', 'visitorHint')
  local messageId = string.match(KEYS[1], '[^:]+$')
  emitEvent(prefix, c[2], 'evt_' .. messageId .. '_' .. status, eventType, conversationSource(c[2], c[3]), c[1],
    nowIso, messageJson(KEYS[1]), c[4] or '', c[5] or '')
end
return {'updated', current}
