-- RedisFeatureState.record_frauds: adds each report's change (+1, or -1 to retract) to its
-- terminal's fraud series at the report's second, in order, as a late insert when need be.
--
-- ARGV: prefix, terminal horizon, terminal key TTL, buckets a series holds packed, then per
-- report: terminal id, second, change.

local prefix = ARGV[1]
local horizon, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
packed_limit = tonumber(ARGV[4])
local keys = {}
for base = 5, #ARGV, 3 do
  keys[#keys + 1] = prefix .. 'terminal:' .. ARGV[base] .. ':fraud-series'
end
load(keys)
for index, key in ipairs(keys) do
  local base = 5 + (index - 1) * 3
  add(key, tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), 0, horizon, ttl)
end
save()
return #keys
