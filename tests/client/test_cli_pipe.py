"""The CLI into a pipe whose reader has gone (`evalstream ... | head`): a quiet exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from evalstream import Client


def test_output_into_a_closed_pipe_exits_quietly(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("pipe", "long")
        run.log_many(range(20_000), [0.5] * 20_000)
        run.flush(30)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: EPIPE at once
    try:
        done = subprocess.run(
            [str(Path(sys.executable).with_name("evalstream")), "--target", live_server.target]
            + ["runs", "export", "pipe/long", "--format", "csv"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
