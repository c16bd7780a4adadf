"""Run records as the client sees them: enums by name, hyperparameters, RunInfo, Series.

A leaf under the client: it imports only the generated stubs, so that the run
handles, the verdicts and the shared request layer can all use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evalstream.v1 import common_pb2, runs_pb2

SPLITS = {
    "train": common_pb2.SPLIT_TRAIN,
    "validation": common_pb2.SPLIT_VALIDATION,
    "test": common_pb2.SPLIT_TEST,
}
SPLIT_NAMES = {v: k for k, v in SPLITS.items()}
TASKS = {
    "": runs_pb2.TASK_UNSPECIFIED,
    "phrase_grounding": runs_pb2.TASK_PHRASE_GROUNDING,
    "vqa": runs_pb2.TASK_VQA,
    "other": runs_pb2.TASK_OTHER,
}
TASK_NAMES = {v: k for k, v in TASKS.items()}
STATUSES = {
    "running": runs_pb2.RUN_STATUS_RUNNING,
    "finished": runs_pb2.RUN_STATUS_FINISHED,
    "failed": runs_pb2.RUN_STATUS_FAILED,
    "killed": runs_pb2.RUN_STATUS_KILLED,
}
STATUS_NAMES = {v: k for k, v in STATUSES.items()}

HyperValue = bool | int | float | str


def split_pb(name: str) -> Any:
    """The Split enum of a split's name ("train", "validation", "test")."""
    try:
        return SPLITS[name]
    except KeyError:
        raise ValueError(f"split {name!r} is not one of {', '.join(SPLITS)}") from None


def hyper_pb(value: HyperValue) -> runs_pb2.HyperValue:
    """A hyperparameter as its proto (bool, int, float or str; TypeError otherwise)."""
    if isinstance(value, bool):
        return runs_pb2.HyperValue(bool_value=value)
    if isinstance(value, int):
        return runs_pb2.HyperValue(int_value=value)
    if isinstance(value, float):
        return runs_pb2.HyperValue(float_value=value)
    if isinstance(value, str):
        return runs_pb2.HyperValue(string_value=value)
    raise TypeError(
        f"hyperparameter values are bool, int, float or str, not {type(value).__name__}"
    )


def hyper_value(pb: runs_pb2.HyperValue) -> HyperValue | None:
    """A hyperparameter from its proto (None when unset)."""
    kind = pb.WhichOneof("kind")
    return None if kind is None else getattr(pb, kind)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a scoring stream records its evaluation: one checkpoint of a run.

    Passed as ``checkpoint=`` to `Client.score_boxes`, `score_text` and their
    streams, it makes the server keep the stream's running figures as that
    step's checkpoint metrics and every image or pair as a specimen
    (`Run.specimens`). `Run.checkpoint(step)` builds one.

    Example:
        >>> Checkpoint("r_0123456789abcdef", 1500).pb().step
        1500
    """

    run_id: str
    step: int
    split: str = "validation"

    def pb(self) -> common_pb2.CheckpointRef:
        """The CheckpointRef every batch of the stream carries."""
        if isinstance(self.step, bool) or not isinstance(self.step, int) or self.step < 0:
            raise ValueError(
                f"checkpoint.step = {self.step!r}: an integer >= 0 (the optimizer step)"
            )
        return common_pb2.CheckpointRef(
            run_id=self.run_id, split=split_pb(self.split), step=self.step
        )


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as the server knows it. Times are seconds since the epoch.

    ``summary`` holds the one-off values kept on the run (`Run.update`);
    ``alert_webhook_count`` counts its alert webhooks (their URLs are never sent back).
    """

    id: str
    project: str
    name: str
    model: str
    task: str
    status: str
    hyperparameters: Mapping[str, HyperValue]
    derived: Mapping[str, HyperValue]
    created_at: float
    updated_at: float
    summary: Mapping[str, HyperValue] = field(default_factory=dict)
    alert_webhook_count: int = 0

    @classmethod
    def from_pb(cls, pb: runs_pb2.Run) -> RunInfo:
        return cls(
            id=pb.id,
            project=pb.project,
            name=pb.name,
            model=pb.model,
            task=TASK_NAMES.get(pb.task, ""),
            status=STATUS_NAMES.get(pb.status, ""),
            hyperparameters={
                k: v for k, p in pb.hyperparameters.items() if (v := hyper_value(p)) is not None
            },
            derived={k: v for k, p in pb.derived.items() if (v := hyper_value(p)) is not None},
            created_at=pb.created_at.ToNanoseconds() / 1e9,
            updated_at=pb.updated_at.ToNanoseconds() / 1e9,
            summary={k: v for k, p in pb.summary.items() if (v := hyper_value(p)) is not None},
            alert_webhook_count=pb.alert_webhook_count,
        )


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a run (possibly downsampled); `total_points` counts its points in the range."""

    split: str
    name: str
    steps: tuple[int, ...]
    values: tuple[float, ...]
    wall_times: tuple[float, ...]
    total_points: int

    @classmethod
    def from_pb(cls, pb: runs_pb2.Series) -> Series:
        return cls(
            SPLIT_NAMES.get(pb.split, ""),
            pb.name,
            tuple(pb.steps),
            tuple(pb.values),
            tuple(pb.wall_times),
            pb.total_points,
        )


@dataclass
class LoggerStats:
    """Counters of a run's loss streamer."""

    points_logged: int = 0
    points_acked: int = 0
    points_dropped: int = 0
    chunks_sent: int = 0
    chunks_resent: int = 0
    chunks_refused: int = 0
    chunks_overloaded: int = 0  # refused for load by the store, then resent
    reconnects: int = 0
    buffer_full_waits: int = 0
