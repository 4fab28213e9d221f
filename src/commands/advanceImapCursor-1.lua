--[[
  advanceImapCursor: moves a mailbox cursor forward after its mails are durably queued. It never moves
  back, and a cursor of another mailbox or UIDVALIDITY is replaced only by a reset (lastUid 0):
  without it a stale watcher (old UIDVALIDITY) gets -1 and writes nothing.

  KEYS[1] cursor hash (mailbox, uidValidity, lastUid)
  ARGV[1] mailbox   ARGV[2] uidValidity (decimal string)   ARGV[3] lastUid   ARGV[4] '1' = reset

  Returns the cursor's lastUid afterwards, or -1 when the cursor belongs to another mailbox/UIDVALIDITY
]]
local f = redis.call('HMGET', KEYS[1], 'mailbox', 'uidValidity', 'lastUid')
if ARGV[4] ~= '1' and f[1] and (f[1] ~= ARGV[1] or f[2] ~= ARGV[2]) then
  return -1
end
if ARGV[4] == '1' or f[1] ~= ARGV[1] or f[2] ~= ARGV[2] then
  redis.call('HSET', KEYS[1], 'mailbox', ARGV[1], 'uidValidity', ARGV[2], 'lastUid', ARGV[3])
  return tonumber(ARGV[3])
end
local last = tonumber(f[3] or '0')
if tonumber(ARGV[3]) > last then
  redis.call('HSET', KEYS[1], 'lastUid', ARGV[3])
  return tonumber(ARGV[3])
end
return last
