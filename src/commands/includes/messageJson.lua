-- messageJson: the stored message as normalized-message JSON. The body holds the fields that never
-- change; the hash fields hold what the core decides or updates (ids, seq, status), never both.
local function messageJsonOf(body, conversationId, contactId, seq, status, externalId, errorCode, errorMessage)
  local extra = ',"conversationId":' .. cjson.encode(conversationId) .. ',"contactId":' .. cjson.encode(contactId) .. ',"seq":' .. seq
  if status then extra = extra .. ',"status":' .. cjson.encode(status) end
  if externalId then extra = extra .. ',"externalId":' .. cjson.encode(externalId) end
  if errorCode then extra = extra .. ',"error":{"code":' .. cjson.encode(errorCode) .. ',"message":' .. cjson.encode(errorMessage or '') .. '}' end
  return string.sub(body, 1, -2) .. extra .. '}'
end

local function messageJson(msgKey)
  local f = redis.call('HMGET', msgKey, 'body', 'conversationId', 'contactId', 'seq', 'status', 'externalId', 'errorCode', 'errorMessage')
  return messageJsonOf(f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8])
end
