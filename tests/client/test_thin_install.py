"""`pip install .` gives a client that imports and works without torch or server deps."""

from __future__ import annotations

import json
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_client_installs_and_imports_without_torch(tmp_path: Path, live_server) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    built = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # The build says nothing a user must act on (setuptools' licence-table banner was one).
    assert "deprecat" not in built.stderr.lower(), built.stderr
    probe = f"""
import importlib.util, json
import evalstream
from evalstream import Box, Client, ImageBoxes
with Client({live_server.target!r}) as c:
    report = c.score_boxes([ImageBoxes("i", (Box(0, 0, 2, 2, "a", 0.9),), (Box(0, 0, 2, 2, "a"),))])
print(json.dumps({{
    "f1": report.overall[0].f1.value,
    "present": [m for m in ("torch", "numpy", "prometheus_client", "grpc_health", "grpc_status")
                if importlib.util.find_spec(m) is not None],
}}))
"""
    out = subprocess.run(
        [str(python), "-c", probe], check=True, capture_output=True, text=True, timeout=60
    )
    result = json.loads(out.stdout)
    assert result == {"f1": 1.0, "present": []}
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    )
    names = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    allowed = {
        "pip",
        "setuptools",
        "wheel",
        "evalstream",
        "grpcio",
        "protobuf",
        "googleapis-common-protos",
        "typing-extensions",
    }  # grpcio needs typing-extensions
    assert names - allowed == set()
    cli = subprocess.run(
        [str(env_dir / "bin" / "evalstream"), "--target", live_server.target, "health"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (cli.returncode, cli.stdout.strip()) == (0, "SERVING")
