"""The Dockerfile and the compose file, checked without a Docker engine (none runs here).

What can be checked is checked: both files parse, the image is multi-stage, runs as a non-root
user and has a health check, and every command they invoke is a command of the CLI, with
options it accepts.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.core import TyperGroup

from service.cli import app

ROOT = Path(__file__).resolve().parent.parent

INSTRUCTIONS = frozenset(
    {
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    }
)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"no {keyword} in the stage FROM {self.base}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Instruction]:
    """Logical instructions: continuation lines joined, comments and blank lines dropped."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # parser directives are comments too; so are comments inside continuations
        if not parts:
            start = number
        continued = stripped.endswith("\\")
        parts.append(stripped[:-1].strip() if continued else stripped)
        if continued:
            continue
        keyword, _, arguments = " ".join(parts).partition(" ")
        parts = []
        if keyword.upper() not in INSTRUCTIONS:
            raise ValueError(f"line {start}: unknown instruction {keyword!r}")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
    if parts:
        raise ValueError(f"line {start}: the file ends inside a continuation")
    return instructions


def stages(instructions: Sequence[Instruction]) -> list[Stage]:
    """The build stages, each base image with the ``ARG`` defaults declared before it."""
    defaults: dict[str, str] = {}
    found: list[Stage] = []
    for item in instructions:
        if item.keyword == "FROM":
            words = item.arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            base = re.sub(r"\$\{(\w+)\}", lambda match: defaults[match[1]], words[0])
            found.append(Stage(base, name))
        elif not found and item.keyword == "ARG":
            key, _, value = item.arguments.partition("=")
            defaults[key] = value
        elif found:
            found[-1].instructions.append(item)
        else:
            raise ValueError(f"line {item.line}: {item.keyword} before the first FROM")
    return found


def exec_form(arguments: str) -> list[str]:
    """A JSON-array argument (``["fraudstream", "serve"]``): the form that needs no shell."""
    words = json.loads(arguments)
    assert isinstance(words, list), f"not in exec form: {arguments}"
    assert all(isinstance(word, str) for word in words)
    return words


def assert_cli_accepts(words: Sequence[str]) -> None:
    """``fraudstream WORDS`` names a command of the CLI, with arguments it parses."""
    command = typer.main.get_command(app)
    path = ["fraudstream"]
    rest = list(words)
    while isinstance(command, TyperGroup):
        assert rest, f"{' '.join(path)} needs a subcommand"
        name = rest.pop(0)
        assert name in command.commands, (
            f"{name!r} is not a command of {' '.join(path)}: it has {sorted(command.commands)}"
        )
        command = command.commands[name]
        path.append(name)
    # Parses the options and arguments (unknown ones raise a usage error) without running it.
    command.make_context(" ".join(path), rest)


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return stages(parse_dockerfile((ROOT / "Dockerfile").read_text()))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


def fraudstream_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("fraudstream")
    }


def test_the_parser_joins_continuations_and_refuses_what_is_not_an_instruction() -> None:
    parsed = parse_dockerfile('# syntax=x\nRUN a \\\n  # inside\n  && b\nCMD ["x"]\n')
    assert [(item.keyword, item.arguments) for item in parsed] == [
        ("RUN", "a && b"),
        ("CMD", '["x"]'),
    ]
    with pytest.raises(ValueError, match="unknown instruction"):
        parse_dockerfile("FORM python:3.11-slim\n")
    with pytest.raises(ValueError, match="continuation"):
        parse_dockerfile("RUN a \\\n")


def test_the_image_is_built_in_one_stage_and_run_from_a_slim_one(dockerfile: list[Stage]) -> None:
    *builders, runtime = dockerfile
    assert builders, "expected a builder stage before the runtime stage"
    named = {stage.name for stage in builders if stage.name}
    assert named, "the builder stage needs a name (FROM ... AS builder)"
    copied_from = {
        argument.split("=", 1)[1]
        for item in runtime.all("COPY")
        for argument in item.arguments.split()
        if argument.startswith("--from=")
    }
    assert copied_from & named, "the runtime stage copies nothing from the builder"
    assert runtime.base == "python:3.11-slim"


