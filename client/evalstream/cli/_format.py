"""Human-readable output of the command line: tables, verdicts and comparisons."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from evalstream._types import BoxReport, BoxScores, Figure, TextReport
from evalstream._verdicts import Comparison, Verdict


def _fig(f: Figure) -> str:
    return "n/a" if f.value is None else f"{f.value:.4f} {f.band}"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


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


def format_verdict(v: Verdict) -> str:
    """A verdict as a few readable lines."""
    state = v.state.upper() + (f" ({v.severity})" if v.severity else "")
    lines = [f"{state} at step {v.as_of_step}: {v.summary}"]
    numbers = {k: x for k, x in v.evidence.items() if x not in (None, ())}
    if numbers:
        lines.append(
            "evidence: "
            + ", ".join(
                f"{k}={x:.4g}" if isinstance(x, float) else f"{k}={x}" for k, x in numbers.items()
            )
        )
    es = v.early_stopping
    if es.best_step is not None:
        stop = "stop now" if es.should_stop else "keep going"
        lines.append(
            f"best {es.monitor} {es.best_value:.4g} at step {es.best_step} "
            f"({es.evaluations_since_best} evaluations ago): {stop}"
        )
    for c in v.checkpoints:
        lines.append(
            f"checkpoint {c.step} {c.metric}: train {c.train_value} "
            f"val {c.validation_value} -> {c.grade}"
        )
    lines += [f"advice: {a.text}" for a in v.advice]
    lc = v.loss_context
    if lc.get("initial_loss") is not None:
        lines.append(
            f"loss context: start {lc['initial_loss']:.4g} ({lc['initial_band']}), "
            f"final {lc['final_loss']:.4g} ({lc['final_band']}); {lc['caveat']}"
        )
    return "\n".join(lines)


def format_comparison(c: Comparison) -> str:
    """The comparison table; hyperparameters that differ across runs are marked with *."""
    keys = sorted({k for r in c.rows for k in r.hyperparameters})
    metrics = sorted({m for r in c.rows for m in r.best_metrics})
    head = ["run", "model"] + [f"{k}*" if k in c.differing else k for k in keys]
    head += ["final train", "best val", "state"] + metrics

    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.4g}"

    rows = [head] + [
        [r.run_name or r.run_id, r.model]
        + [str(r.hyperparameters.get(k, "-")) for k in keys]
        + [num(r.final_train_loss), num(r.best_validation_loss), r.state]
        + [num(r.best_metrics.get(m)) for m in metrics]
        for r in c.rows
    ]
    out = [_table(rows)]
    for p in c.pairs:
        out.append(
            f"{p.run_a} vs {p.run_b}: changed {', '.join(p.changed) or 'nothing'}"
            + (f"  WARNING: {p.warning}" if p.warning else "")
        )
    out += [f"best {metric}: {rid} ({value:.4g})" for metric, (rid, value) in c.best.items()]
    if c.incomparable:
        out.append("not compared (signatures differ): " + ", ".join(c.incomparable))
    return "\n".join(out)
