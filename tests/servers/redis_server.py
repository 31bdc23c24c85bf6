"""A real ``redis-server`` process for the integration tests: no mocks.

The launcher is `pipelines.bench.local_servers.local_redis` (the one `bench stream --local` uses):
127.0.0.1, a free port kept across restarts, files in the test's own directory, stopped by its
pid. With ``appendonly`` every write is on disk before it is acknowledged, so `restart`, or
`kill` then `start`, finds every write a client was told had been made.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.bench.local_servers import local_redis
from tests.servers.process import ServerUnderTest


class RedisServer(ServerUnderTest):
    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        process, self.url = local_redis(directory, appendonly=appendonly)
        super().__init__(process)