def test_the_image_runs_as_a_non_root_user(dockerfile: list[Stage]) -> None:
    user = dockerfile[-1].last("USER").arguments.split(":")[0]
    assert user not in {"root", "0", ""}


def test_the_health_check_asks_healthz_with_python(dockerfile: list[Stage]) -> None:
    options, _, command = dockerfile[-1].last("HEALTHCHECK").arguments.partition("CMD ")
    assert "--interval=" in options
    words = exec_form(command)
    assert words[0] == "python"
    assert "/healthz" in words[-1]
    assert "urllib" in words[-1]


def test_the_entry_point_is_the_cli_and_the_default_command_one_of_its_commands(
    dockerfile: list[Stage],
) -> None:
    runtime = dockerfile[-1]
    assert exec_form(runtime.last("ENTRYPOINT").arguments) == ["fraudstream"]
    assert_cli_accepts(exec_form(runtime.last("CMD").arguments))


def test_the_image_keeps_its_data_in_a_volume_and_serves_on_8000(dockerfile: list[Stage]) -> None:
    runtime = dockerfile[-1]
    environment = dict(
        word.split("=", 1) for item in runtime.all("ENV") for word in shlex.split(item.arguments)
    )
    data_dir = environment["FRAUDSTREAM_DATA_DIR"]
    assert data_dir == "/var/lib/fraudstream"
    assert data_dir in exec_form(runtime.last("VOLUME").arguments)
    assert runtime.last("EXPOSE").arguments.split() == ["8000"]


def test_the_build_context_holds_every_path_the_dockerfile_copies(
    dockerfile: list[Stage],
) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "the context is an allow-list: it starts by ignoring everything"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    for stage in dockerfile:
        for item in stage.all("COPY"):
            if "--from=" in item.arguments:
                continue  # from another stage, not from the context
            words = [word for word in item.arguments.split() if not word.startswith("--")]
            for source in words[:-1]:
                assert source in allowed, f"line {item.line}: {source} is not in the build context"
                assert (ROOT / source).exists()


def test_compose_runs_kafka_in_kraft_mode_redis_the_api_two_workers_and_the_learner(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["redis"]["image"].startswith("redis:")
    roles = fraudstream_services(compose)
    assert roles["api"]["command"][0] == "api"
    assert roles["worker"]["command"] == ["worker"]
    assert roles["worker"]["deploy"]["replicas"] == 2
    assert roles["learner"]["command"] == ["learner"]
    for role in ("api", "worker", "learner"):
        environment = roles[role]["environment"]
        assert {"FRAUDSTREAM_KAFKA_BOOTSTRAP", "FRAUDSTREAM_REDIS_URL"} <= set(environment)
        assert "FRAUDSTREAM_SECRET_KEY" in environment


def test_every_command_compose_runs_is_a_command_of_the_cli(compose: dict[str, Any]) -> None:
    services = fraudstream_services(compose)
    assert services
    for name, service in services.items():
        command = service.get("command")
        assert isinstance(command, list), f"{name}: write the command as a list (exec form)"
        assert_cli_accepts(command)
        environment = service.get("environment", {})
        assert all(key.startswith("FRAUDSTREAM_") for key in environment), name


def test_the_command_check_fails_on_what_the_cli_does_not_have() -> None:
    assert_cli_accepts(["bench", "core", "--transactions", "10"])
    with pytest.raises(AssertionError, match="'replicate' is not a command"):
        assert_cli_accepts(["replicate"])
    with pytest.raises(AssertionError, match="needs a subcommand"):
        assert_cli_accepts(["bench"])
    with pytest.raises(typer.TyperException, match="No such option"):
        assert_cli_accepts(["serve", "--no-such-flag"])
