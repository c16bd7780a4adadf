"""Fault, fuzz and load tests: gated by EVALSTREAM_STRESS=short|long.

`make test` leaves them skipped (they take minutes); `make stress` runs the short
form (what CI runs), `make stress-long` the long one. Figures each test measured
(codes seen, latencies, RSS) are collected in `FIGURES` and printed at the end of
the run, so a CI log carries them.

The short form is deterministic, so that CI sees the same inputs on every run and
a landing is never blocked by a bug that a new random draw happened to find:
Hypothesis is derandomized (its seed comes from each test's source) and every
other random choice (kill moments, payloads) comes from `SHORT_SEED`. The long
form searches: its seed is drawn at random and printed in the report header and
the figures; EVALSTREAM_STRESS_SEED=<seed> replays a run (Hypothesis included).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest
from evalstream_server.app import Deps, build_server
from evalstream_server.config import Config
from hypothesis import HealthCheck, settings
from hypothesis import seed as hypothesis_seed

from ..conftest import wait_serving

MODES = ("short", "long")
# The short form's seed: fixed, so that CI runs the same inputs every time.
SHORT_SEED = 20261126


@dataclass(frozen=True)
class StressSettings:
    """How hard each test pushes; `short` for CI, `long` for release checks."""

    mode: str
    fuzz_examples: int
    kill_cycles: int
    kill_streams: int
    soak_seconds: float
    concurrent_streams: int
    seed: int = SHORT_SEED  # every random choice of the run derives from it

    @property
    def derandomized(self) -> bool:
        """True in the short form: Hypothesis draws the same examples on every run."""
        return self.mode == "short"

    def hypothesis(self, max_examples: int) -> Callable[[Callable], Callable]:
        """`@settings` (and `@seed`) for a `@given` test of this run.

        Short: derandomized, no example database, so every run tries the same
        examples. Long: a random search that starts from `seed`, so a failure
        found once is found again with EVALSTREAM_STRESS_SEED=<seed>.
        """
        chosen = settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            derandomize=self.derandomized,
            suppress_health_check=list(HealthCheck),
        )

        def apply(test: Callable) -> Callable:
            test = chosen(test)
            return test if self.derandomized else hypothesis_seed(self.seed)(test)

        return apply


SHORT = StressSettings("short", 1000, 5, 16, 30.0, 64)
LONG = StressSettings("long", 10_000, 20, 16, 300.0, 64)
_SETTINGS = pytest.StashKey["StressSettings | None"]()

# test id -> list of lines to print in the terminal summary
FIGURES: dict[str, list[str]] = {}


def pytest_configure(config: pytest.Config) -> None:
    # The markers list lives in pyproject.toml; registering here keeps
    # --strict-markers happy without touching it.
    config.addinivalue_line(
        "markers", "stress: fault, fuzz and load tests (EVALSTREAM_STRESS=short|long)"
    )
    # Chosen once per session (the long form's seed is drawn here) and shown in
    # the report header, so that even a run killed before its summary names its seed.
    config.stash[_SETTINGS] = stress = _from_environment()
    if stress is not None and stress.derandomized:
        _without_local_constants()


def _without_local_constants() -> None:
    """Stops Hypothesis drawing literals from the project's own modules (short form).

    Hypothesis (6.131 on) sometimes draws a constant found in the source of any
    loaded non-test module. That set depends on which modules the tests before
    have loaded (the Scoring tests load more) and changes with every server
    change, so the derandomized examples would change with it. Private API, hence
    the guard: when it has moved, the run says so in its figures.
    """
    try:
        from hypothesis.internal.conjecture import providers

        none = providers.Constants()
        providers._get_local_constants = lambda: none
        providers.CONSTANTS_CACHE.cache.clear()
    except (ImportError, AttributeError) as exc:
        record("run", f"Hypothesis local constants left on ({exc!r}): examples may vary")


def _from_environment() -> StressSettings | None:
    mode = os.environ.get("EVALSTREAM_STRESS", "")
    if mode not in MODES:
        return None
    chosen = SHORT if mode == "short" else LONG
    examples = os.environ.get("EVALSTREAM_STRESS_EXAMPLES")  # a quicker local run
    if examples:
        chosen = replace(chosen, fuzz_examples=int(examples))
    soak = os.environ.get("EVALSTREAM_STRESS_SOAK_SECONDS")
    if soak:
        chosen = replace(chosen, soak_seconds=float(soak))
    seed = os.environ.get("EVALSTREAM_STRESS_SEED")  # replays a run
    if seed:
        chosen = replace(chosen, seed=int(seed))
    elif mode == "long":
        chosen = replace(chosen, seed=random.SystemRandom().randrange(2**32))
    return chosen


def _describe(stress: StressSettings) -> str:
    search = (
        "Hypothesis derandomized"
        if stress.derandomized
        else f"Hypothesis random search from seed {stress.seed}"
    )
    return (
        f"mode {stress.mode}, seed {stress.seed} ({search}); replay with "
        f"EVALSTREAM_STRESS={stress.mode} EVALSTREAM_STRESS_SEED={stress.seed}"
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    stress = config.stash.get(_SETTINGS, None)
    return None if stress is None else f"evalstream stress: {_describe(stress)}"


@pytest.fixture(scope="session")
def stress(pytestconfig: pytest.Config) -> StressSettings:
    """The settings of this run; skips the test when EVALSTREAM_STRESS is unset."""
    chosen = pytestconfig.stash.get(_SETTINGS, None)
    if chosen is None:
        pytest.skip(
            "stress test: set EVALSTREAM_STRESS=short (CI, `make stress`) or "
            "long (`make stress-long`) to run it"
        )
    record("run", _describe(chosen))
    return chosen


@dataclass
class StressServer:
    target: str
    deps: Deps
    server: grpc.Server
    config: Config


# The synchronous grpcio 1.85 server could leave server.stop() waiting forever once
# a client-streaming RPC had failed to deserialize a message (see test_faults.py);
# the fixture still bounds the wait, so that a hang is reported, not waited out.
STOP_WAIT_S = 10.0


@contextmanager
def open_server(data_dir: Path, overrides: dict[str, object], name: str) -> Iterator[StressServer]:
    """An in-process server on a free port, yielded once its health answers SERVING.

    Without that wait the first examples of a fuzz run could meet NOT_SERVING
    (the text metrics still loading) and fail the "health answers SERVING" check.
    """
    config = Config(port=0, metrics_port=-1, http_port=-1, data_dir=data_dir, **overrides)  # type: ignore[arg-type]
    deps = Deps.open(config)
    if config.bertscore_model != "none" and not deps.bertscore.wait(120):
        deps.close()
        pytest.fail(f"BERTScore model did not load: {deps.bertscore.error}")
    server, port = build_server(config, deps)
    try:
        wait_serving(f"127.0.0.1:{port}", time.monotonic() + 120)
        yield StressServer(f"127.0.0.1:{port}", deps, server, config)
    finally:
        if not server.stop(0).wait(STOP_WAIT_S):
            record(name, f"server.stop(0) did not finish within {STOP_WAIT_S:.0f} s")
        deps.close()


@pytest.fixture
def stress_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StressServer]:
    """An in-process server, BERTScore off; Config overrides by indirect parametrization."""
    overrides = {"bertscore_model": "none", **getattr(request, "param", {})}
    with open_server(tmp_path, overrides, request.node.name) as server:
        yield server


def record(test: str, line: str) -> None:
    """Adds one measured figure to the end-of-run summary."""
    FIGURES.setdefault(test, []).append(line)


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not FIGURES:
        return
    terminalreporter.section("stress figures")
    for test, lines in FIGURES.items():
        terminalreporter.write_line(test)
        for line in lines:
            terminalreporter.write_line(f"    {line}")
