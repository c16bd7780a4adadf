"""``evalstream runs specimen`` and ``evalstream runs compare-specimen``: one specimen followed.

``runs specimen RUN SPECIMEN`` prints the specimen's ground truth once (as ``runs
specimens`` prints it: boxes as ``label [x1 y1 x2 y2]``, VQA references as given),
then one row per evaluation step: its flags, scores, and for boxes how many were
predicted (with the boxes), for text the answer. ``runs compare-specimen A B ...``
prints one row per run, at one step (``--step``) or at each run's best checkpoint
(``--best``), with a note where a run lacks the specimen there.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TextIO

from rich.console import Group, RenderableType
from rich.text import Text

from evalstream._client import Client
from evalstream._records import Specimen
from evalstream._specimen_reads import RunSpecimen, SpecimenAtStep
from evalstream.cli._format import _grid, _render, _show, to_json
from evalstream.cli._specimens import SPLIT_CHOICES, format_box, format_image

_SCORES_HELP = (
    "comma-separated score columns, e.g. f1@0.75,mean_iou@0.75 (default: every score "
    "at the lowest IoU threshold; --json has them all)"
)


def add_parsers(runs: argparse._SubParsersAction) -> None:
    """Adds ``specimen`` and ``compare-specimen`` to the ``runs`` commands."""
    sh = runs.add_parser(
        "specimen", help="one specimen at every evaluation step of a run: scores, flags, answers"
    )
    sh.add_argument("run", help="run id or project/name")
    sh.add_argument("specimen", help="specimen id (image_id or specimen_id it was scored with)")
    sh.add_argument(
        "--split", default="validation", choices=SPLIT_CHOICES, help="default validation"
    )
    sh.add_argument("--scores", default=None, help=_SCORES_HELP)
    sh.add_argument("--json", action="store_true", help="print the steps as JSON")
    sc = runs.add_parser(
        "compare-specimen",
        help="one specimen in 2-20 runs side by side, at a step or at each run's best checkpoint",
    )
    sc.add_argument("runs", nargs="+", help="run ids or project/name (2-20)")
    sc.add_argument("--specimen", required=True, help="specimen id")
    at = sc.add_mutually_exclusive_group(required=True)
    at.add_argument("--step", type=int, default=None, help="this evaluation step in every run")
    at.add_argument(
        "--best",
        action="store_true",
        help="each run's best checkpoint, as its verdict picks it (its monitor's best)",
    )
    sc.add_argument(
        "--split", default="validation", choices=SPLIT_CHOICES, help="default validation"
    )
    sc.add_argument("--scores", default=None, help=_SCORES_HELP)
    sc.add_argument("--json", action="store_true", help="print the runs as JSON")


def _score_names(specimens: Sequence[Specimen], chosen: str | None) -> list[str]:
    """The score columns: `chosen` (comma-separated), else those at the lowest threshold.

    Box scores come at every IoU threshold (``f1@0.5``, ``f1@0.75``, ...); a row per
    step shows the lowest threshold's unless ``--scores`` names others.

    Example:
        >>> s = Specimen("a", scores={"f1@0.5": 1, "f1@0.75": 0, "iou@0.5": 1})
        >>> _score_names([s], None), _score_names([s], "f1@0.75")
        (['f1@0.5', 'iou@0.5'], ['f1@0.75'])
    """
    if chosen:
        return [n.strip() for n in chosen.split(",") if n.strip()]
    names = sorted({n for s in specimens for n in s.scores})

    def threshold(name: str) -> float:
        try:
            return float(name.rpartition("@")[2]) if "@" in name else -1.0
        except ValueError:
            return -1.0

    lowest = min((threshold(n) for n in names if "@" in n), default=None)
    return [n for n in names if "@" not in n or threshold(n) == lowest]


def _scores(s: Specimen | None, names: Sequence[str]) -> list[str]:
    if s is None:
        return ["-"] * len(names)
    return [f"{s.scores[n]:.4g}" if n in s.scores else "-" for n in names]


def _is_boxes(s: Specimen) -> bool:
    return bool(s.ground_truth_boxes or s.predicted_boxes)


def _prediction(s: Specimen) -> str:
    """For boxes: how many were predicted, and the boxes; for text: the answer."""
    if not _is_boxes(s):
        return s.prediction_text or "-"
    boxes = "; ".join(format_box(b, confidence=True) for b in s.predicted_boxes)
    head = f"predicted {len(s.predicted_boxes)}, true {len(s.ground_truth_boxes)}"
    return f"{head}: {boxes}" if boxes else head


def _details(s: Specimen) -> list[str]:
    """The lines said once about a specimen: image, question, ground truth."""
    lines = []
    if image := format_image(s):
        lines.append(f"image: {image}")
    if s.question:
        lines.append(f"question: {s.question}")
    if _is_boxes(s):
        truth = "; ".join(format_box(b, confidence=False) for b in s.ground_truth_boxes)
        lines.append(f"ground truth: {truth or '-'}")
    else:
        lines.append(f"references: {' | '.join(s.reference_texts) or '-'}")
    return lines


def _history_view(
    run: str,
    specimen_id: str,
    split: str,
    history: Sequence[SpecimenAtStep],
    scores: str | None = None,
) -> RenderableType:
    n = len(history)
    head = f"specimen {specimen_id} of run {run}, {split}: {n} step{'' if n == 1 else 's'}"
    last = history[-1].specimen
    names = _score_names([h.specimen for h in history], scores)
    column = "prediction" if _is_boxes(last) else "answer"
    rows = [["step", "flags", *names, column]]
    rows += [
        [
            str(h.step),
            ", ".join(h.specimen.flags) or "-",
            *_scores(h.specimen, names),
            _prediction(h.specimen),
        ]
        for h in history
    ]
    lines = [Text(head), *(Text(line) for line in _details(last))]
    return Group(*lines, Text(""), _grid(rows))


def format_history(
    run: str,
    specimen_id: str,
    split: str,
    history: Sequence[SpecimenAtStep],
    scores: str | None = None,
) -> str:
    """The text of `evalstream runs specimen`."""
    return _render(_history_view(run, specimen_id, split, history, scores))


def _comparison_view(
    specimen_id: str, split: str, entries: Sequence[RunSpecimen], scores: str | None = None
) -> RenderableType:
    found = [e.specimen for e in entries if e.specimen is not None]
    shown = found[0] if found else None
    names = _score_names(found, scores)
    column = "prediction" if shown is not None and _is_boxes(shown) else "answer"
    rows = [["run", "step", "flags", *names, column, "note"]]
    for e in entries:
        s = e.specimen
        rows.append(
            [
                e.run_name or e.run_id,
                "-" if e.note.startswith("no best checkpoint") else str(e.step),
                (", ".join(s.flags) or "-") if s is not None else "-",
                *_scores(s, names),
                _prediction(s) if s is not None else "(absent)",
                e.note or "-",
            ]
        )
    lines = [Text(f"specimen {specimen_id}, {split}, in {len(entries)} runs")]
    if shown is not None:
        lines += [Text(line) for line in _details(shown)]
    return Group(*lines, Text(""), _grid(rows))


def format_comparison(
    specimen_id: str, split: str, entries: Sequence[RunSpecimen], scores: str | None = None
) -> str:
    """The text of `evalstream runs compare-specimen`."""
    return _render(_comparison_view(specimen_id, split, entries, scores))


def specimen_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """Prints one specimen at every evaluation step of a run (a table, or JSON)."""
    history = client.specimen_history(args.run, args.specimen, split=args.split)
    if args.json:
        print(to_json(history), file=out)
    else:
        _show(out, _history_view(args.run, args.specimen, args.split, history, args.scores))
    return 0


def compare_specimen_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """Prints one specimen in several runs side by side (a table, or JSON)."""
    entries = client.compare_specimens(
        args.runs, args.specimen, split=args.split, step=args.step, best=args.best
    )
    if args.json:
        print(to_json(entries), file=out)
    else:
        _show(out, _comparison_view(args.specimen, args.split, entries, args.scores))
    return 0
