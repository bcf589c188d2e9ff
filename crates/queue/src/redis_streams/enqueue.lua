-- Enqueue one message, with its idempotency record in the same atomic step.
-- KEYS[1] stream, KEYS[2] idempotency key (absent without an Idempotency-Key)
-- ARGV: group, id, client, payload, accepted_ms, request_hash, ttl_secs
-- Returns {'ok'|'dup'|'conflict', message_id}.
local stream, idem = KEYS[1], KEYS[2]
if idem then
  local rec = redis.call('GET', idem)
  if rec then
    local sep = string.find(rec, '|', 1, true)
    local earlier = string.sub(rec, 1, sep - 1)
    if string.sub(rec, sep + 1) == ARGV[6] then return {'dup', earlier} end
    return {'conflict', earlier}
  end
end
if redis.call('EXISTS', stream) == 0 then
  -- A fresh (or flushed) server: the group must exist before the first entry or XREADGROUP fails.
  redis.call('XGROUP', 'CREATE', stream, ARGV[1], '0', 'MKSTREAM')
end
redis.call('XADD', stream, '*', 'id', ARGV[2], 'client', ARGV[3], 'payload', ARGV[4], 'acc', ARGV[5])
if idem then
  redis.call('SET', idem, ARGV[2] .. '|' .. ARGV[6], 'EX', ARGV[7])
end
return {'ok', ARGV[2]}
