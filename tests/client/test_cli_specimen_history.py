"""`evalstream runs specimen` and `runs compare-specimen` against a real server."""

from __future__ import annotations

import io
import json

import grpc
import pytest
from evalstream import Box, Client, ImageBoxes, Specimen, SpecimenAtStep
from evalstream._specimen_reads import RunSpecimen
from evalstream.cli import main
from evalstream.cli._specimen_history import format_comparison, format_history
from evalstream.v1 import runs_pb2, runs_pb2_grpc

GT = Box(10, 10, 50, 50, label="cat")
HIT = Box(10, 10, 50, 50, label="cat", confidence=0.9)
FAR = Box(200, 200, 240, 240, label="cat", confidence=0.4)


def cli(target: str, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--target", target, *args], out=out)
    return code, out.getvalue()


def _run(target: str, name: str, monitor: str, plan: dict[int, tuple[Box, ...]]) -> str:
    """A run of project "cli" whose image "cat" is predicted as `plan` says, per step."""
    with grpc.insecure_channel(target) as channel:
        run_id = str(
            runs_pb2_grpc.RunsStub(channel)
            .CreateRun(
                runs_pb2.CreateRunRequest(
                    project="cli",
                    name=name,
                    verdict_config=runs_pb2.VerdictConfig(monitor=monitor),
                ),
                timeout=10,
            )
            .id
        )
    with Client(target) as client:
        run = client.get_run(run_id)
        for step, predictions in plan.items():
            image = ImageBoxes("cat", predictions=predictions, ground_truth=(GT,))
            client.score_boxes([image], checkpoint=run.checkpoint(step))
    return run_id


@pytest.fixture
def runs(live_server) -> dict[str, str]:
    # F1 by step, by hand: a hit is TP 1 -> 1.0; a far box is FP 1 + FN 1 -> 0.0.
    return {
        "a": _run(
            live_server.target, "a", "validation/bbox_f1@0.5", {10: (FAR,), 20: (HIT,), 30: ()}
        ),
        "b": _run(live_server.target, "b", "validation/bbox_f1@0.5", {10: (HIT,), 30: (FAR,)}),
    }


def test_runs_specimen_prints_one_row_per_step(live_server, runs) -> None:
    code, out = cli(live_server.target, "runs", "specimen", "cli/a", "cat")
    assert code == 0
    lines = out.splitlines()
    assert lines[:3] == [
        "specimen cat of run cli/a, validation: 3 steps",
        "ground truth: cat [10 10 50 50]",
        "",
    ]
    # The scores at the lowest IoU threshold, one row per step, by step.
    assert lines[3].split() == [
        "step",
        "flags",
        "f1@0.5",
        "mean_iou@0.5",
        "precision@0.5",
        "recall@0.5",
        "prediction",
    ]
    assert [line.split()[0] for line in lines[4:]] == ["10", "20", "30"]
    assert "missed_detection, false_positive" in lines[4]
    assert lines[4].endswith("predicted 1, true 1: cat [200 200 240 240] 0.40")
    assert lines[5].split()[1:6] == ["-", "1", "1", "1", "1"]
    assert lines[6].split()[1] == "missed_detection"
    assert lines[6].endswith("predicted 0, true 1")

    code, out = cli(live_server.target, "runs", "specimen", runs["a"], "cat", "--scores", "f1@0.75")
    assert out.splitlines()[3].split() == ["step", "flags", "f1@0.75", "prediction"]

    code, out = cli(live_server.target, "runs", "specimen", runs["a"], "cat", "--json")
    steps = json.loads(out)
    assert [s["step"] for s in steps] == [10, 20, 30]
    assert steps[1]["specimen"]["scores"]["f1@0.95"] == 1.0

    code, out = cli(live_server.target, "runs", "specimen", "cli/a", "dog")
    assert (code, out) == (1, "")


def test_runs_compare_specimen_at_a_step_and_best(live_server, runs) -> None:
    code, out = cli(
        live_server.target,
        "runs",
        "compare-specimen",
        "cli/a",
        "cli/b",
        "--specimen",
        "cat",
        "--step",
        "20",
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "specimen cat, validation, in 2 runs"
    assert lines[3].split()[:3] == ["run", "step", "flags"]
    assert lines[4].split()[:7] == ["a", "20", "-", "1", "1", "1", "1"]
    assert lines[5].split()[:3] == ["b", "20", "-"]
    assert "  (absent)  " in lines[5]
    assert lines[5].endswith("  not recorded at step 20; recorded at step 10, 30")

    # Best by F1 (worked above): a at 20, b at 10 (its hit), each with its note.
    code, out = cli(
        live_server.target,
        "runs",
        "compare-specimen",
        "cli/a",
        runs["b"],
        "--specimen",
        "cat",
        "--best",
        "--json",
    )
    a, b = json.loads(out)
    assert (a["run_name"], a["step"], a["present"], b["step"], b["present"]) == (
        "a",
        20,
        True,
        10,
        True,
    )
    assert b["note"] == (
        "best checkpoint: validation/bbox_f1@0.5 = 1 (highest is best) at step 10, "
        "as the run's verdict picks it"
    )
    code, out = cli(
        live_server.target,
        "runs",
        "compare-specimen",
        "cli/a",
        "cli/b",
        "--specimen",
        "cat",
        "--best",
    )
    assert out.splitlines()[4].split()[:2] == ["a", "20"]
    assert out.splitlines()[5].split()[:2] == ["b", "10"]


def test_compare_specimen_needs_step_or_best(live_server, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["runs", "compare-specimen", "a", "b", "--specimen", "x"])
    assert "one of the arguments --step --best is required" in capsys.readouterr().err


def test_format_text_specimens_show_references_and_answers() -> None:
    history = [
        SpecimenAtStep(
            s,
            Specimen(
                "q1",
                prediction_text=answer,
                reference_texts=("a red cup", "one red cup"),
                scores={"bleu": b},
            ),
        )
        for s, answer, b in ((100, "a cup", 0.25), (200, "a red cup", 1.0))
    ]
    assert format_history("p/r", "q1", "test", history).splitlines() == [
        "specimen q1 of run p/r, test: 2 steps",
        "references: a red cup | one red cup",
        "",
        "step  flags  bleu  answer",
        " 100  -      0.25  a cup",
        " 200  -         1  a red cup",
    ]
    entries = [
        RunSpecimen("r1", "base", 100, True, history[0].specimen, ""),
        RunSpecimen(
            "r2", "new", 0, False, None, "no best checkpoint: the run has no checkpoint metrics"
        ),
    ]
    assert format_comparison("q1", "test", entries).splitlines()[3:] == [
        "run   step  flags  bleu  answer    note",
        "base   100  -      0.25  a cup     -",
        "new      -  -         -  (absent)  no best checkpoint: the run has no checkpoint metrics",
    ]


def test_runs_specimen_says_the_image_once(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("cli-image", "r")
        image = ImageBoxes(
            "dog", (HIT,), (GT,), image_uri="https://example.org/dog.jpg", width=640, height=480
        )
        client.score_boxes([image], checkpoint=run.checkpoint(5))
        client.score_boxes([image], checkpoint=run.checkpoint(9))
    code, out = cli(live_server.target, "runs", "specimen", "cli-image/r", "dog")
    assert code == 0
    assert out.count("image: https://example.org/dog.jpg (640x480)") == 1, out
