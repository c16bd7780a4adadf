"""Parquet files of an export, written with pyarrow (the optional ``parquet`` extra).

Columns: split and series (dictionary-encoded strings), step (int64), wall_time
(float64, null when the point was logged without one) and value (float64, NaN and
infinities as logged). Points are gathered from EXPORT_FORMAT_POINTS messages into
row groups of `ROW_GROUP` rows, each written as soon as it is full, so that memory
holds one row group whatever the run's size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from evalstream._run_types import SPLIT_NAMES
from evalstream.v1 import runs_pb2

#: Rows per row group.
ROW_GROUP = 1 << 20
INSTALL_HINT = "pip install 'evalstream[parquet]'"


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(f"Parquet export needs pyarrow: {INSTALL_HINT}") from exc
    return pa, pq


class ParquetSink:
    """Writes the points of an EXPORT_FORMAT_POINTS stream to `file` as Parquet.

    A sink as `_export.TextWriter` is (`add` each reply, then `close`; `done`
    counts the points), calling ``progress(done, estimated)`` after each reply.
    """

    def __init__(self, file: IO[bytes], progress: Callable[[int, int], None] | None = None) -> None:
        self._progress = progress
        self.done = 0
        self._estimate = 0
        self._pa, pq = _pyarrow()
        pa = self._pa
        self._names = pa.dictionary(pa.int32(), pa.string())
        self._schema = pa.schema(
            [
                pa.field("split", self._names, nullable=False),
                pa.field("series", self._names, nullable=False),
                pa.field("step", pa.int64(), nullable=False),
                pa.field("wall_time", pa.float64()),
                pa.field("value", pa.float64(), nullable=False),
            ]
        )
        self._writer = pq.ParquetWriter(file, self._schema)
        self._batches: list[Any] = []
        self._rows = 0

    def add(self, reply: runs_pb2.ExportCurvesResponse) -> None:
        pa = self._pa
        if reply.estimated_points:
            self._estimate = reply.estimated_points
        for s in reply.series:
            n = len(s.steps)
            if not n:
                continue
            zeros = pa.repeat(pa.scalar(0, pa.int32()), n)
            split = SPLIT_NAMES.get(s.split, "")
            walls = (
                pa.array(s.wall_times, pa.float64(), from_pandas=True)  # NaN: not logged
                if s.wall_times
                else pa.nulls(n, pa.float64())
            )
            self._batches.append(
                pa.record_batch(
                    [
                        pa.DictionaryArray.from_arrays(zeros, pa.array([split])),
                        pa.DictionaryArray.from_arrays(zeros, pa.array([s.name])),
                        pa.array(s.steps, pa.int64()),
                        walls,
                        pa.array(s.values, pa.float64()),
                    ],
                    schema=self._schema,
                )
            )
            self._rows += n
        if self._rows >= ROW_GROUP:
            self._flush()
        self.done += reply.points
        if self._progress is not None:
            self._progress(self.done, max(self._estimate, self.done))

    def _flush(self) -> None:
        if self._batches:
            self._writer.write_table(
                self._pa.Table.from_batches(self._batches, self._schema), row_group_size=ROW_GROUP
            )
        self._batches = []
        self._rows = 0

    def close(self) -> None:
        """Writes the last row group and the file's footer."""
        self._flush()
        self._writer.close()
