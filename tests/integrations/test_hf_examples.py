"""The Trainer examples run as scripts against a server, and their outcome read back."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
from evalstream import Client

from tests.conftest import LiveServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(script: str, target: str, *args: str) -> str:
    env = {**os.environ, "EVALSTREAM_TARGET": target, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_hf_trainer_vqa(live_server: LiveServer, tmp_path: Path) -> None:
    out = run_example("hf_trainer_vqa.py", live_server.target, "--name", "vqa-test")
    run_id = re.search(r"^run: (r_\w+)", out, re.M)
    assert run_id, out
    assert re.search(r"^verdict: \w+: ", out, re.M), out
    with Client(live_server.target) as client:
        run = client.get_run("examples/vqa-test")
        assert run.id == run_id.group(1)
        assert run.info.status == "finished" and run.info.task == "vqa"
        assert run.info.summary["train_runtime"] > 0
        curves = {(s.split, s.name): s.steps for s in run.curves()}
        assert len(curves[("train", "loss")]) == 30  # 60 steps, a log every 2
        assert curves[("validation", "loss")] == (20, 40, 60)
        evaluations = {e.step: e for e in run.evaluation_steps("validation")}
        assert sorted(evaluations) == [20, 40, 60]
        for step in (20, 40, 60):
            assert {"loss", "bleu", "rougeL_fmeasure"} <= set(evaluations[step].metrics)
            assert f"checkpoint {step}: loss" in out
        specimens = list(run.specimens(60))
        assert len(specimens) == 12
        first = specimens[0]
        assert "what color is the" in first.question
        assert first.image_uri.startswith("https://example.com/images/")
        # The answers learnt by the end: BLEU rises from the first evaluation.
        assert evaluations[60].metrics["bleu"] > evaluations[20].metrics["bleu"]


def test_overfit_and_stop(live_server: LiveServer, tmp_path: Path) -> None:
    out_dir = tmp_path / "ckpt"
    out = run_example(
        "overfit_and_stop.py", live_server.target, "--name", "overfit", "--output-dir", str(out_dir)
    )
    stopped = re.search(r"^stopped at step (\d+) of (\d+): ", out, re.M)
    keep = re.search(r"^checkpoint to keep: step (\d+), (.+)$", out, re.M)
    assert stopped and keep, out
    step, last = int(stopped.group(1)), int(stopped.group(2))
    assert step < last
    best, directory = int(keep.group(1)), Path(keep.group(2))
    assert best < step
    assert directory == out_dir / f"checkpoint-{best}"
    assert directory.is_dir()
    with Client(live_server.target) as client:
        run = client.get_run("examples/overfit")
        assert run.info.status == "finished"
        curves = {(s.split, s.name): s.steps for s in run.curves()}
        assert curves[("train", "loss")][-1] == step
        assert curves[("validation", "loss")] == tuple(range(8, step + 1, 8))
        verdict = run.verdict()
        assert verdict.state == "overfitting"
        assert verdict.early_stopping.best_step == best
        # The directory came from the server: the callback recorded each save.
        assert verdict.early_stopping.best_checkpoint_path == str(directory)
        assert [e.step for e in run.evaluation_steps("validation")] == list(range(8, step + 1, 8))
