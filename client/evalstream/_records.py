"""What the client reads back about evaluations and projects: frozen dataclasses from the protos.

A leaf beside `_run_types`: projects with their run counts (`ListProjects`), the
steps at which a run was evaluated (`ListEvaluationSteps`) and the specimens of
one step, ground truth beside prediction (`GetSpecimens`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from evalstream._run_types import SPLIT_NAMES
from evalstream._types import Box
from evalstream._verdicts import Advice
from evalstream.v1 import runs_pb2


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    """A project: its runs counted, and the latest update of any of them (epoch seconds)."""

    name: str
    runs: int
    running: int
    updated_at: float

    @classmethod
    def from_pb(cls, pb: runs_pb2.Project) -> ProjectInfo:
        return cls(pb.name, pb.runs, pb.running, pb.updated_at.ToNanoseconds() / 1e9)


@dataclass(frozen=True, slots=True)
class EvaluationStep:
    """One evaluation of a run: its split and step, what was recorded there, and the flags seen.

    `flag_counts` counts the specimens carrying each diagnosis flag (flags no
    specimen carries are absent) and `actions` gives the advice for each flag
    seen, both most frequent flag first.

    Example:
        >>> s = EvaluationStep("validation", 200, 3, {"bbox_f1@0.5": 0.5}, {"loose_box": 1}, {})
        >>> s.flag_counts["loose_box"]
        1
    """

    split: str
    step: int
    specimens: int
    metrics: Mapping[str, float]
    flag_counts: Mapping[str, int]
    actions: Mapping[str, tuple[Advice, ...]]

    @classmethod
    def from_pb(cls, pb: runs_pb2.EvaluationStep) -> EvaluationStep:
        return cls(
            split=SPLIT_NAMES.get(pb.split, ""),
            step=pb.step,
            specimens=pb.specimens,
            metrics=dict(pb.metrics),
            flag_counts=dict(sorted(pb.flag_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            actions={a.flag: tuple(Advice(x.action, x.text) for x in a.advice) for a in pb.actions},
        )


def _box(pb: runs_pb2.SpecimenBox) -> Box:
    return Box(pb.x1, pb.y1, pb.x2, pb.y2, pb.label, pb.confidence)


@dataclass(frozen=True, slots=True)
class Specimen:
    """Ground truth beside prediction for one specimen at one evaluation step.

    Grounding specimens carry boxes (`ground_truth_boxes`, `predicted_boxes`;
    a ground-truth box's confidence means nothing); VQA specimens carry text
    (`reference_texts`, `prediction_text`). `scores` are the specimen's own
    scores by name and `flags` its diagnosis flags, e.g. "missed_detection".
    `image_uri`, `width` and `height` say where the image is and its size in
    pixels, `question` what a VQA answer replies to; empty or 0 when not sent.

    Example:
        >>> s = Specimen("img-1", ground_truth_boxes=(Box(0, 0, 10, 10, "cat"),))
        >>> s.ground_truth_boxes[0].label, s.flags
        ('cat', ())
    """

    specimen_id: str
    prediction_text: str = ""
    reference_texts: tuple[str, ...] = ()
    predicted_boxes: tuple[Box, ...] = ()
    ground_truth_boxes: tuple[Box, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    image_uri: str = ""
    width: int = 0
    height: int = 0
    question: str = ""

    @classmethod
    def from_pb(cls, pb: runs_pb2.Specimen) -> Specimen:
        return cls(
            specimen_id=pb.specimen_id,
            prediction_text=pb.prediction_text,
            reference_texts=tuple(pb.reference_texts),
            predicted_boxes=tuple(_box(b) for b in pb.predicted_boxes),
            ground_truth_boxes=tuple(_box(b) for b in pb.ground_truth_boxes),
            scores=dict(pb.scores),
            flags=tuple(pb.flags),
            image_uri=pb.image_uri,
            width=pb.width,
            height=pb.height,
            question=pb.question,
        )
