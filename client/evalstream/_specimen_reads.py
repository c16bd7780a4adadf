"""One specimen across evaluation steps and runs: records and sans-I/O plans.

`GetSpecimenHistory` gives one specimen at every evaluation step of a run (the
evaluation-step slider for one image or question); `CompareSpecimens` gives it in
several runs side by side, at one step or at each run's best checkpoint. `Client`
and `AsyncClient` drive the plans below (see `evalstream._base`).

Example (driving a plan by hand):
    >>> from evalstream.v1 import runs_pb2
    >>> plan = specimen_history("r1", "img-7", "validation")
    >>> call = next(plan)
    >>> call.method, call.request.specimen_id
    ('GetSpecimenHistory', 'img-7')
    >>> at = runs_pb2.SpecimenAtStep(step=100, specimen=runs_pb2.Specimen(specimen_id="img-7"))
    >>> reply = runs_pb2.GetSpecimenHistoryResponse(steps=[at])
    >>> try:
    ...     plan.send(reply)
    ... except StopIteration as done:
    ...     print(done.value[0].step, done.value[0].specimen.specimen_id)
    100 img-7
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from evalstream._base import Plan, RunRef, Unary, resolve_run_id, run_id
from evalstream._records import Specimen
from evalstream._run_types import split_pb
from evalstream.v1 import runs_pb2

__all__ = ["RunSpecimen", "SpecimenAtStep", "compare_specimens", "specimen_history"]


@dataclass(frozen=True, slots=True)
class SpecimenAtStep:
    """One specimen as recorded at one evaluation step (mirrors ``SpecimenAtStep``).

    Example:
        >>> SpecimenAtStep(100, Specimen("img-7", scores={"iou": 0.5})).specimen.scores
        {'iou': 0.5}
    """

    step: int
    specimen: Specimen

    @classmethod
    def from_pb(cls, pb: runs_pb2.SpecimenAtStep) -> SpecimenAtStep:
        return cls(step=pb.step, specimen=Specimen.from_pb(pb.specimen))


@dataclass(frozen=True, slots=True)
class RunSpecimen:
    """One run's entry of a specimen comparison (mirrors ``RunSpecimen``).

    `step` is the step read (the requested one, or the run's best checkpoint);
    when `present` is False, `specimen` is None and `note` says why (e.g. the steps
    the run has it at). With ``best=True`` the note says which metric and value
    made the step best.

    Example:
        >>> r = RunSpecimen("r1", "base", 200, False, None, "not recorded at step 200")
        >>> r.present, r.specimen
        (False, None)
    """

    run_id: str
    run_name: str
    step: int
    present: bool
    specimen: Specimen | None
    note: str

    @classmethod
    def from_pb(cls, pb: runs_pb2.RunSpecimen) -> RunSpecimen:
        return cls(
            run_id=pb.run_id,
            run_name=pb.run_name,
            step=pb.step,
            present=pb.present,
            specimen=Specimen.from_pb(pb.specimen) if pb.present else None,
            note=pb.note,
        )


def specimen_history(ref: str, specimen_id: str, split: str) -> Plan[list[SpecimenAtStep]]:
    """GetSpecimenHistory of a run (id or "project/name"): the specimen at every step, by step."""
    request = runs_pb2.GetSpecimenHistoryRequest(split=split_pb(split), specimen_id=specimen_id)
    request.run_id = yield from resolve_run_id(ref)
    reply = yield Unary("GetSpecimenHistory", request)
    return [SpecimenAtStep.from_pb(s) for s in reply.steps]


def compare_specimens(
    runs: Sequence[RunRef], specimen_id: str, split: str, step: int | None, best: bool
) -> Plan[list[RunSpecimen]]:
    """CompareSpecimens: one entry per run, in the order given.

    Raises:
        TypeError: `runs` is a string (one id would be compared character by character).
        ValueError: not exactly one of `step` and `best`.
    """
    if isinstance(runs, str):
        raise TypeError(f"runs: expected a sequence of runs, got the string {runs!r}")
    if (step is None) == (not best):
        raise ValueError("give exactly one of step=N and best=True")
    request = runs_pb2.CompareSpecimensRequest(split=split_pb(split), specimen_id=specimen_id)
    if best:
        request.best = True
    else:
        request.step = int(step)  # type: ignore[arg-type]
    for i, ref in enumerate(runs):
        request.run_ids.append((yield from resolve_run_id(run_id(ref, f"runs[{i}]"))))
    reply = yield Unary("CompareSpecimens", request)
    return [RunSpecimen.from_pb(r) for r in reply.runs]
