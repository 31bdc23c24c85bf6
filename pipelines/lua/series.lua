-- Per-second buckets with running totals, as models/windows.py's TimeBuckets keeps them, packed
-- into one string per series: records of three little-endian doubles (second, running count,
-- running sum), oldest first. The first record is the base, the totals of the buckets already
-- dropped behind the horizon (its second is unused), so "the latest record at or before x"
-- answers both a bucket and the base.
--
-- Why one string rather than a sorted set: a script reads every series of a batch with one
-- MGET and writes each back once with SET, and a lookup is a binary search that unpacks one
-- double per step. A sorted set cost a command, a reply table and a member to parse for every
-- lookup, and most of a transaction's time in Redis went there.
--
-- Totals are doubles: exact while a series' running totals stay below 2^53.

local RECORD = 24
local TOTALS = '<ddd'
local SECOND = '<d'
local EMPTY = struct.pack(TOTALS, 0, 0, 0)

local loaded = {}   -- key -> the series as read, or as changed by this script call
local changed = {}  -- key -> TTL, for each series to write back at the end

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

-- Writes back every series this call changed, each with its TTL.
local function save()
  for key, ttl in pairs(changed) do
    redis.call('SET', key, loaded[key], 'EX', ttl)
  end
end

local unpack_record = struct.unpack
local floor = math.floor

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
local function latest(series, upper, low, high)
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

-- TimeBuckets.add (and the recording half of TimeBuckets.observe): adds `count` events worth
-- `value` at `second` to the series of `key`, to be saved with `ttl`. Returns the latest second
-- that held an event at or before `second` beforehand (nil if none), the running count and sum
-- at `second` afterwards, and, for an event in time order, the horizon's cut second and the
-- running count and sum there (nil otherwise: only appends drop).
local function add(key, second, count, value, horizon, ttl)
  local series = loaded[key]
  local buckets = size(series)
  local newest = buckets > 0 and second_of(series, buckets) or nil
  changed[key] = ttl
  if not newest or second > newest then
    -- By far the common case: append, then drop what fell out of the horizon (never the new
    -- bucket: the cut is before it).
    local total, sum = totals_of(series, buckets)
    total, sum = total + count, sum + value
    local appended = struct.pack(TOTALS, second, total, sum)
    local cut = second - horizon
    local dropped = 0
    if buckets > 0 and second_of(series, 1) <= cut then
      dropped = latest(series, cut, 1, buckets)
    end
    local cut_count, cut_sum = totals_of(series, dropped)
    if dropped > 0 then
      loaded[key] = struct.pack(TOTALS, 0, cut_count, cut_sum)
        .. string.sub(series, (dropped + 1) * RECORD + 1) .. appended
    else
      loaded[key] = series .. appended
    end
    return newest, total, sum, cut, cut_count, cut_sum
  end
  if second == newest then
    -- A tie with the newest bucket: nothing after it to shift.
    local total, sum = totals_of(series, buckets)
    total, sum = total + count, sum + value
    loaded[key] = string.sub(series, 1, buckets * RECORD) .. struct.pack(TOTALS, second, total, sum)
    return second, total, sum
  end
  -- Late: create the bucket from the totals before it (or reuse its own), then shift every
  -- bucket from it on.
  local before = latest(series, second, 1, buckets)
  local previous = before > 0 and second_of(series, before) or nil
  local parts, shift_from, at
  if previous == second then
    parts, shift_from, at = {string.sub(series, 1, before * RECORD)}, before, before
  else
    local prior_count, prior_sum = totals_of(series, before)
    parts = {
      string.sub(series, 1, (before + 1) * RECORD),
      struct.pack(TOTALS, second, prior_count + count, prior_sum + value),
    }
    shift_from, at = before + 1, before + 1
  end
  for index = shift_from, buckets do
    local at_second, at_count, at_sum = unpack_record(TOTALS, series, index * RECORD + 1)
    parts[#parts + 1] = struct.pack(TOTALS, at_second, at_count + count, at_sum + value)
  end
  series = table.concat(parts)
  loaded[key] = series
  return previous, totals_of(series, at)
end

-- TimeBuckets.windows over the series of `key`: the count over (upper - span, upper] for each
-- span, written to out[at + 1], out[at + 2], ..., and, with `sums`, the sums right after them.
-- `last_count`, `last_sum`: the running totals at `upper` when the caller knows them; `cut`,
-- `cut_count`, `cut_sum`: add's horizon check, which a window may reuse.
local function windows(key, upper, spans, out, at, sums, last_count, last_sum, cut, cut_count,
                       cut_sum)
  local series = loaded[key]
  local buckets = size(series)
  local spans_count = #spans
  if not last_count then
    local index = buckets
    if buckets > 0 and second_of(series, buckets) > upper then
      index = latest(series, upper, 1, buckets)
    end
    if index == 0 then
      -- No bucket at or before `upper`: every window is empty.
      for position = at + 1, at + (sums and 2 or 1) * spans_count do
        out[position] = 0
      end
      return
    end
    last_count, last_sum = totals_of(series, index)
    buckets = index
  end
  local oldest = second_of(series, 1)
  for position, span in ipairs(spans) do
    local lower = upper - span
    local start_count, start_sum
    if lower == cut then
      -- Nothing at or before the cut survived add's drop: the base is there.
      start_count, start_sum = cut_count, cut_sum
    elseif oldest > lower then
      -- The window starts before every bucket: at the base.
      start_count, start_sum = totals_of(series, 0)
    else
      -- Longer spans start earlier: each search ends where the one before began.
      buckets = latest(series, lower, 1, buckets)
      start_count, start_sum = totals_of(series, buckets)
    end
    out[at + position] = last_count - start_count
    if sums then out[at + spans_count + position] = last_sum - start_sum end
  end
end
