-- RedisFeatureState.observe: records a batch of transactions in order and returns, per
-- transaction, the flat integers that pipelines/redis_state.py decodes into WindowAggregates:
-- duplicate (0/1), seconds since the card's previous transaction (-1 for none), card used the
-- terminal before (0/1), then card counts, card amount sums, terminal counts and terminal
-- frauds, one per window. A first sighting mirrors InMemoryFeatureState._observe_one line for
-- line; a repeated id gets the answer of its first sighting, kept with the id.
--
-- ARGV: prefix, card horizon, terminal horizon, label delay, dedupe seconds, card key TTL,
-- terminal key TTL, terminals kept per card, buckets a series holds packed, number of windows,
-- the window spans, then per transaction: id, second, amount in hundredths, card id, terminal
-- id. Keys are named here, not passed in KEYS: one Redis, not a Cluster.

local prefix = ARGV[1]
local card_horizon, terminal_horizon = tonumber(ARGV[2]), tonumber(ARGV[3])
local delay, dedupe_seconds = tonumber(ARGV[4]), tonumber(ARGV[5])
local card_ttl, terminal_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local max_terminals = tonumber(ARGV[8])
packed_limit = tonumber(ARGV[9])
local spans = {}
for index = 1, tonumber(ARGV[10]) do
  spans[index] = tonumber(ARGV[10 + index])
end
local first = 11 + #spans

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

local terminals_used = {}  -- the cards' terminal hashes written, to expire once
local windows_count = #spans
local out = {}

-- Records a first sighting and appends its answer to `out`: duplicate flag, seconds since the
-- card's previous transaction, card used the terminal before, then the four window blocks.
local function record(second, amount, terminal, card_key, used_key, terminal_key, frauds_key)
  local entry = redis.call('HGET', used_key, terminal)
  local last, order
  if entry then
    last, order = last_use(entry)
  end
  local head = #out
  local blocks = head + 3
  local previous, total, sum, cut, cut_count, cut_sum =
    add(card_key, second, 1, amount, card_horizon, card_ttl)
  windows(card_key, second, spans, out, blocks, true, total, sum, cut, cut_count, cut_sum)
  local _, _, _, terminal_cut, terminal_cut_count =
    add(terminal_key, second, 1, 0, terminal_horizon, terminal_ttl)
  windows(terminal_key, second - delay, spans, out, blocks + 2 * windows_count, false, nil, nil,
    terminal_cut, terminal_cut_count, 0)
  windows(frauds_key, second - delay, spans, out, blocks + 3 * windows_count, false)
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
  terminals_used[used_key] = true
  out[head + 1] = 0
  out[head + 2] = previous and second - previous or -1
  out[head + 3] = (last and last > second - card_horizon) and 1 or 0
end

-- Every key the batch touches, named once; every first answer and every series it reads, in a
-- few MGETs.
local answer_keys, card_keys, used_keys, terminal_keys, frauds_keys = {}, {}, {}, {}, {}
local series_keys = {}
for base = first, #ARGV, 5 do
  local index = #answer_keys + 1
  local card, terminal = ARGV[base + 3], ARGV[base + 4]
  answer_keys[index] = prefix .. 'answer:' .. ARGV[base]
  card_keys[index] = prefix .. 'card:' .. card .. ':series'
  used_keys[index] = prefix .. 'card:' .. card .. ':terminals'
  terminal_keys[index] = prefix .. 'terminal:' .. terminal .. ':series'
  frauds_keys[index] = prefix .. 'terminal:' .. terminal .. ':fraud-series'
  series_keys[#series_keys + 1] = card_keys[index]
  series_keys[#series_keys + 1] = terminal_keys[index]
  series_keys[#series_keys + 1] = frauds_keys[index]
end
local answers = {}
for chunk = 1, #answer_keys, 1000 do
  local last = math.min(chunk + 999, #answer_keys)
  local values = redis.call('MGET', unpack(answer_keys, chunk, last))
  for index = chunk, last do
    answers[answer_keys[index]] = values[index - chunk + 1]
  end
end
load(series_keys)

local answer_size = 3 + 4 * windows_count
for index, answer_key in ipairs(answer_keys) do
  local base = first + (index - 1) * 5
  local first_answer = answers[answer_key]
  if first_answer then
    -- A repeat: state counts it once already, and it gets its first sighting's answer, kept
    -- with its id. So a worker that died between recording a batch and storing its scores
    -- scores the replay from exactly the features it would have scored the first time.
    out[#out + 1] = 1
    for _, total in ipairs({cmsgpack.unpack(first_answer)}) do
      out[#out + 1] = total
    end
  else
    local block = #out
    record(tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), ARGV[base + 4], card_keys[index],
      used_keys[index], terminal_keys[index], frauds_keys[index])
    -- The answer without its duplicate flag, as msgpack numbers: a few bytes each.
    answers[answer_key] = cmsgpack.pack(unpack(out, block + 2, block + answer_size))
    redis.call('SET', answer_key, answers[answer_key], 'EX', dedupe_seconds)
  end
end

save()
for key in pairs(terminals_used) do
  redis.call('EXPIRE', key, card_ttl)
end
return out
