--[[
  claimDeliveries: takes up to `count` due lanes and leases their heads to one worker: the lane's
  score moves to the lease's end, so a worker killed mid-delivery only delays that lane until then.
  Lanes of a paused or disabled subscription are put aside for an hour (resuming makes them due).
  A subscription already at its in-flight cap is skipped: its lanes move a second on (a finished
  delivery wakes the deliverer anyway), so they neither make workers spin on an always-due lane nor
  fill the scan (up to 2,000 due lanes) and crowd out the other subscriptions.

  KEYS[1] the due set
  ARGV[1] prefix  ARGV[2] count  ARGV[3] lease ms  ARGV[4] cap per subscription, then pairs of
          subscription id, deliveries this worker has in flight for it
  Returns {{subscription id, lane, event id, event JSON, attempts so far, lease token}…, next due ms or false, now ms}
]]
local due, prefix = KEYS[1], ARGV[1]
local count, leaseMs, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local busy = {}
for i = 5, #ARGV, 2 do busy[ARGV[i]] = tonumber(ARGV[i + 1]) end
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local claimed = {}
local off = {}
local window = math.max(count * 4, 100)
local scanned = 0
while #claimed < count and scanned < 2000 do
  local members = redis.call('ZRANGEBYSCORE', due, '-inf', nowMs, 'LIMIT', 0, window)
  -- Members claimed or put aside in this loop leave the due range: the next window starts at the front again.
  for _, member in ipairs(members) do
    if #claimed >= count then break end
    local bar = string.find(member, '|', 1, true)
    local subId, lane = string.sub(member, 1, bar - 1), string.sub(member, bar + 1)
    local base = prefix .. ':wh:' .. subId
    if off[subId] == nil then off[subId] = redis.call('SISMEMBER', prefix .. ':whoff', subId) == 1 end
    if off[subId] then
      redis.call('ZADD', due, nowMs + 3600000, member)
    elseif (busy[subId] or 0) >= cap then
      redis.call('ZADD', due, nowMs + 1000, member)
    else
      local laneKey = base .. ':lane:' .. lane
      local head = redis.call('LINDEX', laneKey, 0)
      -- A head whose record is gone (the subscription was deleted meanwhile) is dropped.
      while head and redis.call('EXISTS', base .. ':dlv:' .. head) == 0 do
        redis.call('LPOP', laneKey)
        head = redis.call('LINDEX', laneKey, 0)
      end
      if not head then
        redis.call('ZREM', due, member)
        redis.call('SREM', base .. ':lanes', lane)
      else
        local deliveryKey = base .. ':dlv:' .. head
        local f = redis.call('HMGET', deliveryKey, 'event', 'attempts')
        local token = nowMs .. '-' .. redis.call('HINCRBY', deliveryKey, 'claims', 1)
        redis.call('HSET', deliveryKey, 'lease', token)
        -- The retry window starts when the delivery is first tried, not when it was queued.
        redis.call('HSETNX', deliveryKey, 'windowStart', nowMs)
        redis.call('ZADD', due, nowMs + leaseMs, member)
        busy[subId] = (busy[subId] or 0) + 1
        claimed[#claimed + 1] = { subId, lane, head, f[1], f[2] or '0', token }
      end
    end
  end
  if #members < window then break end
  scanned = scanned + #members
end
local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
return { claimed, first[2] or false, nowMs }
