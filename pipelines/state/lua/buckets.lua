-- Per-second buckets with running totals, as models/windows.py's TimeBuckets keeps them. A bucket
-- is three little-endian doubles: its second, and the running count and sum up to and including
-- it. The totals of the buckets dropped behind the horizon (TimeBuckets' base) are a bucket whose
-- second is -inf, so "the latest bucket at or before x" answers both a bucket and the base.
--
-- A series has one of two layouts, chosen by its size, as Redis chooses one for its own sorted
-- sets:
--
-- * packed, while it holds at most `packed_limit` buckets (RedisFeatureState's
--   ``packed_buckets``; most cards and terminals never hold more): one string, the base then
--   the buckets oldest first, under the series' key. A script reads every series of its batch
--   with one MGET, searches each in place (a binary search unpacking one double per step) and
--   writes each changed series back once. No command per lookup: but a string is copied
--   whenever it changes, about 30 ns a bucket.
-- * sorted, beyond that: a sorted set scored by second under the series' key plus ':sorted',
--   one member per bucket, the base at -inf; the series' key holds the marker SORTED. Each
--   lookup is a command, about 1.5 µs whatever the set's size (1.54 µs at 10 members, 1.65 at
--   1,000, measured from Lua).
--
-- A series moves to the sorted layout when an event takes it past the limit, and stays there
-- until its keys expire.
--
-- Totals are doubles: exact while a series' running totals stay below 2^53.

local RECORD = 24
local TOTALS = '<ddd'
local SECOND = '<d'
local BASE = -math.huge
local EMPTY = struct.pack(TOTALS, BASE, 0, 0)
local SORTED = 'sorted'  -- never a packed series: its length is not a multiple of RECORD
local SORTED_SUFFIX = ':sorted'

local unpack_record = struct.unpack
local floor = math.floor

local packed_limit = 0  -- set by the script from its arguments, before the first add
local loaded = {}       -- key -> the packed series as read or changed, or SORTED
local changed = {}      -- key -> TTL, for each series to write back at the end

