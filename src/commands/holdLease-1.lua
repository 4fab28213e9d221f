--[[
  holdLease: takes or renews a lease that one process at a time holds (the webhook feed's dispatcher).

  KEYS[1] the lease key   ARGV[1] the holder   ARGV[2] lease ms
  Returns 1 when the caller holds it now, 0 when another does.
]]
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
