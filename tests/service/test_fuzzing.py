"""Every endpoint of the OpenAPI schema, fuzzed by schemathesis: whatever comes, never a 5xx.

A real `fraudstream serve` answers over a socket. Each operation gets cases that fit its schema
(to reach deep into the handlers) and cases that break it (wrong types, missing or unknown
fields, out-of-range numbers, odd strings), well over a thousand in all. The two kinds are two
tests, each with its own server, so that they can run side by side.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from pipelines.bench.server_process import serve

EXAMPLES_PER_MODE = 75


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_any_endpoint_answer_5xx(mode: GenerationMode) -> None:
    cases: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []
    no_input: set[str] = set()
    with serve() as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        for operation in operations:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_MODE,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case: schemathesis.Case[Any]) -> None:
                response = case.call(base_url=server.url, timeout=10)
                label = case.operation.label
                cases[label] += 1
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    server_errors.append(
                        f"{label} -> {response.status_code}: {response.text[:200]}"
                    )

            try:
                call()
            except Unsatisfiable:
                # No way to break an operation that takes no input (GET /healthz).
                assert mode is GenerationMode.NEGATIVE
                no_input.add(operation.label)
    assert not server_errors, "\n".join(server_errors[:10])
    assert set(cases) | no_input == {operation.label for operation in operations}  # every endpoint
    assert sum(cases.values()) >= 500
    if mode is GenerationMode.NEGATIVE:
        assert statuses[422] > 0  # refused, field by field
    else:
        assert sum(count for status, count in statuses.items() if status < 300) > 0
