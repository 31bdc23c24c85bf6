-- RedisPendingStore.flush: stores a batch's scored vectors, each under its own key with the
-- pending TTL. One script call rather than a pipeline of SETs: the client packs one command
-- and parses one reply instead of one per vector.
--
-- ARGV: TTL in seconds, then per vector: key, encoded entry.

local ttl = ARGV[1]
for index = 2, #ARGV, 2 do
  redis.call('SET', ARGV[index], ARGV[index + 1], 'EX', ttl)
end
return (#ARGV - 1) / 2
