-- Per-second buckets with running totals, as models/windows.py's TimeBuckets keeps them, in one
-- sorted set per series, scored by second. A bucket's member packs its second and the running
-- totals up to and including it, three little-endian doubles; the totals of the buckets
-- dropped behind the horizon (TimeBuckets' base) are the member whose second is -inf, at score
-- -inf, so "the latest member at or before x" answers both a bucket and the base.
--
-- Packed rather than text ("second:count:sum"): a member is read back with one struct.unpack
-- instead of a pattern match and three number parses, a dozen times per transaction.
--
-- Totals are doubles: exact while a series' running totals stay below 2^53.

local MEMBER = '<ddd'
local BASE = -math.huge

local function encode(second, count, sum)
  return struct.pack(MEMBER, second, count, sum)
end

-- The bucket's second (nil for the base), running count and running sum.
local function decode(member)
  local second, count, sum = struct.unpack(MEMBER, member)
  if second == BASE then
    second = nil
  end
  return second, count, sum
end

-- The member at or before `upper`: its second (nil for the base or nothing), count and sum.
local function latest(key, upper)
  local member = redis.call('ZRANGE', key, upper, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1)[1]
  if not member then
    return nil, 0, 0
  end
  return decode(member)
end

-- Like TimeBuckets.drop_through: fold every bucket at or before `cut` into the base. Returns
-- the totals at `cut`, which the windows reaching back to the horizon read again.
local function drop_through(key, cut)
  local second, count, sum = latest(key, cut)
  if second then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', cut)
    redis.call('ZADD', key, '-inf', encode(BASE, count, sum))
  end
  return count, sum
end

-- Rewrites members (second, count, sum triples) in chunks: unpack has a stack limit.
local function put(key, buckets)
  for first = 1, #buckets, 1000 do
    local args = {}
    for index = first, math.min(first + 999, #buckets) do
      local bucket = buckets[index]
      args[#args + 1] = bucket[1]
      args[#args + 1] = encode(bucket[1], bucket[2], bucket[3])
    end
    redis.call('ZADD', key, unpack(args))
  end
end

-- TimeBuckets.add (and the recording half of TimeBuckets.observe): adds `count` events worth
-- `value` at `second`. Returns the latest second that held an event at or before `second`
-- beforehand (nil if none), {count, sum} at `second` afterwards, and, for an event in time
-- order, {cut second, count, sum} at the horizon's cut (nil otherwise: only appends drop).
local function add(key, second, count, value, horizon)
  local newest = redis.call('ZRANGE', key, -1, -1)[1]
  local newest_second, newest_count, newest_sum = nil, 0, 0
  if newest then
    newest_second, newest_count, newest_sum = decode(newest)
  end
  if not newest_second or second > newest_second then
    -- By far the common case: append, then drop what fell out of the horizon.
    count, value = newest_count + count, newest_sum + value
    redis.call('ZADD', key, second, encode(second, count, value))
    local cut = second - horizon
    local cut_count, cut_sum = drop_through(key, cut)
    return newest_second, {count, value}, {cut, cut_count, cut_sum}
  end
  if second == newest_second then
    -- A tie with the newest bucket: nothing after it to rewrite.
    redis.call('ZREM', key, newest)
    count, value = newest_count + count, newest_sum + value
    redis.call('ZADD', key, second, encode(second, count, value))
    return second, {count, value}
  end
  -- Late: create the bucket from the totals before it, then shift every bucket from it on.
  local previous, prior_count, prior_sum = latest(key, second)
  local later = redis.call('ZRANGE', key, second, '+inf', 'BYSCORE')
  redis.call('ZREMRANGEBYSCORE', key, second, '+inf')
  local buckets = {}
  if previous ~= second then
    buckets[1] = {second, prior_count + count, prior_sum + value}
  end
  for _, member in ipairs(later) do
    local at, at_count, at_sum = decode(member)
    buckets[#buckets + 1] = {at, at_count + count, at_sum + value}
  end
  put(key, buckets)
  return previous, {buckets[1][2], buckets[1][3]}
end

-- TimeBuckets.windows: counts (and sums, when `sums` is a table) over (upper - span, upper] for
-- each span, appended to `counts` and `sums`. `last`: {count, sum} at `upper` when the caller
-- knows them; `cut`: {second, count, sum} from add's horizon check, which a window may reuse.
local function windows(key, upper, spans, counts, sums, last, cut)
  local last_count, last_sum
  if last then
    last_count, last_sum = last[1], last[2]
  else
    local second
    second, last_count, last_sum = latest(key, upper)
    if not second then
      -- No bucket at or before `upper`: every window is empty.
      for _ = 1, #spans do
        counts[#counts + 1] = 0
        if sums then sums[#sums + 1] = 0 end
      end
      return
    end
  end
  local start, start_count, start_sum = true, 0, 0
  for _, span in ipairs(spans) do
    -- Spans increase: once a start falls before every bucket, the longer ones do too.
    if start then
      if cut and upper - span == cut[1] then
        -- Nothing at or before the cut survived add's drop: the base (or nothing) is there.
        start, start_count, start_sum = nil, cut[2], cut[3]
      else
        start, start_count, start_sum = latest(key, upper - span)
      end
    end
    counts[#counts + 1] = last_count - start_count
    if sums then sums[#sums + 1] = last_sum - start_sum end
  end
end
