--[[
  replaceSendMarker: swaps an outbound message's send marker (SMS, or the core's for other channels) only
  while it still holds what this attempt read or wrote, so two attempts at one message never both take it
  (compare-and-set). An empty new value deletes it.

  KEYS[1] the message's send marker
  ARGV[1] the value expected now; ARGV[2] the new value ('' = delete); ARGV[3] its lifetime in seconds
  Returns 1 when swapped, 0 when another attempt changed it first.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  end
  return 1
end
return 0
