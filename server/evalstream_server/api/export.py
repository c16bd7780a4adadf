"""ExportCurves of evalstream.v1.Runs: every point of a run's series, streamed.

Memory stays bounded whatever the run's size. Each series is read a step window
at a time: the windows are planned from the chunks' extents (`Store.series_chunks`,
no points read) so that one holds about `WINDOW_POINTS` points and never cuts
through a large chunk (which every window it overlaps would read again); a window
is exact on its own, as `Store.read_series` merges the chunks that overlap it in
write order. Each window goes out in messages of at most `MESSAGE_POINTS` points,
bounded in bytes too (CSV and JSON Lines rows are sized by their series name).

The handler is a generator, run by the server's handler pool one message at a
time (`rpc.sync_to_async`): reading and formatting happen there, off the event
loop, and the next message is only made once the previous one was written, so a
slow client holds one message in the server, not the run.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
from evalstream.v1 import runs_pb2

from evalstream_server.api._convert import SPLIT_ENUMS, split_names
from evalstream_server.api._export_text import csv_rows, jsonl_rows
from evalstream_server.api._status import store_abort
from evalstream_server.errors import FieldViolation
from evalstream_server.status import invalid
from evalstream_server.store import SeriesData, Store, StoreError

#: Points a window aims at (it may hold more where chunks overlap).
WINDOW_POINTS = 1 << 19
#: The most points in one message.
MESSAGE_POINTS = 1 << 16
#: The most text bytes a CSV or JSON Lines message aims at.
MESSAGE_BYTES = 4 << 20
#: A chunk this large (in points) never straddles a window boundary.
_HEAVY = WINDOW_POINTS // 16
#: The longest row text but the series name: step (19 digits), two shortest
#: doubles (24 bytes each) and JSON's keys.
_ROW_BYTES = 130

CSV_HEADER = b"split,series,step,wall_time,value\n"
_FORMATS = {
    runs_pb2.EXPORT_FORMAT_UNSPECIFIED: "points",
    runs_pb2.EXPORT_FORMAT_POINTS: "points",
    runs_pb2.EXPORT_FORMAT_CSV: "csv",
    runs_pb2.EXPORT_FORMAT_JSONL: "jsonl",
}


def plan_windows(chunks: np.ndarray, lo: int, hi: int, target: int) -> list[tuple[int, int]]:
    """Step windows [a, b] covering [lo, hi], each overlapping chunks of about `target` points.

    `chunks` holds rows (min step, max step, n) sorted by min step. A window closes
    once it has `target` points and the next chunk starts after its end; its end is
    the furthest max step of the heavy chunks (>= target / 16 points) in it, so a
    heavy chunk is read by one window only, and a light one (a small rewrite
    spanning many steps) may be read again by the next.

    >>> c = np.array([[0, 9, 10], [10, 19, 10], [20, 29, 10]])
    >>> plan_windows(c, 0, 2**63 - 1, 20)
    [(0, 19), (20, 9223372036854775807)]
    >>> plan_windows(np.array([[0, 99, 100], [5, 5, 1]]), 0, 200, 10)  # overlapping: one window
    [(0, 200)]
    """
    heavy = max(1, target // 16)
    windows: list[tuple[int, int]] = []
    start = lo
    i = 0
    rows = chunks.tolist()
    while i < len(rows):
        points = 0
        end = start
        while i < len(rows):
            mn, mx, n = rows[i]
            if points >= target and mn > end:
                break
            points += n
            end = max(end, mx if n >= heavy else mn)
            i += 1
        if i >= len(rows) or end >= hi:
            break
        windows.append((start, end))
        start = end + 1
    windows.append((start, hi))
    return windows


class _Request:
    """An ExportCurvesRequest, checked."""

    def __init__(self, request: runs_pb2.ExportCurvesRequest, context: grpc.ServicerContext):
        violations: list[FieldViolation] = []
        self.splits = split_names(request.splits, violations)
        if request.format not in _FORMATS:
            violations.append(
                FieldViolation(
                    "format", f"unknown format {request.format}: use POINTS, CSV or JSONL"
                )
            )
        if violations:
            invalid(context, violations)
        self.run_id = request.run_id
        self.series = list(request.series)
        self.start = request.start_step if request.HasField("start_step") else None
        self.end = request.end_step if request.HasField("end_step") else None
        self.format = _FORMATS[request.format]


def export_curves(
    store: Store, request: runs_pb2.ExportCurvesRequest, context: grpc.ServicerContext
) -> Iterator[runs_pb2.ExportCurvesResponse]:
    """The messages of one export: the estimate (and CSV header), then the points."""
    req = _Request(request, context)
    try:
        plans = store.series_chunks(
            req.run_id,
            splits=req.splits,
            series=req.series,
            start_step=req.start,
            end_step=req.end,
        )
    except StoreError as exc:
        store_abort(context, exc)
    estimate = sum(int(p.chunks[:, 2].sum()) for p in plans)
    yield runs_pb2.ExportCurvesResponse(
        estimated_points=estimate, text=CSV_HEADER if req.format == "csv" else b""
    )
    lo = 0 if req.start is None else req.start
    hi = 2**63 - 1 if req.end is None else req.end
    for plan in plans:
        for a, b in plan_windows(plan.chunks, lo, hi, WINDOW_POINTS):
            if not context.is_active():
                return
            try:
                found = store.read_series(
                    req.run_id, splits=[plan.split], series=[plan.name], start_step=a, end_step=b
                )
            except StoreError as exc:
                store_abort(context, exc)
            for data in found:
                yield from _messages(data, req.format)


def _messages(data: SeriesData, fmt: str) -> Iterator[runs_pb2.ExportCurvesResponse]:
    """One window of a series as messages of at most MESSAGE_POINTS points (and ~MESSAGE_BYTES)."""
    n = len(data.steps)
    per = MESSAGE_POINTS
    if fmt != "points":
        # A name costs at most twice its bytes in CSV (quotes doubled), six in JSON (\u00XX).
        name_bytes = len(data.name.encode()) * (2 if fmt == "csv" else 6)
        per = max(1024, min(per, MESSAGE_BYTES // (_ROW_BYTES + name_bytes)))
    for at in range(0, n, per):
        cut = slice(at, min(n, at + per))
        steps, values = data.steps[cut], data.values[cut]
        walls = None if data.wall_times is None else data.wall_times[cut]
        count = len(steps)
        if fmt == "points":
            yield runs_pb2.ExportCurvesResponse(
                points=count,
                series=[
                    runs_pb2.Series(
                        split=SPLIT_ENUMS[data.split],
                        name=data.name,
                        steps=steps.tolist(),
                        values=values.tolist(),
                        wall_times=[] if walls is None else walls.tolist(),
                        total_points=count,
                    )
                ],
            )
        else:
            rows = csv_rows if fmt == "csv" else jsonl_rows
            text = rows(data.split, data.name, steps, values, walls)
            yield runs_pb2.ExportCurvesResponse(points=count, text=text)
