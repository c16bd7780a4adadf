"""`evalstream runs list|show|import` against a real server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
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


def test_import_names_each_refused_line_and_imports_the_rest(
    live_server, tmp_path: Path, capsys
) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("proj", "partly-bad")
    f = tmp_path / "history.csv"
    f.write_text(
        "step,value,split\n"
        "0,2.5,train\n"
        "-1,2.4,train\n"  # line 3: negative step
        "1,abc,train\n"  # line 4: not a number
        "2,2.0,val\n"  # line 5: unknown split
        "3,nan,train\n"  # NaN is a value like any other
        "4.5,1.0,train\n"  # line 7: not an integer step
        "5,1.5,\n"
    )
    out = io.StringIO()
    assert (
        main(["--target", live_server.target, "runs", "import", str(f), "--run", run.id], out=out)
        == 1
    )
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{f}:3: step = -1: a step must be >= 0 and < 2**63 (the optimizer step)",
        f"{f}:4: value 'abc' is not a number",
        f"{f}:5: split 'val' is not one of train, validation, test",
        f"{f}:7: step = 4.5: a step must be an integer (the optimizer step), not float",
    ]
    assert out.getvalue().startswith(f"imported 3 of 7 points into {run.id}; 4 lines refused")
    with Client(live_server.target) as client:
        (loss,) = client.get_run(run.id).curves()
    assert loss.steps == (0, 3, 5)

    # --json: the same account as one object (the good lines are idempotent rewrites).
    out = io.StringIO()
    argv = ["--target", live_server.target, "runs", "import", str(f), "--run", run.id, "--json"]
    assert main(argv, out=out) == 1
    report = json.loads(out.getvalue())
    assert (report["run"], report["points"], report["imported"]) == (run.id, 7, 3)
    assert [r["line"] for r in report["refused"]] == [3, 4, 5, 7]
    assert report["refused"][2]["reason"] == "split 'val' is not one of train, validation, test"


@pytest.mark.parametrize("live_server", [{"max_points_per_chunk": 2}], indirect=True)
def test_import_maps_a_server_refusal_to_its_lines(live_server, tmp_path: Path, capsys) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("proj", "server-refuses")
    f = tmp_path / "history.jsonl"
    f.write_text(
        '{"step": 0, "value": 2.5}\n'
        '{"step": 0, "value": 2.7, "split": "validation"}\n'
        "\n"
        '{"step": 1, "value": 2.25}\n'
        '{"step": 2, "value": 2.0}\n'
    )
    out = io.StringIO()
    assert (
        main(["--target", live_server.target, "runs", "import", str(f), "--run", run.id], out=out)
        == 1
    )
    reason = (
        "refused by the server: steps: 3 points, at most 2 per chunk; send smaller chunks, "
        "or raise it with --max-points-per-chunk / EVALSTREAM_MAX_POINTS_PER_CHUNK"
    )
    assert capsys.readouterr().err.splitlines() == [f"{f}:{n}: {reason}" for n in (1, 4, 5)]
    assert out.getvalue().startswith(f"imported 1 of 4 points into {run.id}; 3 lines refused")