-- Reads every series of `keys` not yet loaded, in MGET chunks (unpack has a stack limit).
local function load(keys)
  local wanted = {}
  for _, key in ipairs(keys) do
    if not loaded[key] then
      loaded[key] = EMPTY
      wanted[#wanted + 1] = key
    end
  end
  for first = 1, #wanted, 1000 do
    local last = math.min(first + 999, #wanted)
    local values = redis.call('MGET', unpack(wanted, first, last))
    for index = first, last do
      loaded[wanted[index]] = values[index - first + 1] or EMPTY
    end
  end
end

-- Writes back every series this script changed, each with its TTL (a sorted series' marker and
-- its sorted set alike).
local function save()
  for key, ttl in pairs(changed) do
    local series = loaded[key]
    redis.call('SET', key, series, 'EX', ttl)
    if series == SORTED then
      redis.call('EXPIRE', key .. SORTED_SUFFIX, ttl)
    end
  end
end

-- The packed layout. Bucket `index` is record `index + 1`; record 1 is the base (index 0).

local function size(series)
  return #series / RECORD - 1
end

-- The second of bucket `index` (1 is the oldest).
local function second_of(series, index)
  return (unpack_record(SECOND, series, index * RECORD + 1))
end

-- The running count and sum of bucket `index` (0: the base).
local function totals_of(series, index)
  local _, count, sum = unpack_record(TOTALS, series, index * RECORD + 1)
  return count, sum
end

-- The index of the latest of buckets `low`..`high` at or before `upper`, when the bucket
-- before `low` is known to be (0: none, the base answers).
local function packed_latest(series, upper, low, high)
  local found = low - 1
  while low <= high do
    local middle = floor((low + high) / 2)
    if unpack_record(SECOND, series, middle * RECORD + 1) <= upper then
      found, low = middle, middle + 1
    else
      high = middle - 1
    end
  end
  return found
end

-- `add` on a packed series: returns the new series, then what `add` returns.
local function packed_add(series, second, count, value, horizon)
  local buckets = size(series)
  local newest = buckets > 0 and second_of(series, buckets) or nil
  if not newest or second > newest then
    -- By far the common case: append, then drop what fell out of the horizon (never the new
    -- bucket: the cut is before it).
    local total, sum = totals_of(series, buckets)
    total, sum = total + count, sum + value
    local appended = struct.pack(TOTALS, second, total, sum)
    local cut = second - horizon
    local dropped = 0
    if buckets > 0 and second_of(series, 1) <= cut then
      dropped = packed_latest(series, cut, 1, buckets)
    end
    local cut_count, cut_sum = totals_of(series, dropped)
    if dropped > 0 then
      series = struct.pack(TOTALS, BASE, cut_count, cut_sum)
        .. string.sub(series, (dropped + 1) * RECORD + 1) .. appended
    else
      series = series .. appended
    end
    return series, newest, total, sum, cut, cut_count, cut_sum
  end
  if second == newest then
    -- A tie with the newest bucket: nothing after it to shift.
    local total, sum = totals_of(series, buckets)
    total, sum = total + count, sum + value
    series = string.sub(series, 1, buckets * RECORD) .. struct.pack(TOTALS, second, total, sum)
    return series, second, total, sum
  end
  -- Late: create the bucket from the totals before it (or reuse its own), then shift every
  -- bucket from it on.
  local before = packed_latest(series, second, 1, buckets)
  local previous = before > 0 and second_of(series, before) or nil
  local parts, shift_from
  if previous == second then
    parts, shift_from = {string.sub(series, 1, before * RECORD)}, before
  else
    local prior_count, prior_sum = totals_of(series, before)
    parts = {
      string.sub(series, 1, (before + 1) * RECORD),
      struct.pack(TOTALS, second, prior_count + count, prior_sum + value),
    }
    shift_from = before + 1
  end
  for index = shift_from, buckets do
    local at_second, at_count, at_sum = unpack_record(TOTALS, series, index * RECORD + 1)
    parts[#parts + 1] = struct.pack(TOTALS, at_second, at_count + count, at_sum + value)
  end
  series = table.concat(parts)
  return series, previous, totals_of(series, shift_from)
end

-- The sorted layout: the same records as members, scored by their seconds.

-- The member at or before `upper`: its second (nil for the base or nothing), count and sum.
local function sorted_latest(key, upper)
  local member = redis.call('ZRANGE', key, upper, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1)[1]
  if not member then
    return nil, 0, 0
  end
  local second, count, sum = unpack_record(TOTALS, member)
  if second == BASE then
    second = nil
  end
  return second, count, sum
end

-- Rewrites members (second, count, sum triples) in chunks: unpack has a stack limit.
local function sorted_put(key, buckets)
  for first = 1, #buckets, 1000 do
    local args = {}
    for index = first, math.min(first + 999, #buckets) do
      local bucket = buckets[index]
      args[#args + 1] = bucket[1] == BASE and '-inf' or bucket[1]
      args[#args + 1] = struct.pack(TOTALS, bucket[1], bucket[2], bucket[3])
    end
    redis.call('ZADD', key, unpack(args))
  end
end

-- `add` on a sorted series.
local function sorted_add(key, second, count, value, horizon)
  local newest = redis.call('ZRANGE', key, -1, -1)[1]
  local newest_second, newest_count, newest_sum = nil, 0, 0
  if newest then
    newest_second, newest_count, newest_sum = unpack_record(TOTALS, newest)
    if newest_second == BASE then
      newest_second = nil
    end
  end
  if not newest_second or second > newest_second then
    -- By far the common case: append, then fold what fell out of the horizon into the base.
    count, value = newest_count + count, newest_sum + value
    redis.call('ZADD', key, second, struct.pack(TOTALS, second, count, value))
    local cut = second - horizon
    local cut_second, cut_count, cut_sum = sorted_latest(key, cut)
    if cut_second then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', cut)
      redis.call('ZADD', key, '-inf', struct.pack(TOTALS, BASE, cut_count, cut_sum))
    end
    return newest_second, count, value, cut, cut_count, cut_sum
  end
  if second == newest_second then
    -- A tie with the newest bucket: nothing after it to rewrite.
    redis.call('ZREM', key, newest)
    count, value = newest_count + count, newest_sum + value
    redis.call('ZADD', key, second, struct.pack(TOTALS, second, count, value))
    return second, count, value
  end
  -- Late: create the bucket from the totals before it, then shift every bucket from it on.
  local previous, prior_count, prior_sum = sorted_latest(key, second)
  local later = redis.call('ZRANGE', key, second, '+inf', 'BYSCORE')
  redis.call('ZREMRANGEBYSCORE', key, second, '+inf')
  local buckets = {}
  if previous ~= second then
    buckets[1] = {second, prior_count + count, prior_sum + value}
  end
  for _, member in ipairs(later) do
    local at, at_count, at_sum = unpack_record(TOTALS, member)
    buckets[#buckets + 1] = {at, at_count + count, at_sum + value}
  end
  sorted_put(key, buckets)
  return previous, buckets[1][2], buckets[1][3]
end

-- Moves a packed series that outgrew `packed_limit` into its sorted set: its records are the
-- members as they are.
local function to_sorted(key, series)
  local sorted_key = key .. SORTED_SUFFIX
  local buckets = {}
  for index = 0, size(series) do
    local second, count, sum = unpack_record(TOTALS, series, index * RECORD + 1)
    buckets[#buckets + 1] = {second, count, sum}
  end
  redis.call('DEL', sorted_key)  -- a set outliving its marker's TTL holds nothing of this series
  sorted_put(sorted_key, buckets)
  loaded[key] = SORTED
end

-- TimeBuckets.add (and the recording half of TimeBuckets.observe): adds `count` events worth
-- `value` at `second` to the series of `key` (loaded), to be saved with `ttl`. Returns the
-- latest second that held an event at or before `second` beforehand (nil if none), the running
-- count and sum at `second` afterwards, and, for an event in time order, the horizon's cut
-- second and the running count and sum there (nil otherwise: only appends drop).
local function add(key, second, count, value, horizon, ttl)
  changed[key] = ttl
  local series = loaded[key]
  if series == SORTED then
    return sorted_add(key .. SORTED_SUFFIX, second, count, value, horizon)
  end
  local previous, total, sum, cut, cut_count, cut_sum
  series, previous, total, sum, cut, cut_count, cut_sum =
    packed_add(series, second, count, value, horizon)
  loaded[key] = series
  if size(series) > packed_limit then
    to_sorted(key, series)
  end
  return previous, total, sum, cut, cut_count, cut_sum
end

-- The running totals at the latest bucket at or before `upper`, in a packed `series` or the
-- sorted set `sorted_key`, and where the search for a window's start may look from there on:
-- a bucket index (packed) or true (sorted). Nothing when no bucket is at or before `upper`.
local function totals_at(series, sorted_key, upper)
  if sorted_key then
    local second, count, sum = sorted_latest(sorted_key, upper)
    if second then
      return count, sum, true
    end
    return
  end
  local index = size(series)
  if index > 0 and second_of(series, index) > upper then
    index = packed_latest(series, upper, 1, index)
  end
  if index > 0 then
    local count, sum = totals_of(series, index)
    return count, sum, index
  end
end

-- A window's start: the running totals at the latest bucket at or before `lower`, searched no
-- later than `scope` (as `totals_at` gives it; `oldest` is a packed series' first second), and
-- the scope for the next, longer window: nil once the start is the base, where every longer
-- window starts too.
local function start_at(series, sorted_key, lower, scope, oldest)
  if sorted_key then
    local second, count, sum = sorted_latest(sorted_key, lower)
    return count, sum, second and true
  end
  if oldest > lower then
    local count, sum = totals_of(series, 0)
    return count, sum, nil
  end
  scope = packed_latest(series, lower, 1, scope)
  local count, sum = totals_of(series, scope)
  return count, sum, scope
end

-- TimeBuckets.windows over the series of `key` (loaded): the count over (upper - span, upper]
-- for each span, written to out[at + 1], out[at + 2], ..., and, with `sums`, the sums right
-- after them. `last_count`, `last_sum`: the running totals at `upper` when the caller knows
-- them (an event just added there); `cut`, `cut_count`, `cut_sum`: add's horizon check, which a
-- window may reuse.
local function windows(key, upper, spans, out, at, sums, last_count, last_sum, cut, cut_count,
                       cut_sum)
  local series = loaded[key]
  local sorted_key = series == SORTED and key .. SORTED_SUFFIX
  local spans_count = #spans
  local scope
  if last_count then
    scope = sorted_key and true or size(series)
  else
    last_count, last_sum, scope = totals_at(series, sorted_key, upper)
    if not scope then
      -- No bucket at or before `upper`: every window is empty.
      for position = at + 1, at + (sums and 2 or 1) * spans_count do
        out[position] = 0
      end
      return
    end
  end
  local oldest = not sorted_key and second_of(series, 1)
  local start_count, start_sum = 0, 0
  for position, span in ipairs(spans) do
    -- Spans increase: each window starts no later than the one before it.
    local lower = upper - span
    if lower == cut then
      -- Nothing at or before the cut survived add's drop: the base is there.
      start_count, start_sum, scope = cut_count, cut_sum, nil
    elseif scope then
      start_count, start_sum, scope = start_at(series, sorted_key, lower, scope, oldest)
    end
    out[at + position] = last_count - start_count
    if sums then out[at + spans_count + position] = last_sum - start_sum end
  end
end
