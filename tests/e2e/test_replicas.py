"""Two servers on one PostgreSQL database serve any run: what is acked through one is
read, diagnosed and pushed by the other, and one of them exports the per-run gauges.

(The replica killed mid-stream, and the client finishing through the other, is in
tests/e2e/test_failover.py.)
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from evalstream import Client

from ..conftest import LiveServer, _live

#: conftest's in-process server as a context manager.
replica = contextlib.contextmanager(_live)


@pytest.fixture
def two(tmp_path: Path, pg_url: str) -> Iterator[tuple[LiveServer, LiveServer]]:
    config = {"bertscore_model": "none", "text_workers": 0, "store": pg_url, "quality_gauges": True}
    with replica(tmp_path / "a", config) as a, replica(tmp_path / "b", config) as b:
        yield a, b


def curves(n: int = 4000) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training keeps falling; validation bottoms out near step 1500, then rises."""
    steps = np.arange(n)
    train = 2.5 * np.exp(-steps / 600) + 0.2
    val_steps = np.arange(0, n, 100)
    val = 2.5 * np.exp(-val_steps / 600) + 0.35 + np.maximum(0, val_steps - 1500) * 3e-4
    return steps, train, val_steps, val


def test_written_through_one_read_diagnosed_and_pushed_by_the_other(
    two: tuple[LiveServer, LiveServer],
) -> None:
    a, b = two
    steps, train, val_steps, val = curves()
    cut = 2000
    with Client(a.target) as through_a, Client(b.target) as through_b:
        run = through_a.create_run("p", "replicated")
        run.log_many(steps[:cut], train[:cut])
        run.log_many(val_steps[val_steps < cut], val[val_steps < cut], split="validation")
        run.flush(timeout=30)
        # Read through B at once, at full resolution: every acked point, exact.
        read = {s.split: s for s in through_b.curves(run.id, max_points=0)}
        assert list(read["train"].steps) == steps[:cut].tolist()
        assert list(read["train"].values) == train[:cut].tolist()
        assert through_b.verdict(run.id).state != "overfitting"
        seen: list[tuple[str, float]] = []
        first = threading.Event()

        def watch() -> None:
            for v in through_b.watch(run.id, timeout=60):
                seen.append((v.state, time.monotonic()))
                first.set()

        thread = threading.Thread(target=watch)
        thread.start()
        assert first.wait(20)
        run.log_many(steps[cut:], train[cut:])
        run.log_many(val_steps[val_steps >= cut], val[val_steps >= cut], split="validation")
        run.flush(timeout=30)
        acked = time.monotonic()
        deadline = acked + 10
        while not any(s == "overfitting" for s, _ in seen) and time.monotonic() < deadline:
            time.sleep(0.01)
        pushed = next(t for s, t in seen if s == "overfitting")  # pushed by B
        assert pushed - acked < 1.0  # the 100 ms is measured by `make bench`
        assert through_b.verdict(run.id).state == "overfitting"
        run.log_checkpoint(3000, {"accuracy": 0.8}, split="validation")
        assert [c.step for c in through_b.get_run(run.id).verdict().checkpoints] == [3000]
        run.finish()  # through A: the watch on B ends
        thread.join(20)
        assert not thread.is_alive()


def test_one_replica_exports_the_per_run_gauges(two: tuple[LiveServer, LiveServer]) -> None:
    a, b = two
    with Client(a.target) as client:
        run = client.create_run("p", "gauged")
        run.log_many(np.arange(100), np.linspace(2.0, 1.0, 100))
        run.flush(timeout=30)

    def exported(server: LiveServer) -> tuple[float | None, float | None]:
        registry = server.deps.metrics.registry
        return (
            registry.get_sample_value("evalstream_quality_exporter"),
            registry.get_sample_value(
                "evalstream_run_train_loss",
                {"project": "p", "run_id": run.id, "run_name": "gauged"},
            ),
        )

    deadline = time.monotonic() + 10
    while sorted(exported(s)[0] or 0.0 for s in two) != [0.0, 1.0]:
        assert time.monotonic() < deadline, [exported(s) for s in two]
        time.sleep(0.05)
    by_role = sorted((exported(s) for s in two), key=lambda e: e[0] or 0.0)
    assert by_role == [(0.0, None), (1.0, 1.0)]  # the run once, from the exporter
