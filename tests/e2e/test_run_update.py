"""UpdateRun through the real server: a run's summary, and saved checkpoint paths in its verdict."""

from __future__ import annotations

import io
import json
import math
import threading

import grpc
import numpy as np
import pytest
from evalstream import Client, Verdict, errors
from evalstream.cli import main
from evalstream.v1 import runs_pb2, runs_pb2_grpc


def _overfitting(run) -> None:  # noqa: ANN001 - Run
    """Training keeps falling; validation bottoms out near step 1500, then rises."""
    rng = np.random.default_rng(0)
    steps = np.arange(4000)
    run.log_many(steps, 2.5 * np.exp(-steps / 600) + 0.2 + rng.normal(0, 0.01, 4000))
    val_steps = np.arange(0, 4000, 100)
    val = 2.5 * np.exp(-val_steps / 600) + 0.35 + np.maximum(0, val_steps - 1500) * 3e-4
    run.log_many(val_steps, val, split="validation")
    for step, tr, va in ((500, 0.75, 0.72), (1000, 0.85, 0.80), (1500, 0.92, 0.78)):
        run.log_checkpoint(step, {"f1": tr}, split="train")
        run.log_checkpoint(step, {"f1": va}, split="validation")
    run.flush(timeout=30)


def test_update_run_summary_merges_and_get_run_shows_it(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("p", "summary", hyperparameters={"lr": 0.1})
        assert (run.info.summary, run.info.alert_webhook_count) == ({}, 0)
        info = run.update(summary={"train_runtime": 61.5, "total_flos": 12, "loss": math.nan})
        assert run.info is info and info.summary["train_runtime"] == 61.5
        run.finish()  # a finished run may still be updated: the trainer's last values
        info = run.update(summary={"train_runtime": 62.0, "note": "done"})
        assert info.status == "finished"
        got = client.get_run(run.id).info
    assert got.summary["train_runtime"] == 62.0 and got.summary["total_flos"] == 12
    assert got.summary["note"] == "done" and math.isnan(got.summary["loss"])
    assert got.hyperparameters == {"lr": 0.1}
    assert got.updated_at >= got.created_at


def test_saved_checkpoint_at_the_best_step_is_named_by_the_verdict(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("p", "overfit")
        _overfitting(run)
        before = run.verdict()  # computed and cached before any path is recorded
        best = before.early_stopping.best_step
        assert before.state == "overfitting" and best is not None
        assert before.early_stopping.best_checkpoint_path == ""
        run.update(
            saved_checkpoints={500: "out/checkpoint-500", best: f"out/checkpoint-{best}", 1: "x"}
        )
        v = run.verdict()
    assert v.early_stopping.best_checkpoint_path == f"out/checkpoint-{best}"
    stop = next(a for a in v.advice if a.action == "stop_earlier")
    assert stop.text.endswith(f"({best}), saved in out/checkpoint-{best}.")
    paths = {c.step: c.path for c in v.checkpoints if c.metric == "f1"}
    assert paths == {500: "out/checkpoint-500", 1000: "", 1500: paths[1500]}
    assert paths[1500] == (f"out/checkpoint-{best}" if best == 1500 else "")


def test_recording_a_path_wakes_a_watch(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("p", "watched")
        _overfitting(run)
        best = run.verdict().early_stopping.best_step
        seen: list[Verdict] = []
        first = threading.Event()

        def watch() -> None:
            with Client(live_server.target) as watcher:
                for v in watcher.watch(run.id, timeout=30):
                    seen.append(v)
                    first.set()
                    if v.early_stopping.best_checkpoint_path:
                        return

        thread = threading.Thread(target=watch)
        thread.start()
        assert first.wait(20)
        run.update(saved_checkpoints={best: "s3://bucket/best"})
        thread.join(20)
        assert not thread.is_alive(), "the watch was not pushed the recorded path"
    assert seen[-1].early_stopping.best_checkpoint_path == "s3://bucket/best"


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        (
            {
                "saved_checkpoints": [runs_pb2.SavedCheckpoint(step=i, path="ok") for i in range(3)]
                + [runs_pb2.SavedCheckpoint(step=3, path="")]
            },
            "saved_checkpoints[3].path",
        ),
        (
            {"saved_checkpoints": [runs_pb2.SavedCheckpoint(step=1, path="a\0b")]},
            "saved_checkpoints[0].path",
        ),
        (
            {"saved_checkpoints": [runs_pb2.SavedCheckpoint(step=1, path="x" * 4097)]},
            "saved_checkpoints[0].path",
        ),
        (
            {"saved_checkpoints": [runs_pb2.SavedCheckpoint(step=-5, path="a")]},
            "saved_checkpoints[0].step",
        ),
        (
            {
                "saved_checkpoints": [
                    runs_pb2.SavedCheckpoint(step=i, path="a") for i in range(1001)
                ]
            },
            "saved_checkpoints",
        ),
        ({"summary": {"k": runs_pb2.HyperValue()}}, "summary[k]"),
        ({"summary": {"x" * 257: runs_pb2.HyperValue(int_value=1)}}, "summary"),
    ],
)
def test_update_run_bad_input_names_the_field(live_server, request_fields, field: str) -> None:
    with Client(live_server.target) as client:
        run_id = client.create_run("p", "bad").id
    with grpc.insecure_channel(live_server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.UpdateRun(runs_pb2.UpdateRunRequest(run_id=run_id, **request_fields), timeout=10)
        err = errors.from_grpc(info.value)
        assert isinstance(err, errors.InvalidArgument)
        assert err.violations[0].field == field
        run = stub.GetRun(runs_pb2.GetRunRequest(run_id=run_id), timeout=10)
        assert dict(run.summary) == {}


def test_update_run_unknown_run_is_not_found(live_server) -> None:
    with grpc.insecure_channel(live_server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.UpdateRun(runs_pb2.UpdateRunRequest(run_id="r_missing"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_cli_shows_the_summary_and_the_saved_directory(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("p", "cli")
        _overfitting(run)
        best = run.verdict().early_stopping.best_step
        run.update(summary={"train_runtime": 61.5}, saved_checkpoints={best: "out/best"})
    shown, verdict, as_json = io.StringIO(), io.StringIO(), io.StringIO()
    target = ["--target", live_server.target]
    assert main([*target, "runs", "show", run.id], out=shown) == 0
    assert main([*target, "runs", "verdict", run.id], out=verdict) == 0
    assert main([*target, "runs", "show", run.id, "--json"], out=as_json) == 0
    text = shown.getvalue()
    assert "summary" in text and "train_runtime" in text and "61.5" in text
    assert f"at step {best}" in verdict.getvalue() and "saved in out/best" in verdict.getvalue()
    assert json.loads(as_json.getvalue())["summary"] == {"train_runtime": 61.5}


def test_cli_runs_update(live_server, capsys: pytest.CaptureFixture[str]) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("p", "cli-update")
        _overfitting(run)
        best = run.verdict().early_stopping.best_step
    target = ["--target", live_server.target]
    out = io.StringIO()
    argv = [*target, "runs", "update", "p/cli-update", "--summary", "train_runtime=61.5"]
    argv += ["note=final", "--checkpoint", f"{best}=out/checkpoint-{best}"]
    assert main(argv, out=out) == 0
    assert "1 checkpoint path(s) recorded" in out.getvalue() and "train_runtime" in out.getvalue()
    with Client(live_server.target) as client:
        info = client.get_run(run.id).info
        v = client.verdict(run.id)
    assert info.summary == {"train_runtime": 61.5, "note": "final"}
    assert v.early_stopping.best_checkpoint_path == f"out/checkpoint-{best}"
    # A bad STEP=PATH is refused by the parser (exit 2); nothing is sent.
    with pytest.raises(SystemExit) as info_exit:
        main([*target, "runs", "update", run.id, "--checkpoint", "-3=x"], out=io.StringIO())
    assert info_exit.value.code == 2 and "STEP=PATH" in capsys.readouterr().err


def test_update_run_adds_hyperparameters_get_run_derives_from_them(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("p", "hypers", hyperparameters={"lr": 0.1, "batch_size": 32})
        assert "steps_per_epoch" not in run.info.derived
        info = run.update(hyperparameters={"dataset_size": 1000, "optim": "adamw", "lr": 0.1})
        assert run.info is info and info.derived["steps_per_epoch"] == 32  # ceil(1000 / 32)
        got = client.get_run(run.id).info
        found = list(client.list_runs("p", hyperparameters={"dataset_size": 1000}))
    assert got.hyperparameters == {
        "lr": 0.1,
        "batch_size": 32,
        "dataset_size": 1000,
        "optim": "adamw",
    }
    assert got.derived["steps_per_epoch"] == 32 and got.summary == {}
    assert [r.id for r in found] == [run.id]


def test_update_run_changed_hyperparameter_is_failed_precondition(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("p", "changed", hyperparameters={"lr": 0.1})
        with pytest.raises(errors.FailedPrecondition) as info:
            run.update(summary={"note": "x"}, hyperparameters={"epochs": 3, "lr": 0.05})
        got = client.get_run(run.id).info
    message = str(info.value)
    assert "'lr'" in message and "0.1" in message and "0.05" in message
    assert "new run" in message and "summary" in message
    # Nothing of the refused request applied.
    assert got.hyperparameters == {"lr": 0.1} and got.summary == {}


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (runs_pb2.HyperValue(), "no value set"),
        (runs_pb2.HyperValue(float_value=math.nan), "not finite"),
        (runs_pb2.HyperValue(float_value=-math.inf), "not finite"),
    ],
)
def test_update_run_bad_hyperparameter_names_its_key(live_server, value, what: str) -> None:
    with Client(live_server.target) as client:
        run_id = client.create_run("p", "bad-hp").id
    with grpc.insecure_channel(live_server.target) as channel:
        stub = runs_pb2_grpc.RunsStub(channel)
        request = runs_pb2.UpdateRunRequest(run_id=run_id, hyperparameters={"warmup": value})
        with pytest.raises(grpc.RpcError) as info:
            stub.UpdateRun(request, timeout=10)
        err = errors.from_grpc(info.value)
        run = stub.GetRun(runs_pb2.GetRunRequest(run_id=run_id), timeout=10)
    assert isinstance(err, errors.InvalidArgument)
    assert err.violations[0].field == "hyperparameters[warmup]"
    assert what in err.violations[0].description
    assert dict(run.hyperparameters) == {}


def test_compare_runs_lists_an_added_hyperparameter_as_differing(live_server) -> None:
    with Client(live_server.target) as client:
        a = client.create_run("cmp", "a", hyperparameters={"lr": 0.1})
        b = client.create_run("cmp", "b", hyperparameters={"lr": 0.1})
        for run, size in ((a, 1000), (b, 2000)):
            run.log_many(np.arange(10), np.linspace(2, 1, 10))
            run.flush(timeout=30)
            run.update(hyperparameters={"dataset_size": size})
        comparison = client.compare([a.id, b.id])
    assert comparison.differing == ("dataset_size",)
    assert [r.hyperparameters["dataset_size"] for r in comparison.rows] == [1000, 2000]
    assert comparison.pairs[0].changed == ("dataset_size",)


def test_cli_runs_update_hp(live_server, capsys: pytest.CaptureFixture[str]) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("p", "cli-hp", hyperparameters={"lr": 0.1})
    target = ["--target", live_server.target]
    out = io.StringIO()
    argv = [*target, "runs", "update", "p/cli-hp", "--hp", "dataset_size=5000", "amp=true"]
    assert main([*argv, "--hp", "lr=0.1"], out=out) == 0
    assert "hyperparameters:" in out.getvalue() and "dataset_size" in out.getvalue()
    with Client(live_server.target) as client:
        info = client.get_run(run.id).info
    assert info.hyperparameters == {"lr": 0.1, "dataset_size": 5000, "amp": True}
    # A changed value is refused, naming the key; nothing changes.
    capsys.readouterr()
    code = main([*target, "runs", "update", run.id, "--hp", "lr=0.2"], out=io.StringIO())
    assert code != 0 and "'lr'" in capsys.readouterr().err
    with Client(live_server.target) as client:
        assert client.get_run(run.id).info.hyperparameters["lr"] == 0.1
