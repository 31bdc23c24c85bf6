"""The README documents every setting and every command the code has."""

from __future__ import annotations

from pathlib import Path

from typer.main import get_command

from service.cli import app
from service.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_has_a_row_in_the_settings_table() -> None:
    missing = [
        f"FRAUDSTREAM_{name.upper()}"
        for name in Settings.model_fields
        if f"| `FRAUDSTREAM_{name.upper()}` |" not in README
    ]
    assert not missing, f"settings missing from the README's table: {missing}"


def test_every_command_appears_in_the_commands_table() -> None:
    group = get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    missing = [name for name in commands if f"`fraudstream {name}" not in README]
    assert not missing, f"commands missing from the README: {missing}"
