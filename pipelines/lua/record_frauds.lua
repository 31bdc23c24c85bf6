-- RedisFeatureState.record_frauds: adds each report's change (+1, or -1 to retract) to its
-- terminal's fraud buckets at the report's second, in order, as a late insert when need be.
--
-- ARGV: prefix, terminal horizon, terminal key TTL, then per report: terminal id, second,
-- change.

local prefix = ARGV[1]
local horizon, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local written = {}
for base = 4, #ARGV, 3 do
  local key = prefix .. 'terminal:' .. ARGV[base] .. ':fraud-totals'
  add(key, tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), 0, horizon)
  written[key] = true
end
for key in pairs(written) do
  redis.call('EXPIRE', key, ttl)
end
return #ARGV - 3
