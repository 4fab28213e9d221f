-- emitEvent: appends one CloudEvent to the account's replay stream, the webhook feed (only for accounts
-- with an enabled subscription) and the live feed, inside the same script as the state change it
-- reports, so a change and its event are never apart.
-- Event ids are derived from what changed, so a retried job can never emit a second copy.
local webhookCache = {}
local function emitEvent(prefix, accountId, eventId, eventType, source, subject, time, dataJson, agentHint, visitorHint)
  local envelope = '{"specversion":"1.0","id":' .. cjson.encode(eventId) .. ',"source":' .. cjson.encode(source)
    .. ',"type":"' .. eventType .. '","time":"' .. time .. '","subject":' .. cjson.encode(subject)
    .. ',"datacontenttype":"application/json","data":' .. dataJson .. '}'
  -- The replay stream is trimmed by age (GATEWAY_EVENT_RETENTION_DAYS, src/events/eventRetention.ts), not by count.
  redis.call('XADD', prefix .. ':acc:' .. accountId .. ':events', '*', 'e', envelope)
  local hooked = webhookCache[accountId]
  if hooked == nil then hooked = redis.call('SISMEMBER', prefix .. ':webhookaccounts', accountId) == 1; webhookCache[accountId] = hooked end
  if hooked then
    redis.call('XADD', prefix .. ':events', '*', 'e', envelope, 'acc', accountId)
  end
  redis.call('XADD', prefix .. ':live', 'MAXLEN', '~', 20000, '*', 'e', envelope, 'a', agentHint or '', 'v', visitorHint or '')
  return envelope
end

-- tellAgent: the same event on the live feed for one more agent (e.g. the one a transfer took it from).
local function tellAgent(prefix, envelope, agentId)
  redis.call('XADD', prefix .. ':live', 'MAXLEN', '~', 20000, '*', 'e', envelope, 'a', agentId, 'v', '')
end

local function conversationSource(accountId, inboxId)
  return '/accounts/' .. accountId .. '/inboxes/' .. inboxId
end

-- The conversation as event data: ids, state and routing, never message content; `extra` adds fields.
local function conversationJson(convKey, extra)
  local f = redis.call('HMGET', convKey, 'id', 'accountId', 'inboxId', 'contactId', 'channel', 'status', 'assigneeId',
    'createdAt', 'teamId', 'priority')
  local data = cjson.encode({ id = f[1], accountId = f[2], inboxId = f[3], contactId = f[4], channel = f[5],
    status = f[6], assigneeId = (f[7] ~= '' and f[7]) or cjson.null, createdAt = f[8],
    teamId = ((f[9] and f[9] ~= '' and f[9] ~= 'default') and f[9]) or cjson.null, priority = tonumber(f[10] or '0') })
  if extra then data = string.sub(data, 1, -2) .. ',' .. extra .. '}' end
  return data
end
