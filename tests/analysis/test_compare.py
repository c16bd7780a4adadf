"""compare_runs: table, differing hyperparameters, pair warnings, best runs, deltas, signatures."""

from __future__ import annotations

import numpy as np
import pytest
from evalstream_server.analysis.compare import (
    MULTIPLE_CHANGES_WARNING,
    RunSummary,
    compare_runs,
)
from evalstream_server.store._types import CheckpointRow, SeriesData


def _loss(split: str, values: list[float]) -> SeriesData:
    return SeriesData(
        split, "loss", np.arange(len(values)) * 100, np.array(values), None, len(values)
    )


def _run(
    rid: str,
    *,
    lr: float,
    bs: int,
    model: str = "m",
    f1: float,
    sig: str = "s1",
    train: list[float] | None = None,
    val: list[float] | None = None,
) -> RunSummary:
    series = []
    if train:
        series.append(_loss("train", train))
    if val:
        series.append(_loss("validation", val))
    rows = [
        CheckpointRow("validation", 100, {"f1": f1 - 0.1, "bleu": 0.3}, {"bleu": sig}),
        CheckpointRow("validation", 200, {"f1": f1, "bleu": 0.35}, {"bleu": sig}),
    ]
    return RunSummary(
        rid,
        name=rid.upper(),
        model=model,
        hyperparameters={"lr": lr, "bs": bs},
        series=series,
        checkpoints=rows,
        state="healthy",
    )


def test_compare_runs_table_best_and_deltas() -> None:
    a = _run("a", lr=1e-4, bs=8, f1=0.7, train=[2.0, 1.0, 0.5, 0.6], val=[2.1, 1.2, 0.9, 1.0])
    b = _run("b", lr=3e-4, bs=8, f1=0.8, train=[2.0, 0.8, 0.4, 0.3], val=[2.0, 1.1, 0.8, 0.85])
    c = compare_runs([a, b], baseline_run_id="a")
    ra, rb = c.rows
    assert (ra.final_train_loss, ra.best_train_loss) == (0.6, 0.5)
    assert (rb.final_validation_loss, rb.best_validation_loss) == (0.85, 0.8)
    assert ra.best_metrics == {"f1": 0.7, "bleu": 0.35}
    best = {x.metric: (x.run_id, x.value) for x in c.best}
    assert best["best_validation_loss"] == ("b", 0.8) and best["f1"] == ("b", 0.8)
    assert rb.deltas["f1"] == pytest.approx(0.1) and ra.deltas["f1"] == 0.0
    assert rb.deltas["final_train_loss"] == pytest.approx(-0.3)
    assert c.differing == ("lr",) and c.baseline_run_id == "a"
    assert c.pairs[0].changed == ("lr",) and c.pairs[0].warning == ""


def test_compare_runs_warns_when_more_than_one_variable_changed() -> None:
    a = _run("a", lr=1e-4, bs=8, f1=0.7)
    b = _run("b", lr=3e-4, bs=16, model="other", f1=0.8)
    c = compare_runs([a, b])
    assert c.pairs[0].changed == ("bs", "lr", "model")
    assert c.pairs[0].warning == MULTIPLE_CHANGES_WARNING
    assert c.baseline_run_id == "a"


def test_compare_runs_int_and_float_equal_values_do_not_differ() -> None:
    a = RunSummary("a", hyperparameters={"epochs": 3}, state="healthy")
    b = RunSummary("b", hyperparameters={"epochs": 3.0}, state="healthy")
    assert compare_runs([a, b]).differing == ()


def test_compare_runs_missing_key_differs() -> None:
    a = RunSummary("a", hyperparameters={"wd": 0.1}, state="healthy")
    b = RunSummary("b", state="healthy")
    assert compare_runs([a, b]).pairs[0].changed == ("wd",)


def test_compare_runs_incomparable_signatures_not_compared() -> None:
    a = _run("a", lr=1e-4, bs=8, f1=0.7, sig="tok:13a")
    b = _run("b", lr=1e-4, bs=8, f1=0.8, sig="tok:intl")
    c = compare_runs([a, b])
    assert c.incomparable == ("bleu",)
    assert "bleu" not in {x.metric for x in c.best}
    assert "bleu" not in c.rows[1].deltas and "bleu" in c.rows[1].best_metrics


def test_compare_runs_computes_state_when_missing() -> None:
    steps = np.arange(0, 2000, 10)
    train = SeriesData("train", "loss", steps, 2.0 * np.exp(-steps / 300) + 0.2, None, len(steps))
    c = compare_runs([RunSummary("a", series=[train])])
    assert c.rows[0].state == "healthy"


def test_compare_runs_errors() -> None:
    with pytest.raises(ValueError, match="no runs"):
        compare_runs([])
    with pytest.raises(ValueError, match="twice"):
        compare_runs([RunSummary("a", state=""), RunSummary("a", state="")])
    with pytest.raises(ValueError, match="baseline"):
        compare_runs([RunSummary("a", state="")], baseline_run_id="zz")
