"""Evaluation steps and specimens of evalstream.v1.Runs: ground truth beside prediction.

A mixin of `RunsServicer` (it reads ``self._store``); one specimen across steps and
runs (GetSpecimenHistory, CompareSpecimens) comes from `SpecimenHistoryMixin`.
"""

from __future__ import annotations

import grpc
from evalstream.v1 import runs_pb2

from evalstream_server.analysis.diagnosis import BOX_FLAGS, TEXT_FLAGS, action_items
from evalstream_server.api._convert import SPLIT_NAMES, evaluation_step_to_pb, specimen_to_pb
from evalstream_server.api._paging import MAX_PAGE, checked_page_size
from evalstream_server.api._status import store_abort
from evalstream_server.api.specimen_history import SpecimenHistoryMixin
from evalstream_server.errors import FieldViolation
from evalstream_server.status import invalid
from evalstream_server.store import Store, StoreError

#: The diagnosis flags a specimen can carry (GetSpecimensRequest.flag).
SPECIMEN_FLAGS: tuple[str, ...] = BOX_FLAGS + TEXT_FLAGS


class SpecimensMixin(SpecimenHistoryMixin):
    """The evaluation-step and specimen reads of the Runs service."""

    _store: Store

    def ListEvaluationSteps(  # noqa: N802
        self, request: runs_pb2.ListEvaluationStepsRequest, context: grpc.ServicerContext
    ) -> runs_pb2.ListEvaluationStepsResponse:
        if request.split and request.split not in SPLIT_NAMES:
            invalid(context, [FieldViolation("split", f"unknown split {request.split}")])
        try:
            rows = self._store.evaluation_steps(
                request.run_id, split=SPLIT_NAMES.get(request.split, "")
            )
        except StoreError as exc:
            store_abort(context, exc)
        steps = []
        for r in rows:
            counts: dict[str, int] = {}
            if r.specimens:
                try:
                    counts = self._flag_counts(request.run_id, r.split, r.step)
                except StoreError as exc:
                    store_abort(context, exc)
            steps.append(evaluation_step_to_pb(r, counts, action_items(counts)))
        return runs_pb2.ListEvaluationStepsResponse(steps=steps)

    def _flag_counts(self, run_id: str, split: str, step: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        token = ""
        while True:
            page, token = self._store.specimens(
                run_id, split, step, page_size=MAX_PAGE, page_token=token
            )
            for specimen in page:
                for flag in specimen.flags:
                    counts[flag] = counts.get(flag, 0) + 1
            if not token:
                return counts

    def GetSpecimens(  # noqa: N802
        self, request: runs_pb2.GetSpecimensRequest, context: grpc.ServicerContext
    ) -> runs_pb2.GetSpecimensResponse:
        violations: list[FieldViolation] = []
        if request.split not in SPLIT_NAMES:
            violations.append(FieldViolation("split", "must be train, validation or test"))
        page_size = checked_page_size(request.page_size, "page_size", violations)
        if request.flag and request.flag not in SPECIMEN_FLAGS:
            violations.append(
                FieldViolation(
                    "flag",
                    f"unknown flag {request.flag[:60]!r}; known flags: {', '.join(SPECIMEN_FLAGS)}",
                )
            )
        if violations:
            invalid(context, violations)
        try:
            records, token = self._store.specimens(
                request.run_id,
                SPLIT_NAMES[request.split],
                request.step,
                page_size=page_size,
                page_token=request.page_token,
                flag=request.flag,
            )
        except StoreError as exc:
            store_abort(context, exc)
        return runs_pb2.GetSpecimensResponse(
            specimens=[specimen_to_pb(r) for r in records], next_page_token=token
        )
