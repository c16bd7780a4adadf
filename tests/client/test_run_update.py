"""`Run.update` on the client: every item checked before anything is sent, and the request built."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from evalstream import AsyncRun, Run, errors
from evalstream._display import _best, _checkpoint_rows
from evalstream._run_types import RunInfo
from evalstream._run_update import update_request, update_run
from evalstream._verdicts import CheckpointGrade, EarlyStopping
from evalstream.v1 import runs_pb2

INFO = RunInfo("r1", "p", "n", "", "", "running", {}, {}, 0.0, 0.0)


@pytest.mark.parametrize(
    ("summary", "saved", "field"),
    [
        ({"": 1}, None, "summary"),
        ({3: 1}, None, "summary"),
        ({"k" * 257: 1}, None, "summary"),
        ({"ok": 1, "k": [1]}, None, "summary[k]"),
        ({"k": None}, None, "summary[k]"),
        ({"k": 2**63}, None, "summary[k]"),
        (None, {0: "a", -1: "b"}, "saved_checkpoints[1].step"),
        (None, {True: "a"}, "saved_checkpoints[0].step"),
        (None, {"5": "a"}, "saved_checkpoints[0].step"),
        (None, {2**63: "a"}, "saved_checkpoints[0].step"),
        (None, {0: "a", 1: "b", 2: "c", 3: ""}, "saved_checkpoints[3].path"),
        (None, {1: "x" * 4097}, "saved_checkpoints[0].path"),
        (None, {1: "out/\0"}, "saved_checkpoints[0].path"),
        (None, {1: 5}, "saved_checkpoints[0].path"),
        (None, {i: "p" for i in range(1001)}, "saved_checkpoints"),
        (None, [(1, "a")], "saved_checkpoints"),
    ],
)
def test_update_request_bad_item_names_it(summary, saved, field: str) -> None:  # noqa: ANN001
    with pytest.raises(errors.InvalidArgument) as info:
        update_request("r1", summary, saved)
    assert isinstance(info.value, ValueError)
    assert info.value.violations[0].field == field
    # The plan refuses before it yields its call: nothing is sent.
    with pytest.raises(errors.InvalidArgument):
        next(update_run("r1", summary, saved))


def test_update_request_values_and_paths() -> None:
    request = update_request(
        "r1",
        {
            "runtime": 61.5,
            "flos": np.int64(12),
            "loss": math.nan,
            "ok": True,
            "note": "x",
            "lr": np.float32(0.5),
        },
        {500: "out/checkpoint-500", np.int64(1000): Path("out") / "checkpoint-1000"},
    )
    s = request.summary
    assert s["runtime"].float_value == 61.5 and s["flos"].int_value == 12
    assert (
        math.isnan(s["loss"].float_value) and s["ok"].bool_value and s["note"].string_value == "x"
    )
    assert s["lr"].float_value == 0.5
    assert [(c.step, c.path) for c in request.saved_checkpoints] == [
        (500, "out/checkpoint-500"),
        (1000, "out/checkpoint-1000"),
    ]
    # The limits are inclusive.
    big = update_request("r1", None, {i: "x" * 4096 for i in range(1000)})
    assert len(big.saved_checkpoints) == 1000


class _Client:
    """Drives a plan as the real clients do, answering UpdateRun with a fixed run."""

    def __init__(self) -> None:
        self.sent: list[runs_pb2.UpdateRunRequest] = []

    def _drive(self, plan):  # noqa: ANN001, ANN202
        call = next(plan)
        self.sent.append(call.request)
        reply = runs_pb2.Run(id="r1", project="p", name="n", alert_webhook_count=2)
        reply.summary["runtime"].float_value = 61.5
        try:
            plan.send(reply)
        except StopIteration as stop:
            return stop.value
        raise AssertionError("the plan made a second call")


def test_run_update_keeps_the_answer_as_info() -> None:
    client = _Client()
    run = Run(client, INFO)
    info = run.update(summary={"runtime": 61.5}, saved_checkpoints={10: "c-10"})
    assert run.info is info and info.summary == {"runtime": 61.5} and info.alert_webhook_count == 2
    assert client.sent[0].run_id == "r1" and client.sent[0].saved_checkpoints[0].path == "c-10"
    with pytest.raises(errors.InvalidArgument):
        run.update(saved_checkpoints={10: ""})
    assert len(client.sent) == 1
    assert callable(AsyncRun.update)


def test_verdict_display_names_the_saved_directory() -> None:
    es = EarlyStopping("validation/loss", "min", 1500, 0.5, 2, 500, True, "out/checkpoint-1500")
    assert _best(type("V", (), {"early_stopping": es})()) == (
        "best validation/loss 0.5 at step 1500 (2 evaluations ago): stop now; "
        "saved in out/checkpoint-1500"
    )
    with_path = [CheckpointGrade(1500, "f1", 0.9, 0.8, 0.1, "healthy", "out/checkpoint-1500")]
    assert _checkpoint_rows(with_path)[0][-1] == "saved in"
    assert _checkpoint_rows(with_path)[1][-1] == "out/checkpoint-1500"
    without = [CheckpointGrade(1500, "f1", 0.9, 0.8, 0.1, "healthy")]
    assert _checkpoint_rows(without)[0][-1] == "grade"


@pytest.mark.parametrize(
    ("hypers", "field"),
    [
        ({"": 1}, "hyperparameters"),
        ({"k" * 257: 1}, "hyperparameters"),
        ({"ok": 1, "k": [1]}, "hyperparameters[k]"),
        ({"k": None}, "hyperparameters[k]"),
        ({"k": 2**63}, "hyperparameters[k]"),
        ({"k": math.nan}, "hyperparameters[k]"),
        ({"k": np.float32("inf")}, "hyperparameters[k]"),
        (["k"], "hyperparameters"),
    ],
)
def test_update_request_bad_hyperparameter_names_it(hypers, field: str) -> None:  # noqa: ANN001
    with pytest.raises(errors.InvalidArgument) as info:
        update_request("r1", {"fine": 1}, None, hypers)
    assert info.value.violations[0].field == field
    with pytest.raises(errors.InvalidArgument):
        next(update_run("r1", None, None, hypers))


def test_update_request_hyperparameters() -> None:
    request = update_request(
        "r1", {"nan_ok_here": math.nan}, None, {"dataset_size": np.int64(5000), "lr": 1e-4}
    )
    h = request.hyperparameters
    assert h["dataset_size"].int_value == 5000 and h["lr"].float_value == 1e-4
    assert set(request.summary) == {"nan_ok_here"}
    client = _Client()
    run = Run(client, INFO)
    run.update(hyperparameters={"batch_size": 8, "amp": True})
    sent = client.sent[0].hyperparameters
    assert sent["batch_size"].int_value == 8 and sent["amp"].bool_value
    assert dict(client.sent[0].summary) == {}
