"""Watches that follow a run however long it lasts, and across a server restart."""

from __future__ import annotations

import asyncio
import io
import logging
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from evalstream import AsyncClient, Client, Verdict
from evalstream.cli import main

from ..conftest import free_port, start_server


def _log_falling(run, start: int, stop: int) -> None:  # noqa: ANN001 - Run
    steps = np.arange(start, stop)
    run.log_many(steps, 3.0 * np.exp(-steps / 300) + 0.2)
    run.flush(timeout=30)


def test_watch_outlives_the_stream_and_call_timeouts(live_server) -> None:
    """Timeouts of 2 s; the run finishes after 5 s; every watch sees it to the end."""
    with Client(live_server.target) as client:
        run = client.create_run("p", "long")
        _log_falling(run, 0, 200)
        seen: dict[str, list[Verdict]] = {"sync": [], "async": []}
        failures: list[BaseException] = []
        cli_out = io.StringIO()
        codes: list[int] = []

        def sync_watch() -> None:
            try:
                with Client(live_server.target, timeout=2, stream_timeout=2) as watcher:
                    seen["sync"].extend(watcher.watch(run.id))
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        async def async_watch() -> None:
            async with AsyncClient(live_server.target, timeout=2, stream_timeout=2) as watcher:
                async for v in watcher.watch(run.id):
                    seen["async"].append(v)

        def async_thread() -> None:
            try:
                asyncio.run(async_watch())
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        def cli_watch() -> None:
            argv = ["--target", live_server.target, "--timeout", "2", "runs", "watch", run.id]
            codes.append(main(argv, out=cli_out))

        threads = [threading.Thread(target=f) for f in (sync_watch, async_thread, cli_watch)]
        for t in threads:
            t.start()
        time.sleep(5)
        _log_falling(run, 200, 400)
        run.finish()
        for t in threads:
            t.join(20)
        assert not any(t.is_alive() for t in threads), "a watch did not end with its run"
    assert not failures, failures
    assert codes == [0]
    assert seen["sync"] and seen["async"]
    assert cli_out.getvalue().strip()


def test_watch_reconnects_across_a_server_restart_and_ends_with_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, port = tmp_path / "data", free_port()
    server = start_server(data, port=port)
    seen: list[Verdict] = []
    failures: list[BaseException] = []
    first = threading.Event()
    try:
        with Client(server.target) as client:
            run = client.create_run("p", "restarted")
            _log_falling(run, 0, 300)
            run_id = run.id

        def watch() -> None:
            try:
                with Client(server.target) as watcher:
                    for v in watcher.watch(run_id):
                        seen.append(v)
                        first.set()
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        thread = threading.Thread(target=watch)
        with caplog.at_level(logging.WARNING, logger="evalstream.client"):
            thread.start()
            assert first.wait(20)
            stopping = time.monotonic()
            server.signal(signal.SIGTERM)
            assert server.wait(30) == 0
            # The watch ends at once: the server does not wait out its grace period (20 s).
            assert time.monotonic() - stopping < 10
            server = start_server(data, port=port)
            with Client(server.target) as client:
                run = client.get_run(run_id)
                _log_falling(run, 300, 600)
                run.finish()
            thread.join(30)
        assert not thread.is_alive(), "the watch did not end when the run finished"
    finally:
        if server.proc.poll() is None:
            server.signal(signal.SIGTERM)
            server.wait(30)
    assert not failures, failures
    assert any("reconnecting" in r.getMessage() for r in caplog.records)
    # The verdict shown before the restart is not shown again after it.
    keys = [(v.state, v.severity, v.early_stopping.best_step) for v in seen]
    assert all(a != b for a, b in zip(keys, keys[1:], strict=False)), keys
