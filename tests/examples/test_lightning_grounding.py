"""examples/lightning_grounding.py run as a script against a server the test starts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("lightning")

from evalstream import Client  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lightning_grounding.py"


def test_lightning_grounding_example(live_server: Any, tmp_path: Path) -> None:
    # 3 epochs of 4 steps: the example's own default is 5 epochs of 16.
    argv = ["--target", live_server.target, "--epochs", "3", "--train-images", "128"]
    argv += ["--name", "grounding", "--checkpoint-dir", str(tmp_path / "ckpt")]
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), *argv], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = re.search(r"^run (\S+) \(examples/grounding\): finished$", done.stdout, re.M)
    assert found, done.stdout
    assert re.search(r"^verdict: \w+: ", done.stdout, re.M)
    assert re.search(r"^checkpoint step 12: bbox_f1@0.5=0\.\d{3}", done.stdout, re.M)

    with Client(live_server.target) as client:
        run_id = found.group(1)
        info = client.get_run(run_id).info
        assert (info.task, info.model) == ("phrase_grounding", "tiny-box-regressor")
        assert info.hyperparameters["lr"] == pytest.approx(3e-3)
        series = {(s.split, s.name): s for s in client.curves(run_id)}
        assert series[("train", "loss")].steps == tuple(range(1, 13))
        assert series[("validation", "loss")].steps == (4, 8, 12)
        evaluations = client.evaluation_steps(run_id, split="validation")
        assert [e.step for e in evaluations] == [4, 8, 12]
        for e in evaluations:
            assert 0.0 <= e.metrics["bbox_f1@0.5"] <= 1.0
            assert e.specimens == 96
        specimens = list(client.specimens(run_id, 12))
        assert len(specimens) == 96
        first = specimens[0]
        assert (first.width, first.height) == (32, 32)
        assert first.ground_truth_boxes[0].label in ("red box", "green box", "blue box")
        assert first.predicted_boxes[0].label == first.ground_truth_boxes[0].label
    # ModelCheckpoint wrote one file per epoch.
    assert len(list((tmp_path / "ckpt").glob("*.ckpt"))) == 3
