"""Human-readable output of the command line: tables, verdicts and comparisons.

Everything is drawn with rich (https://github.com/Textualize/rich). On a terminal the
tables fit its width (long cells wrap, numbers stay whole and right-aligned) and bands,
grades and states are coloured; into a pipe or a file the output is plain text, with no
escape codes and no box drawing, and is not wrapped unless ``COLUMNS`` says a width.
The ``format_*`` functions return that plain text; the commands print the same views
through :func:`_show`, which adds the colour when the output is a terminal.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from rich.console import Group, RenderableType
from rich.text import Text

# The table machinery and the verdict and comparison views live in the library, where
# str() of a Verdict or a Comparison uses them too: one implementation for both.
from evalstream._display import _comparison_view as _comparison_view
from evalstream._display import _console as _console
from evalstream._display import _grid as _grid
from evalstream._display import _num as _num
from evalstream._display import _render as _render
from evalstream._display import _styled as _styled
from evalstream._display import _table as _table
from evalstream._display import _verdict_change_view as _verdict_change_view
from evalstream._display import _verdict_view as _verdict_view
from evalstream._display import format_comparison as format_comparison
from evalstream._display import format_verdict as format_verdict
from evalstream._display import format_verdict_change as format_verdict_change
from evalstream._types import BoxReport, BoxScores, Figure, TextReport


def _fig(f: Figure) -> str:
    return "n/a" if f.value is None else f"{f.value:.4f} {f.band}".rstrip()


def _show(out: TextIO, view: RenderableType | str) -> None:
    """Prints ``view`` on ``out``: coloured and fitted on a terminal, plain into a pipe."""
    if isinstance(view, str):
        view = Text(view)
    console = _console(out)
    if console.is_terminal:
        console.print(view)
    else:
        print(_render(view, width=console.width), file=out, flush=True)


def _jsonable(x: Any) -> Any:
    """``x`` with dataclasses as objects and NaN or infinities as null (strict JSON)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _jsonable(dataclasses.asdict(x))
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def to_json(x: Any, *, lines: bool = False) -> str:
    """The ``--json`` output: indented, or one line for JSON Lines (``runs watch``).

    Example:
        >>> to_json({"loss": float("nan"), "steps": (1, 2)}, lines=True)
        '{"loss": null, "steps": [1, 2]}'
    """
    return json.dumps(_jsonable(x), indent=None if lines else 2, allow_nan=False)


def _report_view(report: BoxReport) -> RenderableType:
    rows = [["IoU", "TP", "FP", "FN", "precision", "recall", "F1", "mean IoU"]]
    rows += [
        [
            f"{s.iou_threshold:g}",
            str(s.tp),
            str(s.fp),
            str(s.fn),
            _fig(s.precision),
            _fig(s.recall),
            _fig(s.f1),
            _fig(s.mean_iou),
        ]
        for s in report.overall
    ]
    out: list[RenderableType] = [
        Text(f"{report.images_total} images, {report.boxes_total} boxes"),
        _grid(rows),
    ]
    notes = sorted(
        {
            f"{name}: {f.reason}"
            for s in report.overall
            for name, f in _figures(s)
            if f.value is None
        }
    )
    out += [Text(f"undefined {n}") for n in notes]
    for c in report.pr_curves:
        if c.best_confidence is None:
            out.append(Text(f"IoU {c.iou_threshold:g}: no predictions, no F1-optimal confidence"))
        else:
            out.append(
                Text(
                    f"IoU {c.iou_threshold:g}: F1-optimal confidence {c.best_confidence:.4f} "
                    f"(F1 {_fig(c.best_f1)}, precision {_fig(c.best_precision)}, "
                    f"recall {_fig(c.best_recall)}); AP {_fig(c.average_precision)}"
                )
            )
    return Group(*out)


def format_report(report: BoxReport) -> str:
    """The human-readable table of `evalstream score-boxes`."""
    return _render(_report_view(report))


def _figures(s: BoxScores) -> Iterable[tuple[str, Figure]]:
    return (
        ("precision", s.precision),
        ("recall", s.recall),
        ("f1", s.f1),
        ("mean_iou", s.mean_iou),
    )


def _text_report_view(report: TextReport) -> RenderableType:
    rows = [["score", "value", "band", "signature"]]
    rows += [
        [s.name, str(s), s.band or s.reason or "-", s.signature or "-"]
        for s in report.overall.values()
    ]
    return Group(Text(f"{report.pairs_total} pairs"), _grid(rows))


def format_text_report(report: TextReport) -> str:
    """The human-readable table of `evalstream score-text`."""
    return _render(_text_report_view(report))
