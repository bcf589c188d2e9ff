-- Remove delivered entries whose lease is still the token's (same owner, same delivery count).
-- KEYS: stream, attempts. ARGV: group, then (entry, consumer, deliveries, message_id) per token.
local stream, attempts, group = KEYS[1], KEYS[2], ARGV[1]
local n = 0
for i = 2, #ARGV, 4 do
  local entry, consumer, deliveries, msg = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local p = redis.call('XPENDING', stream, group, entry, entry, 1)
  if p[1] and p[1][2] == consumer and tonumber(p[1][4]) == deliveries then
    redis.call('XACK', stream, group, entry)
    redis.call('XDEL', stream, entry)
    redis.call('HDEL', attempts, msg)
    n = n + 1
  end
end
return n
