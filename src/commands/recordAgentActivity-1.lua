--[[
  recordAgentActivity: notes that an agent did something (a socket frame, an API call), which pushes
  back its auto-away timer.

  KEYS[1] the agent's state hash
  ARGV[1] timers zset key   ARGV[2] now (ms)   ARGV[3] agent id

  Returns 1
]]
redis.call('HSET', KEYS[1], 'lastActivityMs', ARGV[2])
local period = tonumber(redis.call('HGET', KEYS[1], 'autoAwayMs') or '0')
if period > 0 and redis.call('HGET', KEYS[1], 'status') == 'online' then
  redis.call('ZADD', ARGV[1], tonumber(ARGV[2]) + period, 'away|' .. ARGV[3])
end
return 1
