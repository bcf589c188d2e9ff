-- Consistent counts. Every undelivered message is exactly one stream entry that is either
-- new (ready), pending (in flight, expired leases included), in the delayed set, or failed.
-- KEYS: stream, delayed, failed. ARGV: group. Returns {ready, in_flight, delayed, failed}.
local stream, delayed, failed = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', stream) == 0 then return {0, 0, 0, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local len = redis.call('XLEN', stream)
local pending = redis.call('XPENDING', stream, ARGV[1])[1]
local waiting = redis.call('ZCARD', delayed)
local due = redis.call('ZCOUNT', delayed, '-inf', now)
local dead = redis.call('HLEN', failed)
local ready = len - pending - waiting - dead + due
if ready < 0 then ready = 0 end
return {ready, pending, waiting - due, dead}
