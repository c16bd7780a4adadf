"""`evalstream runs watch` against a real server: a run that finishes while it is watched.

A thread logs points and then ends the run; the watch must show the losses and
verdicts as they come and return when the run ends, with an exit code that says
how it ended. Into a pipe it prints lines; on a terminal (a forced rich console,
recorded) it draws the live view.
"""

from __future__ import annotations

import argparse
import io
import math
import re
import threading
import time
from typing import Any

import pytest
from evalstream import Client
from evalstream.cli import _watch, main
from rich.console import Console


def _feed(target: str, run_id: str, *, status: str = "finished", nan_at: int | None = None) -> None:
    """Logs steps 0-299 over about a second and a half, validation every 50, then ends the run."""
    with Client(target) as client:
        run = client.get_run(run_id)
        for step in range(300):
            loss = math.nan if step == nan_at else 3.0 * math.exp(-step / 80) + 0.2
            run.log(step, loss=loss)
            if step % 50 == 49:
                run.log(step, split="validation", loss=0.5 + ((step - 150) / 100) ** 2)
            if step % 20 == 0:
                run.flush(timeout=10)
                time.sleep(0.1)
        run.finish(status)


def _watch_while_fed(live_server, name: str, argv: list[str], **feed: Any) -> tuple[int, str]:  # noqa: ANN001
    with Client(live_server.target) as client:
        run = client.create_run("p", name)
        run.log(0, loss=3.2)
        run.flush(timeout=10)
    feeder = threading.Thread(target=_feed, args=(live_server.target, run.id), kwargs=feed)
    out = io.StringIO()
    feeder.start()
    started = time.monotonic()
    try:
        code = main(["--target", live_server.target, "runs", "watch", "p/" + name, *argv], out=out)
    finally:
        feeder.join(30)
    assert time.monotonic() - started < 30
    return code, out.getvalue()


def test_watch_into_a_pipe_prints_lines_until_the_run_finishes(live_server) -> None:
    code, text = _watch_while_fed(live_server, "piped", ["--interval", "0.2"])
    assert code == 0
    lines = text.splitlines()
    # the first verdict in full, as `runs verdict` prints it
    assert re.match(
        r"(INSUFFICIENT_DATA|HEALTHY|OVERFITTING|UNDERFITTING)\b.* at step \d+", lines[0]
    )
    # a line per new loss, steps rising, the last one the run's last step
    losses = [line for line in lines if re.fullmatch(r"step \d+: train loss [\d.]+.*", line)]
    steps = [int(line.split(":")[0].split()[1]) for line in losses]
    assert len(steps) >= 3 and steps == sorted(steps) and len(set(steps)) == len(steps)
    assert losses[-1].startswith("step 299: train loss 0.2") and "validation loss" in losses[-1]
    assert "(step 299)" in losses[-1]  # validation's last evaluation
    # the verdict turned to overfitting on the way (validation rises after step 150)
    assert any("OVERFITTING" in line and ", was " in line for line in lines)
    assert lines[-1] == "run p/piped finished at step 299: OVERFITTING"
    assert lines[-2] == ""


def test_watch_exit_code_says_the_run_failed(live_server) -> None:
    code, text = _watch_while_fed(live_server, "failing", ["--interval", "0.5"], status="failed")
    assert code == _watch.EXIT_BAD_RUN == 3
    assert text.splitlines()[-1].startswith("run p/failing failed at step 299")


def test_watch_exit_code_says_the_run_diverged(live_server) -> None:
    code, text = _watch_while_fed(live_server, "nan", ["--interval", "0.5"], nan_at=250)
    assert code == _watch.EXIT_BAD_RUN
    assert text.splitlines()[-1].endswith("finished at step 299: DIVERGED")


def test_watch_json_prints_verdicts_only(live_server) -> None:
    code, text = _watch_while_fed(live_server, "json", ["--json"])
    assert code == 0
    assert all(line.startswith('{"run_id": ') for line in text.splitlines())


def test_watch_on_a_terminal_draws_the_live_view(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("p", "live")
        run.log(0, loss=3.2)
        run.flush(timeout=10)
        feeder = threading.Thread(target=_feed, args=(live_server.target, run.id))
        console = Console(file=io.StringIO(), force_terminal=True, width=150, record=True)
        args = argparse.Namespace(run="p/live", json=False, interval=0.2, window=1000)
        feeder.start()
        try:
            code = _watch.watch_command(client, args, io.StringIO(), console=console)
        finally:
            feeder.join(30)
    assert code == 0
    raw = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[" in raw  # drawn with escape codes: a live view, redrawn in place
    text = console.export_text()
    assert f"run p/live ({run.id})" in text
    assert re.search(r"train loss +0\.2\d* at step 299 +[▁▂▃▄▅▆▇█]{10,}", text)
    assert re.search(r"validation loss +[\d.]+ at step 299", text)
    assert "verdict          OVERFITTING" in text
    assert re.search(
        r"early stopping +best validation/loss 0\.5001 at step 149 \(3 evaluations ago\): "
        r"stop now; 3 without improvement \(150 steps\)",
        text,
    )
    assert "Stop earlier" in text  # the advice
    assert text.rstrip().splitlines()[-1] == "run p/live finished at step 299: OVERFITTING"


class _Interrupted:
    """A client whose run is running; reading the losses is where Ctrl-C lands."""

    def get_run(self, ref: str) -> Any:
        from evalstream import RunInfo

        info = RunInfo("r_1", "p", "x", "", "", "running", {}, {}, 0.0, 0.0)
        return argparse.Namespace(info=info, id=info.id)

    def watch(self, run_id: str) -> Any:
        time.sleep(60)
        yield from ()

    def curves(self, run_id: str, **read: Any) -> list[Any]:
        raise KeyboardInterrupt


def test_watch_ctrl_c_exits_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(run="r_1", json=False, interval=0.1, window=1000)
    assert _watch.watch_command(_Interrupted(), args, io.StringIO()) == 130
    assert capsys.readouterr().err == "evalstream: interrupted\n"


def test_spark_marks_nonfinite_values() -> None:
    assert _watch.spark([4.0, 3.0, math.inf, 1.0]) == "█▆×▁"
    assert len(_watch.spark([float(i) for i in range(1000)])) == 40
