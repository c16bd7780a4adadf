"""ExportCurves on the client: every point of a run, streamed, in bounded memory.

The stream operation, the decoding of its messages into `Point` items and the
copy of text messages into a file, without I/O (as `_base`); then the methods
`Client` and `AsyncClient` get from `ClientExport` and `AsyncClientExport`, which
run the stream with their client's own driver (``_stream``). The server formats
CSV and JSON Lines itself (this client has no numpy), so writing a file is a copy
of bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol

from evalstream._base import Stream
from evalstream._curves import check_range
from evalstream._run_types import SPLIT_NAMES, split_pb
from evalstream.v1 import runs_pb2

#: Format names -> the wire format; "points" is `iter_points`', the others are text.
FORMATS = {
    "points": runs_pb2.EXPORT_FORMAT_POINTS,
    "csv": runs_pb2.EXPORT_FORMAT_CSV,
    "jsonl": runs_pb2.EXPORT_FORMAT_JSONL,
}

#: Called as ``progress(points_done, points_estimated)`` after each message.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Point:
    """One stored point of a series, as `Run.iter_points` yields it.

    ``wall_time`` is seconds since the epoch, None when the point was logged
    without one; ``value`` may be NaN or infinite, as logged.

    Example:
        >>> Point("train", "loss", 10, 0.5, None)
        Point(split='train', series='loss', step=10, value=0.5, wall_time=None)
    """

    split: str
    series: str
    step: int
    value: float
    wall_time: float | None = None


def export_stream(
    run_id: str,
    fmt: str,
    *,
    splits: Sequence[str] = (),
    series: Sequence[str] = (),
    start_step: int | None = None,
    end_step: int | None = None,
) -> Stream[runs_pb2.ExportCurvesResponse]:
    """The ExportCurves stream of a run id in format `fmt` (a `FORMATS` name); replies undecoded.

    Example:
        >>> op = export_stream("r1", "csv", splits=["train"], end_step=9)
        >>> op.method, op.request.splits, op.request.HasField("start_step"), op.request.end_step
        ('ExportCurves', [1], False, 9)
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    check_range(start_step, end_step, 0)
    request = runs_pb2.ExportCurvesRequest(
        run_id=run_id,
        splits=[split_pb(s) for s in splits],
        series=list(series),
        start_step=start_step,
        end_step=end_step,
        format=FORMATS[fmt],
    )
    return Stream("ExportCurves", request, _same)


def _same(reply: runs_pb2.ExportCurvesResponse) -> runs_pb2.ExportCurvesResponse:
    return reply


def file_format(name: str) -> str:
    """`name` when `Client.export` writes it ("csv", "jsonl", "parquet"); ValueError otherwise."""
    if name not in ("csv", "jsonl", "parquet"):
        raise ValueError(f"format {name!r} is not one of csv, jsonl, parquet")
    return name


def points(reply: runs_pb2.ExportCurvesResponse) -> list[Point]:
    """The points of one EXPORT_FORMAT_POINTS message, in order.

    Example:
        >>> from evalstream.v1 import common_pb2
        >>> piece = runs_pb2.Series(split=common_pb2.SPLIT_TRAIN, name="loss", steps=[1, 2],
        ...                         values=[0.5, 0.25], wall_times=[10.0, float("nan")])
        >>> points(runs_pb2.ExportCurvesResponse(points=2, series=[piece]))[1]
        Point(split='train', series='loss', step=2, value=0.25, wall_time=None)
    """
    out: list[Point] = []
    for s in reply.series:
        split = SPLIT_NAMES.get(s.split, "")
        if s.wall_times:
            out += [
                Point(split, s.name, step, value, None if wall != wall else wall)
                for step, value, wall in zip(s.steps, s.values, s.wall_times, strict=True)
            ]
        else:
            pairs = zip(s.steps, s.values, strict=True)
            out += [Point(split, s.name, step, value) for step, value in pairs]
    return out


def iter_points(replies: Iterable[runs_pb2.ExportCurvesResponse]) -> Iterator[Point]:
    """Each point of an EXPORT_FORMAT_POINTS stream, one message decoded at a time."""
    for reply in replies:
        yield from points(reply)


class TextWriter:
    """Copies the replies of a CSV or JSON Lines stream into `file`, one at a time,
    calling `progress` after each; `done` counts the points written."""

    def __init__(self, file: IO[bytes], progress: Progress | None = None) -> None:
        self._file = file
        self._progress = progress
        self.done = 0
        self._estimate = 0

    def add(self, reply: runs_pb2.ExportCurvesResponse) -> None:
        if reply.estimated_points:
            self._estimate = reply.estimated_points
        if reply.text:
            self._file.write(reply.text)
        self._count(reply.points)

    def _count(self, n: int) -> None:
        self.done += n
        if self._progress is not None:
            self._progress(self.done, max(self._estimate, self.done))

    def close(self) -> None:
        """Nothing to finish: every reply was written as it came."""


