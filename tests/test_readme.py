"""The README stays a page, its links and the docs' links resolve, and the reference documents
every setting and every command the code has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command

from service.cli import app
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MARKDOWN = [README, *sorted(DOCS.rglob("*.md"))]
README_MOST_LINES = 250

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)


def _anchor(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading: lower case, punctuation dropped, spaces
    as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return {_anchor(heading) for heading in HEADING.findall(text)}


def _relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    return [
        link
        for link in LINK.findall(text)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", link)  # http:, https:, mailto: ...
    ]


def test_the_readme_fits_on_a_page() -> None:
    lines = README.read_text().count("\n")
    assert lines <= README_MOST_LINES, f"README.md has {lines} lines"


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for link in _relative_links(page):
        target, _, anchor = link.partition("#")
        file = (page.parent / target).resolve() if target else page
        if (
            not file.exists()
            or ROOT not in file.parents
            or (anchor and file.suffix == ".md" and anchor not in _anchors(file))
        ):
            broken.append(link)
    assert not broken, f"links in {page.relative_to(ROOT)} that lead nowhere in a clone: {broken}"


def test_the_link_check_catches_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n[ok](#title) [gone](missing.md) [bad](#nowhere)\n")
    assert _relative_links(page) == ["#title", "missing.md", "#nowhere"]
    assert "title" in _anchors(page)
    assert "nowhere" not in _anchors(page)


def test_every_setting_has_a_row_in_the_settings_reference() -> None:
    reference = (DOCS / "reference" / "settings.md").read_text()
    missing = [
        f"FRAUDSTREAM_{name.upper()}"
        for name in Settings.model_fields
        if f"| `FRAUDSTREAM_{name.upper()}` |" not in reference
    ]
    assert not missing, f"settings missing from docs/reference/settings.md: {missing}"


def test_every_command_appears_in_the_commands_reference() -> None:
    reference = (DOCS / "reference" / "cli.md").read_text()
    group = get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    missing = [name for name in commands if f"`fraudstream {name}" not in reference]
    bench = commands["bench"].commands
    missing += [f"bench {name}" for name in bench if f"`fraudstream bench {name}" not in reference]
    assert not missing, f"commands missing from docs/reference/cli.md: {missing}"
