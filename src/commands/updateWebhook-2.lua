--[[
  updateWebhook: applies an API change to a webhook subscription's stored record, only the fields the
  change names, in one step. So a pause or a 410 disable the deliverer wrote (settleDelivery: enabled,
  disabledReason, pausedAt) after the API read the record is kept, unless the change sets `enabled`
  itself; setting it moves the subscription in or out of the off set in the same step.

  KEYS[1] the subscription record   KEYS[2] the off set (subscriptions whose lanes are put aside)
  ARGV[1] account id   ARGV[2] now (ISO)   ARGV[3] the fields to set (a JSON object)
  Returns {'updated', recordJson, wasOff (1 when enabling took it out of the off set)} | {'missing'}
]]
local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing'} end
local record = cjson.decode(raw)
if record.accountId ~= ARGV[1] then return {'missing'} end
local fields = cjson.decode(ARGV[3])
for name, value in pairs(fields) do record[name] = value end
record.updatedAt = ARGV[2]
local encoded = cjson.encode(record)
redis.call('SET', KEYS[1], encoded)
local wasOff = 0
if fields.enabled == true then wasOff = redis.call('SREM', KEYS[2], record.id) end
if fields.enabled == false then redis.call('SADD', KEYS[2], record.id) end
return {'updated', encoded, wasOff}
