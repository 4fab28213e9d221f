-- Conversation order. A seq is a microsecond clock reading that never goes backwards per contact and
-- inbox: an inbound message brings the one its web process took on arrival (no Redis round trip on the
-- webhook's path) and raises the contact's sequence key to it; whatever the core adds itself (replies,
-- notes) takes the later of Redis's clock and that key + 1, so it always sorts after what came before.
local function raiseSequence(seqKey, seq)
  if seq > tonumber(redis.call('GET', seqKey) or '0') then redis.call('SET', seqKey, seq) end
end

local function nextSequence(seqKey)
  local t = redis.call('TIME')
  local seq = math.max(tonumber(t[1]) * 1000000 + tonumber(t[2]), tonumber(redis.call('GET', seqKey) or '0') + 1)
  redis.call('SET', seqKey, seq)
  return seq
end
