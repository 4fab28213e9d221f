-- An idempotency record is a hash of the first request's result and the digest of its body, written
-- in the script that does the work, so a key is claimed with its digest or not at all.

-- 'none' for an unused key, 'same' and the first result for the same body, 'reused' for another body.
local function idempotentReplay(key, requestDigest)
  local kind = redis.call('TYPE', key).ok
  if kind == 'none' then return 'none' end
  -- A plain string was written before digests were kept: its result is all there is to compare with.
  if kind == 'string' then return 'same', redis.call('GET', key) end
  local f = redis.call('HMGET', key, 'result', 'requestDigest')
  if f[2] ~= requestDigest then return 'reused' end
  return 'same', f[1]
end

local function recordIdempotency(key, result, requestDigest, ttlSeconds)
  redis.call('HSET', key, 'result', result, 'requestDigest', requestDigest)
  redis.call('EXPIRE', key, ttlSeconds)
end
