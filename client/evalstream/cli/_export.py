"""``evalstream runs export``: every point of a run into a CSV, JSON Lines or Parquet file.

With ``-o FILE`` the file is written beside its final name and renamed into place
once complete, so an interrupted export never leaves a truncated file under that
name; without it the points go to standard output (CSV and JSON Lines only). A
progress bar shows on standard error when it is a terminal and the export is long.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TextIO

from evalstream._client import Client
from evalstream.cli._format import _show, to_json

SPLIT_CHOICES = ("train", "validation", "test")
#: Estimated points from which an export shows a progress bar (on a terminal).
LONG_EXPORT = 1_000_000


def _step(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"steps are >= 0, got {value}")
    return value


def add_parser(runs: argparse._SubParsersAction) -> None:
    """Adds ``export`` to the ``runs`` commands."""
    ex = runs.add_parser(
        "export",
        help="write every point of a run to CSV, JSON Lines or Parquet",
        description="Writes every stored point of a run's series (all, or some splits, "
        "series and a step range) as CSV (split,series,step,wall_time,value), JSON Lines "
        "or Parquet (needs pip install 'evalstream[parquet]'). Memory stays bounded "
        "however long the run.",
    )
    ex.add_argument("run", help="run id or project/name")
    ex.add_argument(
        "--format", choices=("csv", "jsonl", "parquet"), default="csv", help="default csv"
    )
    ex.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="file to write (replaced once complete); default standard output",
    )
    ex.add_argument(
        "--split", action="append", default=[], choices=SPLIT_CHOICES, help="only this split"
    )
    ex.add_argument(
        "--series", action="append", default=[], metavar="NAME", help="only this series"
    )
    ex.add_argument("--start-step", type=_step, default=None, help="first step, inclusive")
    ex.add_argument("--end-step", type=_step, default=None, help="last step, inclusive")
    ex.add_argument(
        "--json", action="store_true", help='with -o: print {"file": ..., "points": ...}'
    )


def export_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """Runs ``runs export``; the exit code (usage errors raise ValueError: exit 2)."""
    if (
        args.start_step is not None
        and args.end_step is not None
        and args.start_step > args.end_step
    ):
        raise ValueError(
            f"--start-step {args.start_step} is after --end-step {args.end_step} "
            "(the range is inclusive)"
        )
    if args.format == "parquet" and args.output is None:
        raise ValueError("--format parquet needs -o FILE (Parquet is not written to a pipe)")
    options: dict[str, Any] = {
        "format": args.format,
        "splits": args.split,
        "series": args.series,
        "start_step": args.start_step,
        "end_step": args.end_step,
    }
    bar = _Bar(sys.stderr)
    try:
        if args.output is None:
            client.export(args.run, _binary(out), progress=bar, **options)
            return 0
        with _atomic(args.output) as file:
            points = client.export(args.run, file, progress=bar, **options)
    except ImportError as exc:  # pyarrow missing
        print(f"evalstream: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    if args.json:
        print(to_json({"file": str(args.output), "points": points}), file=out)
    else:
        _show(out, f"{points} points written to {args.output}")
    return 0


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[IO[bytes]]:
    """A file beside `path`, renamed to it when the block ends without error (else removed)."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


class _TextSink:
    """A binary file over a text stream (tests pass a StringIO as standard output)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, data: bytes) -> int:
        return self._out.write(data.decode("utf-8"))


def _binary(out: TextIO) -> Any:
    """`out`'s binary buffer (standard output's), else `out` decoding what it is given."""
    buffer = getattr(out, "buffer", None)
    if buffer is not None:
        out.flush()
        return buffer
    return _TextSink(out)


class _Bar:
    """A rich progress bar on `stream`, shown only on a terminal for a long export."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._shown: Any = None
        self._task: Any = None
        self._off = not (hasattr(stream, "isatty") and stream.isatty())

    def __call__(self, done: int, estimated: int) -> None:
        if self._off:
            return
        if self._shown is None:
            if estimated < LONG_EXPORT:
                self._off = True
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TimeRemainingColumn,
            )

            self._shown = Progress(
                "exporting",
                BarColumn(),
                MofNCompleteColumn(),
                "points",
                TimeRemainingColumn(),
                console=Console(file=self._stream),
                transient=True,
            )
            self._shown.start()
            self._task = self._shown.add_task("export", total=estimated)
        self._shown.update(self._task, completed=done, total=estimated)

    def close(self) -> None:
        if self._shown is not None:
            self._shown.stop()
