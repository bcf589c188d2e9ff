-- Remove delivered entries whose lease is still the token's (same owner, same delivery count).
-- KEYS: stream, attempts. ARGV: group, then (entry, consumer, deliveries, message_id) per token.
-- A batch costs a few commands, not four per entry: per consumer one XPENDING over the range of
-- its tokens, then one XACK, one XDEL and one HDEL for every entry that still matches.
local stream, attempts, group = KEYS[1], KEYS[2], ARGV[1]

-- consumer -> {lo, hi, tokens = {{entry, deliveries, msg}, ...}}; lo and hi as {id, ms, seq}:
-- stream ids compare as (milliseconds, sequence), not as strings.
local by_consumer = {}
for i = 2, #ARGV, 4 do
  local entry, consumer, deliveries, msg = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local ms, seq = string.match(entry, '^(%d+)-(%d+)$')
  if ms then
    ms, seq = tonumber(ms), tonumber(seq)
    local c = by_consumer[consumer]
    if not c then
      c = {lo = {entry, ms, seq}, hi = {entry, ms, seq}, tokens = {}}
      by_consumer[consumer] = c
    end
    if ms < c.lo[2] or (ms == c.lo[2] and seq < c.lo[3]) then c.lo = {entry, ms, seq} end
    if ms > c.hi[2] or (ms == c.hi[2] and seq > c.hi[3]) then c.hi = {entry, ms, seq} end
    c.tokens[#c.tokens + 1] = {entry, deliveries, msg}
  end
end

local entries, msgs = {}, {}
local page = 1000
for consumer, c in pairs(by_consumer) do
  -- The consumer's pending entries in [lo, hi] with their delivery counts, a page at a time.
  local held = {}
  local start = c.lo[1]
  while true do
    local p = redis.call('XPENDING', stream, group, start, c.hi[1], page, consumer)
    for _, e in ipairs(p) do held[e[1]] = tonumber(e[4]) end
    if #p < page then break end
    start = '(' .. p[#p][1]
  end
  for _, t in ipairs(c.tokens) do
    if held[t[1]] == t[2] then
      held[t[1]] = nil -- a token given twice counts once
      entries[#entries + 1] = t[1]
      msgs[#msgs + 1] = t[3]
    end
  end
end

-- unpack() has a stack limit: write in slices.
local slice = 1000
for s = 1, #entries, slice do
  local e = math.min(s + slice - 1, #entries)
  redis.call('XACK', stream, group, unpack(entries, s, e))
  redis.call('XDEL', stream, unpack(entries, s, e))
  redis.call('HDEL', attempts, unpack(msgs, s, e))
end
return #entries
