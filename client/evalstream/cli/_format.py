"""Human-readable output of the command line: tables, verdicts and comparisons."""

from __future__ import annotations

from collections.abc import Iterable

from evalstream._types import BoxReport, BoxScores, Figure, TextReport

# Verdicts and comparisons print as their str() does: the formatting lives with them.
from evalstream._verdicts import format_comparison, format_verdict
from evalstream._verdicts import plain_table as _table

__all__ = ["format_comparison", "format_report", "format_text_report", "format_verdict"]


def _fig(f: Figure) -> str:
    return "n/a" if f.value is None else f"{f.value:.4f} {f.band}"


def format_report(report: BoxReport) -> str:
    """The human-readable table of `evalstream score-boxes`."""
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
    out = [f"{report.images_total} images, {report.boxes_total} boxes", _table(rows)]
    notes = sorted(
        {
            f"{name}: {f.reason}"
            for s in report.overall
            for name, f in _figures(s)
            if f.value is None
        }
    )
    out += [f"undefined {n}" for n in notes]
    for c in report.pr_curves:
        if c.best_confidence is None:
            out.append(f"IoU {c.iou_threshold:g}: no predictions, no F1-optimal confidence")
        else:
            out.append(
                f"IoU {c.iou_threshold:g}: F1-optimal confidence {c.best_confidence:.4f} "
                f"(F1 {_fig(c.best_f1)}, precision {_fig(c.best_precision)}, "
                f"recall {_fig(c.best_recall)}); AP {_fig(c.average_precision)}"
            )
    return "\n".join(out)


def _figures(s: BoxScores) -> Iterable[tuple[str, Figure]]:
    return (
        ("precision", s.precision),
        ("recall", s.recall),
        ("f1", s.f1),
        ("mean_iou", s.mean_iou),
    )


def format_text_report(report: TextReport) -> str:
    """The human-readable table of `evalstream score-text`."""
    rows = [["score", "value", "band", "signature"]]
    rows += [[s.name, str(s), s.band or s.reason, s.signature] for s in report.overall.values()]
    return f"{report.pairs_total} pairs\n" + _table(rows)
