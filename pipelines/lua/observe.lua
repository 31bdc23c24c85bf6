-- RedisFeatureState.observe: records a batch of transactions in order and returns, per
-- transaction, the flat integers that pipelines/redis_state.py decodes into WindowAggregates:
-- duplicate (0/1), seconds since the card's previous transaction (-1 for none), card used the
-- terminal before (0/1), then card counts, card amount sums, terminal counts and terminal
-- frauds, one per window. Mirrors InMemoryFeatureState._observe_one line for line.
--
-- ARGV: prefix, card horizon, terminal horizon, label delay, dedupe seconds, card key TTL,
-- terminal key TTL, terminals kept per card, number of windows, the window spans, then per
-- transaction: id, second, amount in hundredths, card id, terminal id. Keys are named here,
-- not passed in KEYS: one Redis, not a Cluster.

local prefix = ARGV[1]
local card_horizon, terminal_horizon = tonumber(ARGV[2]), tonumber(ARGV[3])
local delay, dedupe_seconds = tonumber(ARGV[4]), tonumber(ARGV[5])
local card_ttl, terminal_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local max_terminals = tonumber(ARGV[8])
local spans = {}
for index = 1, tonumber(ARGV[9]) do
  spans[index] = tonumber(ARGV[9 + index])
end
local first = 10 + #spans

-- A card's terminals: terminal id -> "last second:insertion number". The number keeps
-- Python's dict order, which breaks ties when the least recent terminal is evicted; it is
-- counted in the field " n" (ids hold no spaces).
local function last_use(entry)
  local second, order = string.match(entry, '^(-?%d+):(%d+)$')
  return tonumber(second), order
end

local function forget_least_recent(key)
  local fields = redis.call('HGETALL', key)
  local oldest, oldest_second, oldest_order
  for index = 1, #fields, 2 do
    if fields[index] ~= ' n' then
      local second, order = last_use(fields[index + 1])
      order = tonumber(order)
      if not oldest or second < oldest_second
          or (second == oldest_second and order < oldest_order) then
        oldest, oldest_second, oldest_order = fields[index], second, order
      end
    end
  end
  redis.call('HDEL', key, oldest)
end

local written = {}  -- key -> TTL, set once per key at the end of the batch
local out = {}
for base = first, #ARGV, 5 do
  local id, second, amount = ARGV[base], tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local card_key = prefix .. 'card:' .. ARGV[base + 3] .. ':buckets'
  local used_key = prefix .. 'card:' .. ARGV[base + 3] .. ':terminals'
  local terminal_key = prefix .. 'terminal:' .. ARGV[base + 4] .. ':buckets'
  local frauds_key = prefix .. 'terminal:' .. ARGV[base + 4] .. ':frauds'
  local terminal = ARGV[base + 4]

  local new = redis.call('SET', prefix .. 'seen:' .. id, 1, 'NX', 'EX', dedupe_seconds)
  local entry = redis.call('HGET', used_key, terminal)
  local last, order
  if entry then
    last, order = last_use(entry)
  end
  local previous
  local card_counts, card_sums, terminal_counts = {}, {}, {}
  if not new then
    -- Read-only: the transaction already counts once. Its own earlier record sits in its
    -- second, so its predecessor is the latest second before that one.
    previous = latest(card_key, second - 1)
    windows(card_key, second, spans, card_counts, card_sums)
    windows(terminal_key, second - delay, spans, terminal_counts)
  else
    local at, cut
    previous, at, cut = add(card_key, second, 1, amount, card_horizon)
    windows(card_key, second, spans, card_counts, card_sums, at, cut)
    local _, _, terminal_cut = add(terminal_key, second, 1, 0, terminal_horizon)
    windows(terminal_key, second - delay, spans, terminal_counts, nil, nil, terminal_cut)
    if not entry then
      order = redis.call('HINCRBY', used_key, ' n', 1)
      redis.call('HSET', used_key, terminal, second .. ':' .. order)
      -- A card holds at most as many terminals as it ever inserted: most never reach the cap.
      if order > max_terminals and redis.call('HLEN', used_key) - 1 > max_terminals then
        forget_least_recent(used_key)
      end
    elseif second > last then
      redis.call('HSET', used_key, terminal, second .. ':' .. order)
    end
    written[card_key], written[used_key] = card_ttl, card_ttl
    written[terminal_key] = terminal_ttl
  end

  out[#out + 1] = new and 0 or 1
  out[#out + 1] = previous and second - previous or -1
  out[#out + 1] = (last and last > second - card_horizon) and 1 or 0
  for _, part in ipairs({card_counts, card_sums, terminal_counts}) do
    for _, total in ipairs(part) do
      out[#out + 1] = total
    end
  end
  windows(frauds_key, second - delay, spans, out)
end

for key, ttl in pairs(written) do
  redis.call('EXPIRE', key, ttl)
end
return out
