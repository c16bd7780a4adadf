"""`evalstream runs list|show|import` against a real server."""

from __future__ import annotations

import io
import json
from pathlib import Path

from evalstream import Client
from evalstream.cli import main


def test_import_show_and_list(live_server, tmp_path: Path) -> None:
    with Client(live_server.target) as client:
        run = client.create_run(
            "proj", "backfill", model="m", hyperparameters={"batch_size": 4, "dataset_size": 10}
        )
    csv_file = tmp_path / "history.csv"
    csv_file.write_text(
        "step,split,value,series\n0,train,2.5,\n1,train,2.0,\n0,validation,2.7,\n0,train,1e-4,learning_rate\n"
    )
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text('{"step": 2, "value": 1.5}\n{"step": 3, "value": 1.25, "split": "train"}\n')
    out = io.StringIO()
    assert (
        main(
            ["--target", live_server.target, "runs", "import", str(csv_file), "--run", run.id],
            out=out,
        )
        == 0
    )
    assert (
        main(
            ["--target", live_server.target, "runs", "import", str(jsonl), "--run", run.id], out=out
        )
        == 0
    )
    assert "imported 4 of 4 points" in out.getvalue() and "imported 2 of 2 points" in out.getvalue()

    out = io.StringIO()
    assert main(["--target", live_server.target, "runs", "show", run.id, "--json"], out=out) == 0
    shown = json.loads(out.getvalue())
    assert shown["derived"]["steps_per_epoch"] == 3
    series = {(s["split"], s["name"]): s for s in shown["series"]}
    assert (
        series[("train", "loss")]["points"] == 4 and series[("train", "loss")]["last_value"] == 1.25
    )
    assert series[("validation", "loss")]["points"] == 1

    out = io.StringIO()
    assert main(["--target", live_server.target, "runs", "show", run.id], out=out) == 0
    assert "backfill" in out.getvalue() and "steps_per_epoch" in out.getvalue()

    out = io.StringIO()
    assert main(["--target", live_server.target, "runs", "list", "--project", "proj"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["id", "name", "model"] and run.id in lines[1]


def test_import_refused_points_exit_nonzero(live_server, tmp_path: Path) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("proj", "bad")
    f = tmp_path / "bad.csv"
    f.write_text("step,value\n-3,1.0\n")
    assert (
        main(
            ["--target", live_server.target, "runs", "import", str(f), "--run", run.id],
            out=io.StringIO(),
        )
        == 1
    )


def test_import_unreadable_row_names_the_line(live_server, tmp_path: Path, capsys) -> None:
    f = tmp_path / "bad.csv"
    f.write_text("step,value\n1,abc\n")
    assert main(["--target", live_server.target, "runs", "import", str(f), "--run", "x"]) == 2
    assert "bad.csv:2" in capsys.readouterr().err
