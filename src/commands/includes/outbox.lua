-- addToOutbox: an outbound message stays in prefix:outbox (scored by Redis time, ms) until its status
-- leaves queued, so a crash between storing it and adding its job is mended by the outbox sweeper.
local function addToOutbox(prefix, messageId)
  local t = redis.call('TIME')
  redis.call('ZADD', prefix .. ':outbox', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), messageId)
end
