"""`evalstream-server` as a child process on free ports, for the benches."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path


class Server:
    """`evalstream-server` on a free gRPC port (metrics and HTTP off unless `extra` turns
    them on: a later flag wins), started as a child process.

    Args:
        data_dir: The server's data directory.
        extra: More flags (``--bertscore-model none``, ``--bertscore-dtype bf16``, ...).
        timeout: Seconds to wait for its "serving" log line.
    """

    def __init__(self, data_dir: Path, extra: Sequence[str] = (), *, timeout: float = 60) -> None:
        exe = Path(sys.executable).with_name("evalstream-server")
        self.proc = subprocess.Popen(
            [
                str(exe),
                "--port",
                "0",
                "--metrics-port",
                "-1",
                "--http-port",
                "-1",
                "--data-dir",
                str(data_dir),
                *extra,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.target = ""
        self.http_url = ""  # the JSON API's URL, when `extra` gives --http-port
        ready = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if entry.get("msg") == "http":
                    self.http_url = entry["url"]
                if entry.get("msg") == "serving":
                    self.target = entry["address"]
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or not self.target:
            self.proc.kill()
            raise RuntimeError("evalstream-server did not start")
        self._wait_serving(timeout)

    def _wait_serving(self, timeout: float) -> None:
        """Waits for health SERVING: the model and the text metrics have loaded, so
        no warm-up competes with what is measured."""
        import time

        from evalstream import Client

        deadline = time.monotonic() + timeout
        with Client(self.target) as client:
            while time.monotonic() < deadline:
                try:
                    if client.health() == "SERVING":
                        return
                except Exception:  # noqa: BLE001 - not up yet
                    pass
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError("evalstream-server did not turn SERVING")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