class Sink(Protocol):
    """Where an export's replies go: `add` each, then `close`; `done` counts the points."""

    done: int

    def add(self, reply: runs_pb2.ExportCurvesResponse) -> None: ...

    def close(self) -> None: ...


def sink(fmt: str, file: IO[bytes], progress: Progress | None) -> Sink:
    """The writer of a `file_format` into `file` (Parquet needs the ``parquet`` extra)."""
    if fmt == "parquet":
        from evalstream._parquet import ParquetSink  # imports pyarrow: only when asked

        return ParquetSink(file, progress)
    return TextWriter(file, progress)


def _wire(fmt: str) -> str:
    """The stream format `fmt` is written from: Parquet from points."""
    return "points" if fmt == "parquet" else fmt


class ClientExport:
    """`Client`'s export methods (a mixin: it runs them with the client's `_stream`)."""

    _stream: Any
    run_id: Any

    def iter_points(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> Iterator[Point]:
        """Every stored point of the run's series (filtered, steps in [start_step, end_step]).

        Lazily, a message at a time: memory stays bounded however long the run.
        Series come by split then name, each by ascending step. `run_id` may be
        ``"project/name"``.
        """
        return iter_points(
            self._stream(
                export_stream,
                self.run_id(run_id),
                "points",
                splits=splits,
                series=series,
                start_step=start_step,
                end_step=end_step,
            )
        )

    def export(
        self,
        run_id: str,
        file: IO[bytes],
        *,
        format: str = "csv",  # noqa: A002 - the CLI's --format
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Writes every point of the run's series to a binary file: CSV, JSON Lines or Parquet.

        The server formats CSV and JSON Lines (see ExportCurves in the services
        reference); Parquet is written here with pyarrow (``pip install
        'evalstream[parquet]'``) in row groups. Memory stays bounded either way.
        `progress(done, estimated)` is called after each message. Returns the
        points written.
        """
        op = export_stream(
            self.run_id(run_id),
            _wire(file_format(format)),
            splits=splits,
            series=series,
            start_step=start_step,
            end_step=end_step,
        )
        writer = sink(format, file, progress)
        for reply in self._stream(lambda: op):
            writer.add(reply)
        writer.close()
        return writer.done


class AsyncClientExport:
    """`AsyncClient`'s export methods (a mixin, as `ClientExport`)."""

    _stream: Any
    run_id: Any

    async def iter_points(
        self,
        run_id: str,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> AsyncIterator[Point]:
        """Async twin of `Client.iter_points`: an async iterator of points."""
        op = export_stream(
            await self.run_id(run_id),
            "points",
            splits=splits,
            series=series,
            start_step=start_step,
            end_step=end_step,
        )
        async for reply in self._stream(lambda: op):
            for point in points(reply):
                yield point

    async def export(
        self,
        run_id: str,
        file: IO[bytes],
        *,
        format: str = "csv",  # noqa: A002 - the CLI's --format
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Async twin of `Client.export` (the file is written on the event loop's thread)."""
        op = export_stream(
            await self.run_id(run_id),
            _wire(file_format(format)),
            splits=splits,
            series=series,
            start_step=start_step,
            end_step=end_step,
        )
        writer = sink(format, file, progress)
        async for reply in self._stream(lambda: op):
            writer.add(reply)
        writer.close()
        return writer.done


class RunExport:
    """`Run`'s export method (a mixin: it reads through the run's client)."""

    _client: Any
    id: Any

    def iter_points(
        self,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> Iterator[Point]:
        """Every stored point, lazily, by split, series and step (see `Client.iter_points`)."""
        return self._client.iter_points(  # type: ignore[no-any-return]
            self.id, splits=splits, series=series, start_step=start_step, end_step=end_step
        )


class AsyncRunExport:
    """`AsyncRun`'s export method (a mixin, as `RunExport`)."""

    _client: Any
    id: Any

    def iter_points(
        self,
        *,
        splits: Sequence[str] = (),
        series: Sequence[str] = (),
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> Any:
        """Async twin of `Run.iter_points`: an async iterator of points."""
        return self._client.iter_points(
            self.id, splits=splits, series=series, start_step=start_step, end_step=end_step
        )
