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
    probe = """
import importlib, importlib.util, json, sys
import evalstream, evalstream.integrations  # the integrations' core needs no framework
def _needs(module):
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return str(exc).split("pip install ")[-1]
"""
    probe += f"""
from evalstream import Box, Client, ImageBoxes
with Client({live_server.target!r}) as c:
    report = c.score_boxes([ImageBoxes("i", (Box(0, 0, 2, 2, "a", 0.9),), (Box(0, 0, 2, 2, "a"),))])
print(json.dumps({{
    "f1": report.overall[0].f1.value,
    "present": [m for m in ("torch", "numpy", "prometheus_client", "grpc_health", "grpc_status")
                if importlib.util.find_spec(m) is not None],
    "imported": [m for m in ("rich",) if m in sys.modules],  # only the CLI draws tables
    "extras": [_needs(m) for m in ("evalstream.integrations.transformers",
                                   "evalstream.integrations.lightning", "evalstream.plot")],
}}))
"""
    out = subprocess.run(
        [str(python), "-c", probe], check=True, capture_output=True, text=True, timeout=60
    )
    result = json.loads(out.stdout)
    # Each extra's module says which extra to install, not just "No module named ...".
    extras = ["'evalstream[transformers]' (install torch first to choose its build)"]
    extras += ["'evalstream[lightning]'", "'evalstream[plot]'"]
    assert result == {"f1": 1.0, "present": [], "imported": [], "extras": extras}
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
        "rich",
        "markdown-it-py",
        "mdurl",
        "pygments",
    }  # grpcio needs typing-extensions; rich (the CLI's tables) needs the last three
    assert names - allowed == set()
    cli = subprocess.run(
        [str(env_dir / "bin" / "evalstream"), "--target", live_server.target, "health"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (cli.returncode, cli.stdout.strip()) == (0, "SERVING")
    version = subprocess.run(
        [str(env_dir / "bin" / "evalstream"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    installed = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('evalstream'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert (version.returncode, version.stdout.strip()) == (0, f"evalstream {installed}")
