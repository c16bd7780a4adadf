"""Run comparison: the table, what changed between runs, the best run per column.

Follows the product's advice to compare runs one variable at a time: each pair
of runs lists the hyperparameters (and the model) that differ, with a warning
when more than one changed. Columns are the final and best training and
validation loss and each validation checkpoint metric's best value, by its mode
(:func:`evalstream_server.analysis.checkpoints.metric_mode`); deltas are
against a baseline run (default the first). A metric whose signatures differ is
incomparable (sacrebleu's advice): it gets no best run and no delta. Mirrors
``CompareRunsResponse`` of ``protos/evalstream/v1/runs.proto``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from evalstream_server.analysis.checkpoints import metric_mode
from evalstream_server.analysis.verdict import VerdictConfig, verdict_from_series
from evalstream_server.store._types import CheckpointRow, HyperValue, SeriesData

__all__ = [
    "LOSS_COLUMNS",
    "BestRun",
    "Comparison",
    "ComparisonRow",
    "PairChange",
    "RunSummary",
    "compare_runs",
]

#: Loss columns of every row, in display order.
LOSS_COLUMNS: tuple[str, ...] = (
    "final_train_loss",
    "best_train_loss",
    "final_validation_loss",
    "best_validation_loss",
)

MULTIPLE_CHANGES_WARNING = (
    "more than one variable changed: the difference cannot be attributed to one variable"
)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What the comparison needs of one run.

    Attributes:
        run_id: Run id.
        name: Run name.
        model: Model name.
        hyperparameters: Hyperparameters by key.
        series: The run's series (only the loss series on train and validation are read).
        checkpoints: Checkpoint rows (validation rows feed ``best_metrics``).
        verdict_config: The run's stored verdict thresholds.
        state: The run's verdict state when the caller has it (e.g. from a live
            analyzer); None computes it from ``series`` and ``checkpoints``.
    """

    run_id: str
    name: str = ""
    model: str = ""
    hyperparameters: Mapping[str, HyperValue] = field(default_factory=dict)
    series: Sequence[SeriesData] = ()
    checkpoints: Sequence[CheckpointRow] = ()
    verdict_config: Mapping[str, HyperValue] = field(default_factory=dict)
    state: str | None = None


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One run in the table (mirrors ``ComparisonRow``; None = absent)."""

    run_id: str
    run_name: str
    model: str
    hyperparameters: Mapping[str, HyperValue]
    final_train_loss: float | None
    best_train_loss: float | None
    final_validation_loss: float | None
    best_validation_loss: float | None
    best_metrics: Mapping[str, float]
    deltas: Mapping[str, float]
    state: str

    def column(self, name: str) -> float | None:
        """The value of a loss column or a ``best_metrics`` name."""
        if name in LOSS_COLUMNS:
            value: float | None = getattr(self, name)
            return value
        return self.best_metrics.get(name)


@dataclass(frozen=True, slots=True)
class PairChange:
    """What changed between two runs (mirrors ``PairChange``)."""

    run_a: str
    run_b: str
    changed: tuple[str, ...]
    warning: str = ""


@dataclass(frozen=True, slots=True)
class BestRun:
    """The best run of one column (mirrors ``BestRun``)."""

    metric: str
    run_id: str
    value: float


@dataclass(frozen=True, slots=True)
class Comparison:
    """The comparison (mirrors ``CompareRunsResponse``)."""

    rows: tuple[ComparisonRow, ...]
    differing: tuple[str, ...]
    pairs: tuple[PairChange, ...]
    best: tuple[BestRun, ...]
    baseline_run_id: str
    incomparable: tuple[str, ...]


def _loss(series: Sequence[SeriesData], split: str) -> tuple[float | None, float | None]:
    for s in series:
        if s.split == split and s.name == "loss" and len(s.values):
            values = np.asarray(s.values, dtype=np.float64)
            final = float(values[-1])
            finite = values[np.isfinite(values)]
            best = float(finite.min()) if len(finite) else None
            return final, best
    return None, None


def _best_metrics(
    rows: Sequence[CheckpointRow], modes: Mapping[str, str] | None
) -> dict[str, float]:
    best: dict[str, float] = {}
    for row in rows:
        if row.split != "validation":
            continue
        for name, value in row.metrics.items():
            v = float(value)
            if not math.isfinite(v):
                continue
            lower = metric_mode(name, modes) == "min"
            if name not in best or (v < best[name] if lower else v > best[name]):
                best[name] = v
    return best


def _state(run: RunSummary) -> str:
    if run.state is not None:
        return run.state
    train = next((s for s in run.series if s.split == "train" and s.name == "loss"), None)
    val = next((s for s in run.series if s.split == "validation" and s.name == "loss"), None)
    config = VerdictConfig.from_mapping(run.verdict_config)
    return verdict_from_series(train, val, run.checkpoints, config).state


def _differs(a: Mapping[str, HyperValue], b: Mapping[str, HyperValue], key: str) -> bool:
    if (key in a) != (key in b):
        return True
    va, vb = a.get(key), b.get(key)
    # 1 and 1.0 are the same value; True and 1 are not the same flag.
    if isinstance(va, bool) or isinstance(vb, bool):
        return va is not vb
    return va != vb


def compare_runs(
    runs: Sequence[RunSummary],
    *,
    baseline_run_id: str | None = None,
    modes: Mapping[str, str] | None = None,
) -> Comparison:
    """Builds the comparison of ``runs`` (see the module docstring).

    Args:
        runs: Runs in row order.
        baseline_run_id: Run the deltas are computed against; None = the first.
        modes: Explicit ``"min"``/``"max"`` per column or metric name.

    Returns:
        The comparison.

    Raises:
        ValueError: No runs, duplicate run ids, or an unknown baseline.

    Example:
        >>> def run(rid, lr, f1):
        ...     rows = [CheckpointRow("validation", 100, {"f1": f1}, {"f1": "v1"})]
        ...     return RunSummary(rid, hyperparameters={"lr": lr, "bs": 8}, checkpoints=rows,
        ...                       state="healthy")
        >>> c = compare_runs([run("a", 1e-4, 0.70), run("b", 3e-4, 0.75)])
        >>> c.differing, c.pairs[0].changed, c.pairs[0].warning
        (('lr',), ('lr',), '')
        >>> c.best[0].metric, c.best[0].run_id, round(c.rows[1].deltas["f1"], 2)
        ('f1', 'b', 0.05)
    """
    if not runs:
        raise ValueError("no runs to compare")
    ids = [r.run_id for r in runs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"runs compared twice: {', '.join(dupes)}")
    baseline = ids[0] if baseline_run_id in (None, "") else baseline_run_id
    if baseline not in ids:
        raise ValueError(f"baseline run {baseline_run_id!r} is not among the runs compared")

    # Signatures per metric across runs (and across a run's checkpoints).
    signatures: dict[str, set[str]] = {}
    for r in runs:
        for ck in r.checkpoints:
            if ck.split != "validation":
                continue
            for name in ck.metrics:
                signatures.setdefault(name, set()).add(ck.signatures.get(name, ""))
    incomparable = tuple(sorted(n for n, sigs in signatures.items() if len(sigs) > 1))

    base_rows = []
    for r in runs:
        ft, bt = _loss(r.series, "train")
        fv, bv = _loss(r.series, "validation")
        base_rows.append(
            ComparisonRow(
                run_id=r.run_id,
                run_name=r.name,
                model=r.model,
                hyperparameters=dict(r.hyperparameters),
                final_train_loss=ft,
                best_train_loss=bt,
                final_validation_loss=fv,
                best_validation_loss=bv,
                best_metrics=_best_metrics(r.checkpoints, modes),
                deltas={},
                state=_state(r),
            )
        )
    metric_names = sorted({n for row in base_rows for n in row.best_metrics})
    columns = [*LOSS_COLUMNS, *(n for n in metric_names if n not in incomparable)]

    ref = base_rows[ids.index(baseline)]
    rows: list[ComparisonRow] = []
    for crow in base_rows:
        deltas: dict[str, float] = {}
        for col in columns:
            mine, theirs = crow.column(col), ref.column(col)
            if mine is not None and theirs is not None:
                if math.isfinite(mine) and math.isfinite(theirs):
                    deltas[col] = mine - theirs
        rows.append(replace(crow, deltas=deltas))

    best: list[BestRun] = []
    for col in columns:
        lower = metric_mode(col, modes) == "min"
        pick: tuple[float, str] | None = None
        for crow in rows:
            value = crow.column(col)
            if value is None or not math.isfinite(value):
                continue
            if pick is None or (value < pick[0] if lower else value > pick[0]):
                pick = (value, crow.run_id)
        if pick is not None:
            best.append(BestRun(col, pick[1], pick[0]))

    keys = sorted({k for r in runs for k in r.hyperparameters})
    differing = tuple(
        k
        for k in keys
        if any(_differs(runs[0].hyperparameters, r.hyperparameters, k) for r in runs[1:])
    )
    pairs: list[PairChange] = []
    for run_a, run_b in itertools.combinations(runs, 2):
        changed = [k for k in keys if _differs(run_a.hyperparameters, run_b.hyperparameters, k)]
        if run_a.model != run_b.model:
            changed.append("model")
        pairs.append(
            PairChange(
                run_a.run_id,
                run_b.run_id,
                tuple(changed),
                MULTIPLE_CHANGES_WARNING if len(changed) > 1 else "",
            )
        )
    return Comparison(
        rows=tuple(rows),
        differing=differing,
        pairs=tuple(pairs),
        best=tuple(best),
        baseline_run_id=baseline,
        incomparable=incomparable,
    )
