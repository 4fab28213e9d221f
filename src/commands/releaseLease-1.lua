--[[
  releaseLease: gives up a lease this holder has (a clean stop), so the next process need not wait out the ttl.

  KEYS[1] lease key
  ARGV[1] holder id

  Returns 1 (released) | 0 (not this holder's)
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
