-- Undelivered messages of one partition: its stream entries minus the dead letters, which stay
-- in the stream. KEYS: stream, failed.
local n = redis.call('XLEN', KEYS[1]) - redis.call('HLEN', KEYS[2])
if n < 0 then n = 0 end
return n
