--[[
  tagConversation: adds and removes a conversation's tags (its own, apart from the contact's) and
  emits conversation.tags_changed once, only when the set of tags changed.

  KEYS[1] conversation hash
  ARGV[1] prefix   ARGV[2] now (ISO)   ARGV[3] tags to add (JSON array)   ARGV[4] tags to remove (JSON array)
  ARGV[5] most tags a conversation may carry

  Returns {'updated', tagsJson} | {'unchanged', tagsJson} | {'missing'} | {'full'}
]]
--- @include "emitEvent"

local prefix, nowIso = ARGV[1], ARGV[2]
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local function encodeList(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = cjson.encode(v) end
  return '[' .. table.concat(parts, ',') .. ']'
end
local current = cjson.decode(redis.call('HGET', KEYS[1], 'tags') or '[]')
local has = {}
for _, tag in ipairs(current) do has[tag] = true end
local added, removed = {}, {}
for _, tag in ipairs(cjson.decode(ARGV[4])) do
  if has[tag] then has[tag] = nil; removed[#removed + 1] = tag end
end
for _, tag in ipairs(cjson.decode(ARGV[3])) do
  if not has[tag] then has[tag] = true; added[#added + 1] = tag end
end
local tags = {}
for tag in pairs(has) do tags[#tags + 1] = tag end
table.sort(tags)
local tagsJson = encodeList(tags)
if #added == 0 and #removed == 0 then return {'unchanged', tagsJson} end
if #tags > tonumber(ARGV[5]) then return {'full'} end
redis.call('HSET', KEYS[1], 'tags', tagsJson, 'updatedAt', nowIso)
local n = redis.call('HINCRBY', KEYS[1], 'tagChanges', 1)
local c = redis.call('HMGET', KEYS[1], 'id', 'accountId', 'inboxId', 'assigneeId')
emitEvent(prefix, c[2], 'evt_' .. c[1] .. '_t' .. n, 'conversation.tags_changed', conversationSource(c[2], c[3]), c[1], nowIso,
  conversationJson(KEYS[1], '"tags":' .. tagsJson .. ',"added":' .. encodeList(added) .. ',"removed":' .. encodeList(removed)), c[4] or '', '')
return {'updated', tagsJson}
