"""The model cache: outside the data directory, so a server starts with any --data-dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from evalstream import Client
from evalstream_server.config import load_model_dir
from evalstream_server.runtime.models import default_model_dir

from ..conftest import start_server

pytestmark = pytest.mark.slow

EXE = Path(sys.executable).with_name("evalstream-server")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "EVALSTREAM_MODEL_DIR"}


def test_missing_model_refuses_to_start_before_serving_naming_the_fetch_command(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "no-models"
    done = subprocess.run(
        [str(EXE), "--port", "0", "--metrics-port", "-1", "--http-port", "-1",
         "--text-workers", "0", "--data-dir", str(tmp_path / "data"), "--model-dir", str(empty)],
        capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert not [e for e in lines if e["msg"] == "serving"], done.stderr
    errors = [e for e in lines if e["level"] == "error"]
    assert len(errors) == 1, done.stderr
    assert errors[0]["msg"] == "start failed"
    assert f"evalstream-server fetch-model --model-dir {empty}" in str(errors[0]["error"])
    assert not (tmp_path / "data").exists()  # refused before opening anything


def test_a_new_data_dir_serves_bertscore_from_the_model_cache(tmp_path: Path) -> None:
    cache = load_model_dir(None)
    if not default_model_dir(cache).is_dir():
        pytest.fail(f"the default model is not in {cache}: run `make model` first")
    sp = start_server(tmp_path / "brand-new-data-dir", extra=("--text-workers", "0"))
    try:
        with Client(sp.target) as client:
            report = client.score_text(["a red cup"], [["a red cup"]], metrics=["bertscore"])
        f1 = report.overall["bertscore_f1"]
        assert f1.value == pytest.approx(1.0, abs=1e-5)
        assert "all-MiniLM-L6-v2" in f1.signature
        # stderr is the JSON log only: no progress bar from loading the weights.
        assert sp.raw and all(line.startswith("{") for line in sp.raw), "".join(sp.raw)
    finally:
        sp.proc.kill()
        sp.proc.wait(10)


def test_fetch_model_reads_the_variable_and_is_a_no_op_when_verified(tmp_path: Path) -> None:
    cache = load_model_dir(None)
    if not default_model_dir(cache).is_dir():
        pytest.fail(f"the default model is not in {cache}: run `make model` first")
    done = subprocess.run(
        [str(EXE), "fetch-model"],
        capture_output=True, text=True, timeout=120,
        env={**_env(), "EVALSTREAM_MODEL_DIR": str(cache)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"already present and verified in {default_model_dir(cache)}" in done.stdout
