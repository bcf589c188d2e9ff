-- Release leased entries: schedule a retry (delayed set, score = due ms) or dead-letter them.
-- The entry stays in the stream (acked) until it is retried or re-queued, so nothing is dropped.
-- KEYS: stream, delayed, failed, attempts.
-- ARGV: group, mode ('retry'|'dead'), retry_ms, max_attempts, error, then 4 values per token.
local stream, delayed, failed, attempts = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, mode, retry_ms, max, err = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for i = 6, #ARGV, 4 do
  local entry, consumer, deliveries, msg = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local p = redis.call('XPENDING', stream, group, entry, entry, 1)
  if p[1] and p[1][2] == consumer and tonumber(p[1][4]) == deliveries then
    redis.call('XACK', stream, group, entry)
    -- Attempts through earlier entries + this entry's deliveries, kept for the next entry.
    local tries = tonumber(redis.call('HGET', attempts, msg) or '0') + deliveries
    redis.call('HSET', attempts, msg, tries)
    if mode == 'dead' or (max > 0 and tries >= max) then
      local client = ''
      local e = redis.call('XRANGE', stream, entry, entry)
      if e[1] then
        local f = e[1][2]
        for j = 1, #f, 2 do
          if f[j] == 'client' then client = f[j + 1] end
        end
      end
      redis.call('HSET', failed, msg, cjson.encode({
        entry = entry, client = client, attempts = tries, error = err, at = string.format('%d', now)
      }))
    else
      redis.call('ZADD', delayed, now + retry_ms, entry)
    end
    n = n + 1
  end
end
return n
