"""`evalstream-server` as a process: it serves, drains on SIGTERM/SIGINT and exits 0."""

from __future__ import annotations

import signal
import threading
import urllib.request

import pytest
from evalstream import Client, errors

from .test_score_boxes import IMAGE_A, IMAGE_B, IMAGE_C

pytestmark = pytest.mark.slow


def test_process_serves_health_and_metrics(server_process) -> None:
    with Client(server_process.target) as client:
        assert client.health() == "SERVING"
        assert client.score_boxes([IMAGE_A]).overall[0].tp == 2
    with urllib.request.urlopen(server_process.metrics_url, timeout=5) as reply:
        text = reply.read().decode()
    assert "evalstream_grpc_server_handled_total" in text
    assert "process_resident_memory_bytes" in text
    assert "\nevalstream_store_writer_restarts_total 0.0\n" in text
    (serving,) = [line for line in server_process.lines if line.get("msg") == "serving"]
    assert serving["event_loop"] == "uvloop"  # --event-loop auto, uvloop installed with [server]
    server_process.signal(signal.SIGTERM)
    assert server_process.wait(30) == 0


def test_a_killed_writer_process_is_counted_and_logged_as_json(server_process) -> None:
    import os
    import time

    from ..conftest import child_pids

    def metric(prefix: str) -> str:
        with urllib.request.urlopen(server_process.metrics_url, timeout=5) as reply:
            text = reply.read().decode()
        (line,) = [x for x in text.splitlines() if x.startswith(prefix)]
        return line

    with Client(server_process.target) as client:
        run = client.create_run("p", "a")
        (writer,) = child_pids(server_process.proc.pid)
        os.kill(writer, signal.SIGSTOP)  # a write in flight when it dies
        run.log(0, loss=1.0)
        deadline = time.monotonic() + 30
        while metric("evalstream_store_queue_depth ") == "evalstream_store_queue_depth 0.0":
            assert time.monotonic() < deadline, "the write never reached the store"
            time.sleep(0.02)
        os.kill(writer, signal.SIGKILL)
        run.flush(30)  # the client resends; the next write starts another writer
        assert [list(s.values) for s in run.curves()] == [[1.0]]
        run.finish()
    restarts = metric("evalstream_store_writer_restarts_")
    assert restarts == "evalstream_store_writer_restarts_total 1.0"
    deadline = time.monotonic() + 10  # the server's stderr is read on a thread
    while not (
        exited_lines := [
            x for x in server_process.lines if x.get("msg") == "store writer process exited"
        ]
    ):
        assert time.monotonic() < deadline, "no 'store writer process exited' JSON line"
        time.sleep(0.02)
    (exited,) = exited_lines
    assert exited["logger"] == "evalstream.store" and exited["level"] == "error"
    assert exited["status"] == -signal.SIGKILL and exited["writes_failed"] >= 1
    server_process.signal(signal.SIGTERM)
    assert server_process.wait(30) == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_an_open_stream_and_exits_zero(server_process, signum: int) -> None:
    """A stream open when the signal arrives still gets every answer; then exit 0."""
    sent_first = threading.Event()
    may_continue = threading.Event()

    def batches():
        yield [IMAGE_A]
        sent_first.set()
        may_continue.wait(10)
        yield [IMAGE_B]
        yield [IMAGE_C]

    results = []
    with Client(server_process.target) as client:
        stream = client.stream_boxes(batches(), iou_thresholds=[0.5])
        results.append(next(stream))
        assert sent_first.wait(10)
        server_process.signal(signum)
        # wait until the server has started draining before sending more
        for _ in range(100):
            if any(line.get("msg") == "draining" for line in server_process.lines):
                break
            threading.Event().wait(0.05)
        else:
            pytest.fail("server did not start draining")
        may_continue.set()
        results.extend(stream)
        # new calls are refused while draining
        with pytest.raises(errors.EvalstreamError):
            client.score_boxes([IMAGE_A], timeout=5)
    assert [r.batch_index for r in results] == [0, 1, 2]
    assert (results[-1].running[0].tp, results[-1].running[0].fp) == (2, 2)
    assert server_process.wait(30) == 0
    assert any(line.get("msg") == "stopped" for line in server_process.lines)
