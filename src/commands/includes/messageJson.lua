-- messageJson: the stored message as normalized-message JSON. The body holds the fields that never
-- change; the hash fields hold what the core decides or updates (ids, seq, status), never both.
local function messageJson(msgKey)
  local f = redis.call('HMGET', msgKey, 'body', 'conversationId', 'contactId', 'seq', 'status', 'externalId', 'errorCode', 'errorMessage')
  local extra = ',"conversationId":' .. cjson.encode(f[2]) .. ',"contactId":' .. cjson.encode(f[3]) .. ',"seq":' .. f[4]
  if f[5] then extra = extra .. ',"status":' .. cjson.encode(f[5]) end
  if f[6] then extra = extra .. ',"externalId":' .. cjson.encode(f[6]) end
  if f[7] then extra = extra .. ',"error":{"code":' .. cjson.encode(f[7]) .. ',"message":' .. cjson.encode(f[8] or '') .. '}' end
  return string.sub(f[1], 1, -2) .. extra .. '}'
end
