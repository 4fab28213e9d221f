--[[
  replaceSmsSendMarker: swaps an SMS send marker only while it still holds what this attempt read, so
  two attempts at one message never both take it (compare-and-set).

  KEYS[1] the message's send marker
  ARGV[1] the value expected now; ARGV[2] the new value; ARGV[3] its lifetime in seconds
  Returns 1 when swapped, 0 when another attempt changed it first.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
