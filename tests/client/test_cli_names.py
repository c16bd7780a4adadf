"""`evalstream projects`, `runs create|steps|specimens`, and runs by project/name in the CLI."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import grpc
import pytest
from evalstream import Box, Client, Specimen
from evalstream.cli import main
from evalstream.cli._projects import parse_hp
from evalstream.cli._specimens import format_specimen
from evalstream.v1 import common_pb2, scoring_pb2, scoring_pb2_grpc


def cli(target: str, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["--target", target, *args], out=out)
    return code, out.getvalue()


# ------------------------------------------------------------------ without a server


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr=1e-4", ("lr", 1e-4)),
        ("batch_size=32", ("batch_size", 32)),
        ("ratio=0.5", ("ratio", 0.5)),
        ("amp=true", ("amp", True)),
        ("amp=False", ("amp", False)),
        ("optimizer=adamw", ("optimizer", "adamw")),
        ("note=a=b", ("note", "a=b")),
        ("empty=", ("empty", "")),
    ],
)
def test_parse_hp_types_values(text, expected) -> None:
    key, value = parse_hp(text)
    assert (key, value) == expected and type(value) is type(expected[1])


@pytest.mark.parametrize("text", ["lr", "=3", "lr=nan", "lr=inf"])
def test_parse_hp_refuses(text) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_hp(text)


def test_format_specimen_boxes_beside_each_other() -> None:
    s = Specimen(
        "img7",
        predicted_boxes=(Box(1, 2, 30.5, 40, "cup", 0.875),),
        ground_truth_boxes=(Box(0, 0, 30, 40, "cup"), Box(50, 50, 60, 60, "dog")),
        scores={"f1@0.5": 0.6667},
        flags=("missed_detection",),
    )
    assert format_specimen(s).splitlines() == [
        "img7  flags: missed_detection  scores: f1@0.5=0.6667",
        "  ground truth       prediction",
        "  cup [0 0 30 40]    cup [1 2 30.5 40] 0.88",
        "  dog [50 50 60 60]",
    ]


def test_format_specimen_vqa_references_beside_answer() -> None:
    s = Specimen(
        "q1",
        prediction_text="a blue car",
        reference_texts=("a red car", "the red car"),
        scores={"rouge1_recall": 0.6667},
    )
    assert format_specimen(s).splitlines() == [
        "q1  flags: -  scores: rouge1_recall=0.6667",
        "  references   answer",
        "  a red car    a blue car",
        "  the red car",
    ]


def test_format_specimen_nothing_predicted_shows_a_dash() -> None:
    s = Specimen("img1", ground_truth_boxes=(Box(0, 0, 1, 1),), flags=("missed_detection",))
    assert format_specimen(s).splitlines()[2:] == ["  [0 0 1 1]     -"]


# ------------------------------------------------------------------ against a server


def test_runs_create_prints_the_id_with_typed_hyperparameters(live_server, capsys) -> None:
    code, out = cli(
        live_server.target,
        "runs",
        "create",
        "vision",
        "lr-sweep-1",
        "--model",
        "paligemma-3b",
        "--task",
        "phrase_grounding",
        "--hp",
        "lr=1e-4",
        "batch_size=32",
        "--hp",
        "amp=true",
        "optimizer=adamw",
    )
    assert code == 0
    run_id = out.strip()
    with Client(live_server.target) as client:
        info = client.get_run(run_id).info
    assert (info.project, info.name, info.model, info.task) == (
        "vision",
        "lr-sweep-1",
        "paligemma-3b",
        "phrase_grounding",
    )
    assert info.hyperparameters == {"lr": 1e-4, "batch_size": 32, "amp": True, "optimizer": "adamw"}
    assert type(info.hyperparameters["batch_size"]) is int
    assert type(info.hyperparameters["amp"]) is bool

    code, out = cli(live_server.target, "runs", "create", "vision", "lr-sweep-2", "--json")
    assert code == 0 and json.loads(out)["name"] == "lr-sweep-2"

    capsys.readouterr()
    code, out = cli(live_server.target, "runs", "create", "vision", "lr-sweep-1")
    err = capsys.readouterr().err
    assert code == 1 and out == ""
    assert "run named 'lr-sweep-1' already exists in project 'vision'" in err
    assert "vision/lr-sweep-1" in err
    assert "pass --resume to use it" in err and "resume=True" not in err  # the CLI's words
    # --resume: the existing run's id, exit 0.
    code, out = cli(live_server.target, "runs", "create", "vision", "lr-sweep-1", "--resume")
    assert (code, out.strip()) == (0, run_id)


def test_projects_table_and_json(live_server) -> None:
    code, out = cli(live_server.target, "projects")
    assert code == 0 and out.startswith("no projects")
    with Client(live_server.target) as client:
        client.create_run("nlp", "a")
        client.create_run("vision", "a").finish()
        client.create_run("vision", "b")
    code, out = cli(live_server.target, "projects")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split()[:3] == ["project", "runs", "running"]
    assert [line.split()[:3] for line in lines[1:]] == [["nlp", "1", "1"], ["vision", "2", "1"]]
    code, out = cli(live_server.target, "projects", "--json")
    assert [(p["name"], p["runs"], p["running"]) for p in json.loads(out)] == [
        ("nlp", 1, 1),
        ("vision", 2, 1),
    ]


def test_show_verdict_compare_watch_and_import_take_project_slash_name(
    live_server, tmp_path: Path
) -> None:
    with Client(live_server.target) as client:
        a = client.create_run("p", "a", hyperparameters={"lr": 1e-3})
        b = client.create_run("p", "b", hyperparameters={"lr": 1e-4})
        b.log_many(list(range(40)), [2.0 / (s + 1) for s in range(40)])
        b.finish()
    points = tmp_path / "a.csv"
    points.write_text("step,value\n" + "".join(f"{s},{3.0 / (s + 1)}\n" for s in range(40)))
    code, out = cli(live_server.target, "runs", "import", str(points), "--run", "p/a")
    assert code == 0 and f"imported 40 of 40 points into {a.id}" in out

    code, out = cli(live_server.target, "runs", "show", "p/a", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["id"] == a.id and shown["series"][0]["points"] == 40

    code, out = cli(live_server.target, "runs", "verdict", "p/b", "--json")
    assert code == 0 and json.loads(out)["run_id"] == b.id

    code, out = cli(
        live_server.target, "runs", "compare", "p/a", "p/b", "--baseline", "p/b", "--json"
    )
    assert code == 0
    compared = json.loads(out)
    assert [r["run_id"] for r in compared["rows"]] == [a.id, b.id]
    assert compared["baseline_run_id"] == b.id

    code, out = cli(live_server.target, "runs", "watch", "p/b")  # b is finished: one verdict
    assert code == 0 and "at step 39" in out

    code, _ = cli(live_server.target, "runs", "show", "p/missing")
    assert code == 1


def _record(target: str, run_id: str, step: int) -> None:
    """Three images as the evaluation of `step`: found, missed, missed with a stray box."""
    gt = [scoring_pb2.Box(x1=0, y1=0, x2=10, y2=10, label="cup")]
    found = scoring_pb2.Box(x1=0, y1=0, x2=10, y2=10, label="cup", confidence=0.9)
    stray = scoring_pb2.Box(x1=50, y1=50, x2=60, y2=60, label="cup", confidence=0.4)
    images = [
        scoring_pb2.ImageBoxes(image_id="found", predictions=[found], ground_truth=gt),
        scoring_pb2.ImageBoxes(image_id="missed", ground_truth=gt),
        scoring_pb2.ImageBoxes(image_id="stray", predictions=[stray], ground_truth=gt),
    ]
    batch = scoring_pb2.BoxBatch(
        images=images,
        options=scoring_pb2.BoxOptions(iou_thresholds=[0.5]),
        checkpoint=common_pb2.CheckpointRef(
            run_id=run_id, split=common_pb2.SPLIT_VALIDATION, step=step
        ),
    )
    with grpc.insecure_channel(target) as channel:
        list(scoring_pb2_grpc.ScoringStub(channel).ScoreBoxes(iter([batch]), timeout=30))


def test_runs_steps_and_specimens(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("det", "r")
    _record(live_server.target, run.id, 300)

    code, out = cli(live_server.target, "runs", "steps", "det/r")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["split", "step", "specimens", "metrics", "flags"]
    assert lines[1].split()[:3] == ["validation", "300", "3"]
    assert lines[1].endswith("missed_detection=2, false_positive=1")
    code, out = cli(live_server.target, "runs", "steps", run.id, "--json")
    (step,) = json.loads(out)
    assert (step["step"], step["specimens"], step["flag_counts"]) == (
        300,
        3,
        {"missed_detection": 2, "false_positive": 1},
    )

    code, out = cli(live_server.target, "runs", "specimens", "det/r", "--step", "300")
    assert code == 0
    assert out.startswith("3 specimens at validation step 300\n")
    blocks = out.split("\n\n")[1:]
    assert [b.split()[0] for b in blocks] == ["found", "missed", "stray"]
    assert blocks[1].splitlines()[1:] == ["  ground truth     prediction", "  cup [0 0 10 10]  -"]
    assert "cup [50 50 60 60] 0.40" in blocks[2]

    code, out = cli(
        live_server.target,
        "runs",
        "specimens",
        "det/r",
        "--step",
        "300",
        "--flag",
        "false_positive",
    )
    assert out.startswith("1 specimen with flag false_positive at validation step 300")
    code, out = cli(
        live_server.target,
        "runs",
        "specimens",
        run.id,
        "--step",
        "300",
        "--flag",
        "missed_detection",
        "--json",
    )
    assert [s["specimen_id"] for s in json.loads(out)] == ["missed", "stray"]
    code, out = cli(live_server.target, "runs", "specimens", "det/r", "--step", "7")
    assert code == 0 and out.startswith("no specimens at validation step 7")
    code, _ = cli(live_server.target, "runs", "specimens", "det/r", "--step", "300", "--flag", "x")
    assert code == 1
