"""``evalstream runs plot``: a picture of runs' curves, a thin wrapper of `evalstream.plot`.

matplotlib is imported only when the command runs (the thin client has none: the
command then says how to install it). The file format comes from the ``-o``
suffix, checked before any call to the server.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import TextIO

from evalstream._client import Client
from evalstream.cli._inputs import InputError

_SUFFIXES = (".png", ".svg", ".pdf")


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    try:
        size = (int(width), int(height))
    except ValueError:
        size = (0, 0)
    if not sep or min(size) < 100:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT in pixels, each >= 100, e.g. 1000x700; got {text!r}"
        )
    return size


def add_parser(runs: argparse._SubParsersAction) -> None:
    """Adds ``plot`` to the ``runs`` commands."""
    p = runs.add_parser(
        "plot",
        help="draw runs' loss curves, learning rate and checkpoint metrics to PNG, SVG or PDF",
        description="Draws training loss (orange, every step) and validation loss (blue, "
        "every evaluation), the learning rate and the checkpoint metrics of one run or "
        "several overlaid, with each run's verdict in the title and its best checkpoint "
        "marked. Needs matplotlib: pip install 'evalstream[plot]'.",
    )
    p.add_argument("runs", nargs="+", help="run ids or project/name (several: overlaid)")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="file to write; its suffix (.png, .svg, .pdf) is the format",
    )
    p.add_argument("--log-scale", action="store_true", help="loss on a logarithmic axis")
    p.add_argument("--title", default=None, help="figure title (default the runs' names)")
    p.add_argument(
        "--size",
        type=_size,
        default=None,
        metavar="WxH",
        help="figure size in pixels at 100 dpi (default 1000x700, 170 px taller for each "
        "row of metric panels beyond the first); a size given is kept, and metric panels "
        "that do not fit are left out and named under the figure; curves are read with "
        "two points per pixel column",
    )


def plot_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """Writes the figure to ``args.output``; exit 2 on a bad suffix or without matplotlib."""
    suffix = args.output.suffix.lower()
    if suffix not in _SUFFIXES:
        raise InputError(
            f"-o {args.output}: the format comes from the suffix; use "
            f"{', '.join(_SUFFIXES[:-1])} or {_SUFFIXES[-1]} (got {suffix or 'none'!r})"
        )
    try:
        plot = importlib.import_module("evalstream.plot")  # matplotlib, only now
    except ImportError as exc:
        print(f"evalstream: {exc}", file=sys.stderr)
        return 2
    fig = plot.plot_runs(
        client, args.runs, log_scale=args.log_scale, title=args.title, size=args.size
    )
    fig.savefig(args.output, format=plot.figure_format(args.output))
    print(f"wrote {args.output}", file=out)
    return 0
