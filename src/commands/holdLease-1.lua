--[[
  holdLease: takes a lease when it is free (or expired) and renews it when this holder has it, so
  exactly one process at a time does a singular job (watching an IMAP mailbox, reading the webhook feed). A holder that dies
  stops renewing, and the lease passes to the next process after ttl.

  KEYS[1] lease key
  ARGV[1] holder id   ARGV[2] ttl ms

  Returns 1 (held by this holder now) | 0 (another holder has it)
]]
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
return 1
