"""GetCurves and ExportCurves of evalstream.v1.Runs: a run's series read back, by step range,
downsampled, paged or streamed whole.

A mixin of `RunsServicer` (it reads ``self._store``). Three ways to answer:
``max_points`` > 0 downsamples each series within the range (min-max, spikes
kept); ``page_size`` > 0 pages full resolution across the series (at most
``page_size`` points per answer, a series continuing on the next page);
neither answers every point in one message when they fit (at most
`MAX_PAGE_POINTS`), FAILED_PRECONDITION otherwise. Every answer thus stays far
below gRPC's 64 MB message limit, and a page reads only the chunks it needs.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from evalstream.v1 import runs_pb2

from evalstream_server.api import _curve_pages
from evalstream_server.api._convert import checkpoint_series_to_pb, series_to_pb, split_names
from evalstream_server.api._curve_pages import MAX_PAGE_POINTS
from evalstream_server.api._status import store_abort
from evalstream_server.api.export import export_curves
from evalstream_server.errors import FieldViolation
from evalstream_server.status import abort, invalid
from evalstream_server.store import CheckpointRow, SeriesData, Store, StoreError


def _violations(request: runs_pb2.GetCurvesRequest, splits: list[str]) -> list[FieldViolation]:
    """The request's field violations; fills ``splits`` with the split names."""
    violations: list[FieldViolation] = []
    splits.extend(split_names(request.splits, violations))
    if request.max_points < 0 or request.max_points == 1:
        violations.append(
            FieldViolation("max_points", f"{request.max_points}: use 0 (all) or >= 2")
        )
    if not 0 <= request.page_size <= MAX_PAGE_POINTS:
        violations.append(
            FieldViolation(
                "page_size",
                f"{request.page_size} is not in [1, {MAX_PAGE_POINTS:,}] (0: not paged)",
            )
        )
    if request.max_points > 0 and request.page_size > 0:
        violations.append(
            FieldViolation(
                "max_points",
                f"max_points {request.max_points} with page_size {request.page_size}: "
                "downsample (max_points) or page full resolution (page_size), not both",
            )
        )
    start = request.start_step if request.HasField("start_step") else None
    end = request.end_step if request.HasField("end_step") else None
    if start is not None and start < 0:
        violations.append(FieldViolation("start_step", f"{start} is negative; steps are >= 0"))
    if end is not None and end < 0:
        violations.append(FieldViolation("end_step", f"{end} is negative; steps are >= 0"))
    if start is not None and end is not None and 0 <= end < start:
        violations.append(
            FieldViolation(
                "start_step",
                f"start_step {start} is after end_step {end}; the range is inclusive, "
                "start_step <= end_step",
            )
        )
    return violations


def _in_range(rows: list[CheckpointRow], start: int | None, end: int | None) -> list[CheckpointRow]:
    return [
        r for r in rows if (start is None or r.step >= start) and (end is None or r.step <= end)
    ]


def _cut_last(page: list[SeriesData]) -> tuple[list[SeriesData], tuple[str, str, int]]:
    """The page less its last point, and that point's position (where the next page starts)."""
    last = page[-1]
    position = (last.split, last.name, int(last.steps[-1]))
    n = len(last.steps) - 1
    walls = None if last.wall_times is None else last.wall_times[:n]
    cut = SeriesData(last.split, last.name, last.steps[:n], last.values[:n], walls, n)
    return (page[:-1] + [cut]) if n else page[:-1], position


class CurvesMixin:
    """The curve reads of the Runs service."""

    _store: Store
    _page_points: int  # the most points one answer holds: points_per_answer(limit)

    def GetCurves(
        self, request: runs_pb2.GetCurvesRequest, context: grpc.ServicerContext
    ) -> runs_pb2.GetCurvesResponse:  # noqa: N802
        splits: list[str] = []
        violations = _violations(request, splits)
        if violations:
            invalid(context, violations)
        start = request.start_step if request.HasField("start_step") else None
        end = request.end_step if request.HasField("end_step") else None
        run_id, names = request.run_id, list(request.series)
        key = _curve_pages.fingerprint(run_id, splits, names, start, end, request.page_size)
        next_token = ""
        try:
            if request.max_points > 0:
                if request.page_token:
                    _curve_pages.decode(request.page_token, key)  # never valid: refused
                series = self._store.read_series(
                    run_id, splits=splits, series=names, start_step=start, end_step=end
                )
            else:
                # Fewer than page_size when the server's message limit is lower (a page
                # holds "at most" page_size points; the client glues any sizes).
                size = min(request.page_size or MAX_PAGE_POINTS, self._page_points)
                after = _curve_pages.decode(request.page_token, key) if request.page_token else None
                series = self._store.read_page(
                    run_id,
                    splits=splits,
                    series=names,
                    start_step=start,
                    end_step=end,
                    after=after,
                    limit=size + 1,
                )
                if sum(len(s.steps) for s in series) > size:
                    if not request.page_size:
                        count = self._store.count_points(
                            run_id, splits=splits, series=names, start_step=start, end_step=end
                        )
                        abort(
                            context,
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f"{count:,} points in the range asked for, more than one answer "
                            f"holds ({size:,}): page them (page_size and page_token; "
                            "the client's curves() does), downsample them (max_points), narrow "
                            "the range (start_step/end_step), or export them (ExportCurves: "
                            "run.iter_points() or `evalstream runs export`)",
                        )
                    series, position = _cut_last(series)
                    next_token = _curve_pages.encode(key, position)
            checkpoints = (
                _in_range(self._store.checkpoints(run_id), start, end)
                if not request.page_token
                else []
            )
        except StoreError as exc:
            store_abort(context, exc)
        return runs_pb2.GetCurvesResponse(
            series=[series_to_pb(s, request.max_points) for s in series],
            checkpoint_metrics=checkpoint_series_to_pb(checkpoints, splits),
            next_page_token=next_token,
        )

    def ExportCurves(  # noqa: N802
        self, request: runs_pb2.ExportCurvesRequest, context: grpc.ServicerContext
    ) -> Iterator[runs_pb2.ExportCurvesResponse]:
        """Every point in range, streamed a bounded window at a time (see `api.export`)."""
        return export_curves(self._store, request, context)
