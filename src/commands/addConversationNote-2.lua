--[[
  addConversationNote: an internal note on a conversation, for the agents only: kept in the
  conversation's own note list (never in its messages, so no channel ever sends it and the visitor's
  history never shows it), with conversation.note_added (to the assignee's socket, never the visitor's).
  With an idempotency key a repeated request returns the first note, and the key sent with another
  request body is refused ('reused') with nothing changed.

  KEYS[1] conversation hash   KEYS[2] idempotency key (any key when ARGV[5] is '0')
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] note id   ARGV[4] note JSON   ARGV[5] idempotency ttl ('0' = none)
  ARGV[6] most notes a conversation keeps   ARGV[7] the request body's digest

  Returns {'added', noteJson} | {'existing', noteJson} | {'reused'} | {'missing'} | {'full'}
]]
--- @include "idempotency"
--- @include "emitEvent"

local prefix, nowIso = ARGV[1], ARGV[2]
if ARGV[5] ~= '0' then
  local replay, existing = idempotentReplay(KEYS[2], ARGV[7])
  if replay == 'same' then return {'existing', existing} end
  if replay == 'reused' then return {'reused'} end
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local notesKey = KEYS[1] .. ':notes'
if redis.call('LLEN', notesKey) >= tonumber(ARGV[6]) then return {'full'} end
redis.call('RPUSH', notesKey, ARGV[4])
local c = redis.call('HMGET', KEYS[1], 'id', 'accountId', 'inboxId', 'assigneeId')
redis.call('HSET', KEYS[1], 'updatedAt', nowIso)
emitEvent(prefix, c[2], 'evt_' .. ARGV[3], 'conversation.note_added', conversationSource(c[2], c[3]), c[1], nowIso,
  conversationJson(KEYS[1], '"note":' .. ARGV[4]), c[4] or '', '')
if ARGV[5] ~= '0' then recordIdempotency(KEYS[2], ARGV[4], ARGV[7], tonumber(ARGV[5])) end
return {'added', ARGV[4]}
