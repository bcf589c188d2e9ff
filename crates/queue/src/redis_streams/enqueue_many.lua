-- Enqueue a group of messages in one atomic step (group commit: one script call, one AOF write),
-- each with its idempotency record written in the same atomic step as its XADD.
-- KEYS[1] stream, KEYS[2..] the idempotency keys of the messages that have one.
-- ARGV[1] group, ARGV[2] ttl_secs, ARGV[3] '1' when the caller WAITs for replicas, then 6 per
-- message: id, client, payload, accepted_ms, request_hash, index into KEYS of its idempotency key
-- ('0' without one).
-- Returns {{'ok'|'dup'|'conflict', message_id}, ...} in message order.
local stream = KEYS[1]
if redis.call('EXISTS', stream) == 0 then
  -- A fresh (or flushed) server: the group must exist before the first entry or XREADGROUP fails.
  redis.call('XGROUP', 'CREATE', stream, ARGV[1], '0', 'MKSTREAM')
end
local out = {}
for i = 4, #ARGV, 6 do
  local id, client, payload, acc, hash = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local idem = KEYS[tonumber(ARGV[i + 5])]
  local answer = nil
  if idem then
    local rec = redis.call('GET', idem)
    if rec then
      local sep = string.find(rec, '|', 1, true)
      local earlier = string.sub(rec, 1, sep - 1)
      if string.sub(rec, sep + 1) == hash then
        answer = {'dup', earlier}
        -- Rewritten unchanged so that the caller's WAIT covers the earlier entry too (it was
        -- written before this, by whichever connection).
        if ARGV[3] == '1' then redis.call('SET', idem, rec, 'KEEPTTL') end
      else
        answer = {'conflict', earlier}
      end
    end
  end
  if not answer then
    redis.call('XADD', stream, '*', 'id', id, 'client', client, 'payload', payload, 'acc', acc)
    if idem then
      redis.call('SET', idem, id .. '|' .. hash, 'EX', ARGV[2])
    end
    answer = {'ok', id}
  end
  out[#out + 1] = answer
end
return out
