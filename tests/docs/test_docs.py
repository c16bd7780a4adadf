"""The documentation keeps up with the code.

Every server flag and variable is in the configuration reference, every metric
the server exports is in the metrics reference, every CLI command is in the CLI
page, the README stays a front page, and nothing points outside the repository.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest
from evalstream.cli import build_parser
from evalstream_server import config

from ..conftest import scrape_metrics

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "reference" / "configuration.md"
PROMETHEUS = DOCS / "reference" / "prometheus.md"
CLI = DOCS / "reference" / "cli.md"
README = ROOT / "README.md"
README_MAX_CHARS = 15_000
#: Strings no file of the repository may contain: they name files outside it.
OUTSIDE = ("../shared", "DESIGN.md", "STYLE.md")

def _flags() -> list[str]:
    return [flag for flag, *_ in config._FLAGS]


def _variables() -> set[str]:
    source = Path(config.__file__).read_text()
    return {config.env_name(flag) for flag in _flags()} | set(
        re.findall(r"EVALSTREAM_[A-Z0-9_]*[A-Z0-9]", source)
    )


def missing(names: set[str] | list[str], page: str) -> list[str]:
    """Names that do not appear in backticks on the page (`--port` or `--port N`)."""
    return sorted(n for n in names if not re.search(rf"`{re.escape(n)}[` ]", page))


def test_every_flag_and_variable_is_in_the_configuration_reference() -> None:
    page = CONFIGURATION.read_text()
    assert _flags(), "no flags read from config._FLAGS"
    assert not missing(_flags(), page), f"flags not documented: {missing(_flags(), page)}"
    variables = _variables()
    assert not missing(variables, page), f"variables not documented: {missing(variables, page)}"


def test_documented_flags_exist() -> None:
    page = CONFIGURATION.read_text()
    documented = set(re.findall(r"^\| `(--[a-z-]+)`", page, re.M))
    stale = documented - set(_flags())
    assert not stale, f"documented flags the server does not have: {sorted(stale)}"


def exported_families(body: str) -> set[str]:
    """Metric families in a /metrics body, from its TYPE lines (``_created`` left out).

    Example:
        >>> sorted(exported_families("# TYPE a_total counter\\n# TYPE a_created gauge\\na 1"))
        ['a_total']
    """
    names = set(re.findall(r"^# TYPE (\S+) ", body, re.M))
    return {n for n in names if not n.endswith("_created")}


@pytest.mark.parametrize("live_server", [{"quality_gauges": True}], indirect=True)
def test_every_exported_metric_is_in_the_metrics_reference(live_server) -> None:
    exported = exported_families(scrape_metrics(live_server))
    # The families of every module that exports: gRPC, batcher, store, quality gauges.
    for expected in (
        "evalstream_grpc_server_started_total",
        "evalstream_bertscore_batcher_rejected_total",
        "evalstream_store_queue_depth",
        "evalstream_run_verdict_state",
    ):
        assert expected in exported, f"{expected} not scraped: the scrape is incomplete"
    page = PROMETHEUS.read_text()
    assert not missing(exported, page), f"metrics not documented: {missing(exported, page)}"


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append(f"{prefix} {name}")
                out.extend(_commands(sub, f"{prefix} {name}"))
    return out


def test_every_cli_command_is_in_the_cli_reference() -> None:
    commands = _commands(build_parser(), "evalstream")
    assert "evalstream runs verdict" in commands
    page = CLI.read_text()
    assert not missing(commands, page), f"commands not documented: {missing(commands, page)}"


def test_readme_is_a_front_page() -> None:
    size = len(README.read_text())
    assert size <= README_MAX_CHARS, f"README.md has {size} characters, at most {README_MAX_CHARS}"


def _repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    return [ROOT / p for p in listed.split("\0") if p and (ROOT / p).is_file()]


def test_nothing_refers_to_files_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    found = []
    for path in _repository_files():
        if path.resolve() == this:  # names the strings it looks for
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        name = path.relative_to(ROOT).as_posix()
        found += [f"{name}: {s}" for s in OUTSIDE if s in text]
    assert not found, f"references to files outside the repository: {found}"
