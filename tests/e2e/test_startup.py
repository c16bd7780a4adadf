"""Start-up refusals: a busy port is said in one JSON line, before anything loads."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXE = Path(sys.executable).with_name("evalstream-server")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process listens on (what `make serve` twice meets)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    began = time.monotonic()
    # The default BERTScore model: a refusal must come before it loads, not after.
    done = subprocess.run(
        [str(EXE), "--data-dir", str(tmp_path / "data"), "--text-workers", "0",
         "--http-port", "-1", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done, time.monotonic() - began


def _only_json(stderr: str) -> list[dict[str, object]]:
    lines = stderr.splitlines()
    assert lines, "nothing logged"
    assert all(line.startswith("{") for line in lines), stderr  # no traceback, no C-core line
    return [json.loads(line) for line in lines]


def test_busy_grpc_port_is_refused_before_the_model_loads(tmp_path: Path, taken_port: int) -> None:
    done, _ = _start(tmp_path, "--port", str(taken_port), "--metrics-port", "-1")
    assert done.returncode == 1
    lines = _only_json(done.stderr)
    (error,) = [e for e in lines if e["level"] == "error"]
    assert error["msg"] == "start failed"
    assert f"127.0.0.1:{taken_port}: the port is in use" in str(error["error"])
    assert "--port" in str(error["error"])
    assert not [e for e in lines if "bertscore" in str(e["msg"])]
    assert not (tmp_path / "data").exists()  # nothing opened


def test_busy_metrics_port_is_one_line_naming_the_flag(tmp_path: Path, taken_port: int) -> None:
    done, _ = _start(tmp_path, "--port", "0", "--metrics-port", str(taken_port))
    assert done.returncode == 1
    lines = _only_json(done.stderr)
    (error,) = [e for e in lines if e["level"] == "error"]
    assert f"127.0.0.1:{taken_port}: the port is in use" in str(error["error"])
    assert "--metrics-port" in str(error["error"]) and "-1" in str(error["error"])
    assert not (tmp_path / "data").exists()


def test_missing_image_root_is_refused_naming_the_flag(tmp_path: Path) -> None:
    missing = tmp_path / "no-images"
    done, _ = _start(tmp_path, "--port", "0", "--metrics-port", "-1", "--image-root", str(missing))
    assert done.returncode == 1
    (error,) = [e for e in _only_json(done.stderr) if e["level"] == "error"]
    assert error["msg"] == "start failed"
    assert f"the image root '{missing}' does not exist" in str(error["error"])
    assert "--image-root / EVALSTREAM_IMAGE_ROOT" in str(error["error"])
    assert not (tmp_path / "data").exists()  # refused before anything is opened


def test_busy_http_port_is_one_line_naming_the_flag(tmp_path: Path, taken_port: int) -> None:
    args = ("--port", "0", "--metrics-port", "-1", "--http-port", str(taken_port))
    done, _ = _start(tmp_path, *args)
    assert done.returncode == 1
    (error,) = [e for e in _only_json(done.stderr) if e["level"] == "error"]
    assert f"cannot serve HTTP on 127.0.0.1:{taken_port}: the port is in use" in str(error["error"])
    assert "--http-port / EVALSTREAM_HTTP_PORT" in str(error["error"])
    assert not (tmp_path / "data").exists()  # refused before anything is opened
