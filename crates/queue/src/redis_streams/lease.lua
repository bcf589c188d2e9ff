-- Lease up to ARGV[3] messages to consumer ARGV[2]: promote due retries, reclaim abandoned leases
-- (idle > lease), then read new entries. Atomic, so no two consumers get the same entry. An
-- entry's own attempts are its delivery count in the group (XPENDING), which Redis keeps with the
-- lease, so a crash between lease and ack loses no count.
-- KEYS: stream, delayed, attempts. ARGV: group, consumer, max, lease_ms, own_first.
-- own_first = '1' on a consumer's first lease in a process: a restarted worker (stable consumer
-- name) first takes back the entries it still holds, instead of waiting for the lease to expire.
-- Returns {{entry_id, {field, value, ...}, attempts, deliveries}, ...}.
local stream, delayed, attempts = KEYS[1], KEYS[2], KEYS[3]
local group, consumer, max, lease_ms, own_first = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if redis.call('EXISTS', stream) == 0 then
  redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
end

-- Due retries go back as new entries (same fields), so the group delivers them like fresh ones.
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)
for _, old in ipairs(due) do
  local e = redis.call('XRANGE', stream, old, old)
  if e[1] then
    redis.call('XADD', stream, '*', unpack(e[1][2]))
    redis.call('XDEL', stream, old)
  end
  redis.call('ZREM', delayed, old)
end

local out = {}
-- fresh = the entry came from XREADGROUP '>': its delivery count is 1 by definition, so only
-- entries taken back (own pending, XAUTOCLAIM) ask XPENDING for theirs. Attempts = those made
-- through the message's earlier entries (written by release.lua when it scheduled a retry or
-- dead-lettered it) + this entry's deliveries: a read per entry, no write.
local function take(entry, fresh)
  local f = entry[2]
  local msg = ''
  for j = 1, #f, 2 do
    if f[j] == 'id' then
      msg = f[j + 1]
      break
    end
  end
  local deliveries = 1
  if not fresh then
    local p = redis.call('XPENDING', stream, group, entry[1], entry[1], 1)
    if p[1] then deliveries = p[1][4] end
  end
  local earlier = tonumber(redis.call('HGET', attempts, msg)) or 0
  out[#out + 1] = {entry[1], f, earlier + deliveries, deliveries}
end

if own_first == '1' then
  -- ID 0 reads this consumer's own pending entries (history), not new ones.
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', max, 'STREAMS', stream, '0')
  if r and r[1] then
    for _, e in ipairs(r[1][2]) do
      if type(e) == 'table' and e[2] then take(e, false) end
    end
  end
end

local cursor = '0-0'
for _ = 1, 10 do
  if #out >= max then break end
  local r = redis.call('XAUTOCLAIM', stream, group, consumer, lease_ms, cursor, 'COUNT', max - #out)
  for _, e in ipairs(r[2]) do
    if type(e) == 'table' and e[2] then take(e, false) end
  end
  cursor = r[1]
  if cursor == '0-0' then break end
end

if #out < max then
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', max - #out, 'STREAMS', stream, '>')
  if r then
    for _, e in ipairs(r[1][2]) do take(e, true) end
  end
end
return out
