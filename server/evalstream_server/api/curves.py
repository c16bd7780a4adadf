"""GetCurves and ExportCurves of evalstream.v1.Runs: a run's series read back.

A mixin of `RunsServicer` (it reads ``self._store``).
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from evalstream.v1 import runs_pb2

from evalstream_server.api._convert import SPLIT_NAMES, checkpoint_series_to_pb, series_to_pb
from evalstream_server.api._status import store_abort
from evalstream_server.api.export import export_curves
from evalstream_server.errors import FieldViolation
from evalstream_server.status import invalid
from evalstream_server.store import Store, StoreError


class CurvesMixin:
    """The curve reads of the Runs service."""

    _store: Store

    def GetCurves(
        self, request: runs_pb2.GetCurvesRequest, context: grpc.ServicerContext
    ) -> runs_pb2.GetCurvesResponse:  # noqa: N802
        violations = []
        splits = []
        for i, split in enumerate(request.splits):
            if split not in SPLIT_NAMES:
                violations.append(FieldViolation(f"splits[{i}]", f"unknown split {split}"))
            else:
                splits.append(SPLIT_NAMES[split])
        if request.max_points < 0 or request.max_points == 1:
            violations.append(
                FieldViolation("max_points", f"{request.max_points}: use 0 (all) or >= 2")
            )
        if violations:
            invalid(context, violations)
        try:
            series = self._store.read_series(
                request.run_id, splits=splits, series=list(request.series)
            )
            checkpoints = self._store.checkpoints(request.run_id)
        except StoreError as exc:
            store_abort(context, exc)
        return runs_pb2.GetCurvesResponse(
            series=[series_to_pb(s, request.max_points) for s in series],
            checkpoint_metrics=checkpoint_series_to_pb(checkpoints, splits),
        )

    def ExportCurves(  # noqa: N802
        self, request: runs_pb2.ExportCurvesRequest, context: grpc.ServicerContext
    ) -> Iterator[runs_pb2.ExportCurvesResponse]:
        """Every point in range, streamed a bounded window at a time (see `api.export`)."""
        return export_curves(self._store, request, context)
