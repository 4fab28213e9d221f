--[[
  releaseLease: gives a lease up, if the caller still holds it.

  KEYS[1] the lease key   ARGV[1] the holder
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
