"""GetCurves plans: a run's series by step range, downsampled, or paged and assembled whole.

With ``max_points`` > 0 one GetCurves answers (min-max downsampled within the
range). With 0, the plan pages through GetCurves (``page_size`` points per
answer, each far below gRPC's message limit) and glues the pages back into whole
series, so that reading every point works whatever the series' length. For
streaming every point without holding them all, `Run.iter_points` exports them.
"""

from __future__ import annotations

from collections.abc import Sequence

from evalstream._base import Plan, Unary
from evalstream._run_types import SPLIT_NAMES, Series, split_pb
from evalstream.v1 import runs_pb2

#: Points per GetCurves page when reading every point (~12 MB a page, below the 64 MB limit).
PAGE_SIZE = 500_000


def page_points(max_message_bytes: int) -> int:
    """Points to ask per page: `PAGE_SIZE`, or fewer when the client's message limit is low.

    At most half of the limit at 26 bytes a point (step, value, wall time), as the server.

    >>> page_points(64 * 1024 * 1024), page_points(1024 * 1024)
    (500000, 20164)
    """
    return max(1, min(PAGE_SIZE, max_message_bytes // 2 // 26))


def check_range(start_step: int | None, end_step: int | None, max_points: int) -> None:
    """ValueError (or TypeError) naming the argument when a curve read's options are bad.

    >>> check_range(10, 5, 0)
    Traceback (most recent call last):
    ...
    ValueError: start_step 10 is after end_step 5; give start_step <= end_step (both inclusive)
    """
    for name, value in (("start_step", start_step), ("end_step", end_step)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int step or None, got {value!r}")
        if value < 0:
            raise ValueError(f"{name} {value} is negative; steps are >= 0 (None: no bound)")
    if start_step is not None and end_step is not None and start_step > end_step:
        raise ValueError(
            f"start_step {start_step} is after end_step {end_step}; "
            "give start_step <= end_step (both inclusive)"
        )
    if isinstance(max_points, bool) or not isinstance(max_points, int):
        raise TypeError(f"max_points must be an int, got {max_points!r}")
    if max_points < 0 or max_points == 1:
        raise ValueError(
            f"max_points {max_points}: use 0 for every point or >= 2 to downsample "
            "(the first and last points are always kept)"
        )


def _request(
    run_id: str,
    splits: Sequence[str],
    series: Sequence[str],
    start_step: int | None,
    end_step: int | None,
) -> runs_pb2.GetCurvesRequest:
    return runs_pb2.GetCurvesRequest(
        run_id=run_id,
        splits=[split_pb(s) for s in splits],
        series=list(series),
        start_step=start_step,
        end_step=end_step,
    )


def curves(
    run_id: str,
    splits: Sequence[str],
    series: Sequence[str],
    *,
    start_step: int | None = None,
    end_step: int | None = None,
    max_points: int = 0,
    page_size: int = PAGE_SIZE,
) -> Plan[list[Series]]:
    """GetCurves: the series within [start_step, end_step], downsampled or whole.

    ``max_points`` > 0: one call, each series min-max downsampled to at most that
    many points. 0: every point, fetched ``page_size`` points a call and glued.
    """
    check_range(start_step, end_step, max_points)
    request = _request(run_id, splits, series, start_step, end_step)
    if max_points:
        request.max_points = max_points
        reply = yield Unary("GetCurves", request)
        return [Series.from_pb(s) for s in reply.series]
    request.page_size = page_size
    parts: dict[tuple[str, str], _Parts] = {}
    token = ""
    while True:
        page = runs_pb2.GetCurvesRequest()
        page.CopyFrom(request)
        page.page_token = token
        reply = yield Unary("GetCurves", page)
        for s in reply.series:
            parts.setdefault((SPLIT_NAMES.get(s.split, ""), s.name), _Parts()).add(s)
        token = reply.next_page_token
        if not token:
            return [p.series(split, name) for (split, name), p in parts.items()]


class _Parts:
    """The pages of one series, glued: wall times NaN where a page carried none."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.values: list[float] = []
        self.walls: list[float] = []
        self.walls_from = -1  # how many points precede the first page with wall times

    def add(self, s: runs_pb2.Series) -> None:
        if s.wall_times and self.walls_from < 0:
            self.walls_from = len(self.steps)
        if self.walls_from >= 0:
            self.walls.extend(s.wall_times if s.wall_times else [float("nan")] * len(s.steps))
        self.steps.extend(s.steps)
        self.values.extend(s.values)

    def series(self, split: str, name: str) -> Series:
        walls: tuple[float, ...] = ()
        if self.walls_from >= 0:
            walls = (float("nan"),) * self.walls_from + tuple(self.walls)
        return Series(
            split,
            name,
            tuple(self.steps),
            tuple(self.values),
            walls,
            len(self.steps),
        )
