--[[
  takeSmsSendSlot: an SMS inbox's send rate, shared by every worker process (GCRA on one key, timed
  by Redis's own clock so process clocks do not matter). Either takes a slot now or says how long to wait.

  KEYS[1] the inbox's rate key (theoretical arrival time in ms)
  ARGV[1] ms between sends (1000 / sendsPerSecond)   ARGV[2] burst (sends allowed at once)

  Returns 0 (send now) | the ms to wait before asking again
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allowAt = tat - (burst - 1) * interval
if now < allowAt then return math.ceil(allowAt - now) end
local nextTat = tat + interval
redis.call('SET', KEYS[1], nextTat, 'PX', math.ceil(nextTat - now) + 1000)
return 0
