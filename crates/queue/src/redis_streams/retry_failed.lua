-- Re-queue failed messages (attempts kept): copy the kept entry to a new one, drop the old.
-- KEYS: stream, failed. ARGV: message ids.
local stream, failed = KEYS[1], KEYS[2]
local n = 0
for i = 1, #ARGV do
  local rec = redis.call('HGET', failed, ARGV[i])
  if rec then
    local entry = cjson.decode(rec).entry
    local e = redis.call('XRANGE', stream, entry, entry)
    if e[1] then
      redis.call('XADD', stream, '*', unpack(e[1][2]))
      redis.call('XDEL', stream, entry)
      redis.call('HDEL', failed, ARGV[i])
      n = n + 1
    end
  end
end
return n
