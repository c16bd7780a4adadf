"""Verdicts and comparisons as the client sees them: frozen dataclasses from the protos.

`str()` of a Verdict or a Comparison is the plain-text report the CLI prints
(`evalstream._display`: one implementation for both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evalstream._run_types import hyper_value
from evalstream.v1 import runs_pb2

STATES = {
    runs_pb2.RUN_STATE_INSUFFICIENT_DATA: "insufficient_data",
    runs_pb2.RUN_STATE_HEALTHY: "healthy",
    runs_pb2.RUN_STATE_UNDERFITTING: "underfitting",
    runs_pb2.RUN_STATE_OVERFITTING: "overfitting",
    runs_pb2.RUN_STATE_NOT_LEARNING: "not_learning",
    runs_pb2.RUN_STATE_UNSTABLE: "unstable",
    runs_pb2.RUN_STATE_DIVERGED: "diverged",
}
GRADES = {
    runs_pb2.CHECKPOINT_GRADE_HEALTHY: "healthy",
    runs_pb2.CHECKPOINT_GRADE_OVERFITTING: "overfitting",
    runs_pb2.CHECKPOINT_GRADE_SEVERE_OVERFITTING: "severe_overfitting",
}


def _opt(pb: Any, name: str) -> Any:
    return getattr(pb, name) if pb.HasField(name) else None


@dataclass(frozen=True, slots=True)
class Advice:
    """A recommended action: a machine-readable id and a sentence."""

    action: str
    text: str


@dataclass(frozen=True, slots=True)
class CheckpointGrade:
    """The grade of one metric at one checkpoint (train vs validation gap).

    ``path`` is where the checkpoint of ``step`` was saved (`Run.update`), "" when
    none was recorded.
    """

    step: int
    metric: str
    train_value: float | None
    validation_value: float | None
    gap: float | None
    grade: str
    path: str = ""


@dataclass(frozen=True, slots=True)
class EarlyStopping:
    """Where the monitored quantity was best, and whether to stop now.

    ``best_checkpoint_path`` is where the checkpoint of ``best_step`` was saved
    (`Run.update`), "" when none was recorded at exactly that step.
    """

    monitor: str
    mode: str
    best_step: int | None
    best_value: float | None
    evaluations_since_best: int
    steps_since_best: int
    should_stop: bool
    best_checkpoint_path: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A run's diagnosis: state, evidence, advice, checkpoint grades, early stopping."""

    run_id: str
    state: str
    severity: str
    summary: str
    evidence: Mapping[str, Any]
    advice: tuple[Advice, ...]
    checkpoints: tuple[CheckpointGrade, ...]
    early_stopping: EarlyStopping
    loss_context: Mapping[str, Any]
    as_of_step: int

    def __str__(self) -> str:
        from evalstream._display import format_verdict  # rich, on first print only

        return format_verdict(self)

    @classmethod
    def from_pb(cls, pb: runs_pb2.Verdict) -> Verdict:
        e, es, lc = pb.evidence, pb.early_stopping, pb.loss_context
        evidence: dict[str, Any] = {
            name: _opt(e, name)
            for name in (
                "train_relative_decrease",
                "train_recent_slope",
                "validation_recent_slope",
                "gap",
                "gap_trend",
                "best_validation_step",
                "first_nonfinite_step",
            )
        }
        evidence["spike_steps"] = tuple(e.spike_steps)
        return cls(
            run_id=pb.run_id,
            state=STATES.get(pb.state, ""),
            severity=pb.severity,
            summary=pb.summary,
            evidence=evidence,
            advice=tuple(Advice(a.action, a.text) for a in pb.advice),
            checkpoints=tuple(
                CheckpointGrade(
                    c.step,
                    c.metric,
                    _opt(c, "train_value"),
                    _opt(c, "validation_value"),
                    _opt(c, "gap"),
                    GRADES.get(c.grade, ""),
                    c.path,
                )
                for c in pb.checkpoints
            ),
            early_stopping=EarlyStopping(
                es.monitor,
                es.mode,
                _opt(es, "best_step"),
                _opt(es, "best_value"),
                es.evaluations_since_best,
                es.steps_since_best,
                es.should_stop,
                es.best_checkpoint_path,
            ),
            loss_context={
                "initial_loss": _opt(lc, "initial_loss"),
                "final_loss": _opt(lc, "final_loss"),
                "initial_band": lc.initial_band,
                "final_band": lc.final_band,
                "caveat": lc.caveat,
            },
            as_of_step=pb.as_of_step,
        )


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    """One run in a comparison table."""

    run_id: str
    run_name: str
    model: str
    hyperparameters: Mapping[str, Any]
    final_train_loss: float | None
    best_train_loss: float | None
    final_validation_loss: float | None
    best_validation_loss: float | None
    best_metrics: Mapping[str, float]
    deltas: Mapping[str, float]
    state: str


@dataclass(frozen=True, slots=True)
class PairChange:
    """What changed between two runs; `warning` when more than one variable did."""

    run_a: str
    run_b: str
    changed: tuple[str, ...]
    warning: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """The comparison of runs: table, differing variables, pairs, best runs, baseline."""

    rows: tuple[ComparisonRow, ...]
    differing: tuple[str, ...]
    pairs: tuple[PairChange, ...]
    best: Mapping[str, tuple[str, float]]
    baseline_run_id: str
    incomparable: tuple[str, ...]

    def __str__(self) -> str:
        from evalstream._display import format_comparison  # rich, on first print only

        return format_comparison(self)

    @classmethod
    def from_pb(cls, pb: runs_pb2.CompareRunsResponse) -> Comparison:
        return cls(
            rows=tuple(
                ComparisonRow(
                    run_id=r.run_id,
                    run_name=r.run_name,
                    model=r.model,
                    hyperparameters={k: hyper_value(v) for k, v in r.hyperparameters.items()},
                    final_train_loss=_opt(r, "final_train_loss"),
                    best_train_loss=_opt(r, "best_train_loss"),
                    final_validation_loss=_opt(r, "final_validation_loss"),
                    best_validation_loss=_opt(r, "best_validation_loss"),
                    best_metrics=dict(r.best_metrics),
                    deltas=dict(r.deltas),
                    state=STATES.get(r.state, ""),
                )
                for r in pb.rows
            ),
            differing=tuple(pb.differing),
            pairs=tuple(
                PairChange(p.run_a, p.run_b, tuple(p.changed), p.warning) for p in pb.pairs
            ),
            best={b.metric: (b.run_id, b.value) for b in pb.best},
            baseline_run_id=pb.baseline_run_id,
            incomparable=tuple(pb.incomparable),
        )


def verdict_config_pb(overrides: Mapping[str, Any] | None) -> runs_pb2.VerdictConfig:
    """A VerdictConfig message from keyword overrides (monitor, mode, patience, ...).

    >>> verdict_config_pb({"monitr": "validation/loss"})
    Traceback (most recent call last):
    ...
    ValueError: unknown verdict setting 'monitr'; known: monitor, mode, ...
    """
    known = runs_pb2.VerdictConfig.DESCRIPTOR.fields_by_name
    for name in overrides or {}:
        if name not in known:
            raise ValueError(f"unknown verdict setting {name!r}; known: {', '.join(known)}")
    return runs_pb2.VerdictConfig(**dict(overrides or {}))
