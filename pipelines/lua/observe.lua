-- RedisFeatureState.observe: records a batch of transactions in order and returns, per
-- transaction, the flat integers that pipelines/redis_state.py decodes into WindowAggregates:
-- duplicate (0/1), seconds since the card's previous transaction (-1 for none), card used the
-- terminal before (0/1), then card counts, card amount sums, terminal counts and terminal
-- frauds, one per window. A first sighting mirrors InMemoryFeatureState._observe_one line for
-- line; a repeated id gets the answer of its first sighting, kept with the id.
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

-- Records a first sighting and appends its answer to `out`.
local function record(second, amount, card, terminal)
  local card_key = prefix .. 'card:' .. card .. ':totals'
  local used_key = prefix .. 'card:' .. card .. ':terminals'
  local terminal_key = prefix .. 'terminal:' .. terminal .. ':totals'
  local frauds_key = prefix .. 'terminal:' .. terminal .. ':fraud-totals'

  local entry = redis.call('HGET', used_key, terminal)
  local last, order
  if entry then
    last, order = last_use(entry)
  end
  local card_counts, card_sums, terminal_counts = {}, {}, {}
  local previous, at, cut = add(card_key, second, 1, amount, card_horizon)
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

  out[#out + 1] = 0
  out[#out + 1] = previous and second - previous or -1
  out[#out + 1] = (last and last > second - card_horizon) and 1 or 0
  for _, part in ipairs({card_counts, card_sums, terminal_counts}) do
    for _, total in ipairs(part) do
      out[#out + 1] = total
    end
  end
  windows(frauds_key, second - delay, spans, out)
end

for base = first, #ARGV, 5 do
  local answer_key = prefix .. 'answer:' .. ARGV[base]
  local first_answer = redis.call('GET', answer_key)
  if first_answer then
    -- A repeat: state counts it once already, and it gets its first sighting's answer, kept
    -- with its id. So a worker that died between recording a batch and storing its scores
    -- scores the replay from exactly the features it would have scored the first time.
    out[#out + 1] = 1
    for _, total in ipairs({cmsgpack.unpack(first_answer)}) do
      out[#out + 1] = total
    end
  else
    local block = #out + 1
    record(tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), ARGV[base + 3], ARGV[base + 4])
    -- The answer after its duplicate flag, as msgpack integers: a few bytes each, packed in C.
    local answer = cmsgpack.pack(unpack(out, block + 1, #out))
    redis.call('SET', answer_key, answer, 'EX', dedupe_seconds)
  end
end

for key, ttl in pairs(written) do
  redis.call('EXPIRE', key, ttl)
end
return out
