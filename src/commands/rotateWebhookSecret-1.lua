--[[
  rotateWebhookSecret: a subscription's new signing secret, in one step on the stored record: the
  secret stored now (not one read earlier, which a concurrent rotation may have replaced) becomes the
  previous one during the overlap, and every other field, such as a pause the deliverer just wrote, stays.

  KEYS[1] the subscription record
  ARGV[1] account id   ARGV[2] now (ISO)   ARGV[3] the new sealed secret
  ARGV[4] when the previous secret stops signing (ISO; '' = no overlap, it stops at once)
  Returns {'rotated', recordJson} | {'missing'}
]]
local raw = redis.call('GET', KEYS[1])
if not raw then return {'missing'} end
local record = cjson.decode(raw)
if record.accountId ~= ARGV[1] then return {'missing'} end
if ARGV[4] ~= '' then
  record.sealedPreviousSecret = record.sealedSecret
  record.previousSecretExpiresAt = ARGV[4]
else
  record.sealedPreviousSecret = cjson.null
  record.previousSecretExpiresAt = cjson.null
end
record.sealedSecret = ARGV[3]
record.updatedAt = ARGV[2]
local encoded = cjson.encode(record)
redis.call('SET', KEYS[1], encoded)
return {'rotated', encoded}
