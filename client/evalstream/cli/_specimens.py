"""``evalstream runs steps`` and ``evalstream runs specimens``: arguments, work and output.

A specimen prints as its id, flags and scores, its image (URI and size) and its
question when it has them, then ground truth beside prediction in two columns:
boxes as ``label [x1 y1 x2 y2] confidence``, VQA as references beside the answer.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Mapping, Sequence
from typing import TextIO

from rich.console import Group, RenderableType
from rich.text import Text

from evalstream._client import Client
from evalstream._records import EvaluationStep, Specimen
from evalstream._types import Box
from evalstream.cli._format import _grid, _render, _show, to_json

SPLIT_CHOICES = ("train", "validation", "test")
#: The diagnosis flags, for --help (the server checks the name and lists them when wrong).
FLAGS = (
    "missed_detection",
    "false_positive",
    "loose_box",
    "inconsistent_localisation",
    "incomplete_answer",
    "possible_hallucination",
    "format_mismatch",
)


def add_parsers(runs: argparse._SubParsersAction) -> None:
    """Adds ``steps`` and ``specimens`` to the ``runs`` commands."""
    st = runs.add_parser(
        "steps", help="evaluation steps of a run: specimens, metrics and flag counts"
    )
    st.add_argument("run", help="run id or project/name")
    st.add_argument("--split", default=None, choices=SPLIT_CHOICES, help="only this split")
    st.add_argument("--json", action="store_true", help="print the steps as JSON")
    sp = runs.add_parser(
        "specimens", help="specimens of one evaluation step: ground truth beside prediction"
    )
    sp.add_argument("run", help="run id or project/name")
    sp.add_argument("--step", type=int, required=True, help="evaluation step (see runs steps)")
    sp.add_argument(
        "--split", default="validation", choices=SPLIT_CHOICES, help="default validation"
    )
    sp.add_argument(
        "--flag", default=None, help=f"only specimens with this flag: {', '.join(FLAGS)}"
    )
    sp.add_argument("--json", action="store_true", help="print the specimens as JSON")


def _numbers(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(values.items())) or "-"


def _steps_view(steps: Sequence[EvaluationStep]) -> RenderableType:
    rows = [["split", "step", "specimens", "metrics", "flags"]]
    rows += [
        [
            s.split,
            str(s.step),
            str(s.specimens),
            _numbers(s.metrics),
            ", ".join(f"{k}={n}" for k, n in s.flag_counts.items()) or "-",
        ]
        for s in steps
    ]
    return _grid(rows)


def format_steps(steps: Sequence[EvaluationStep]) -> str:
    """The table of `evalstream runs steps`: one row per split and step."""
    return _render(_steps_view(steps))


def format_box(box: Box, *, confidence: bool) -> str:
    """``label [x1 y1 x2 y2] confidence`` (no confidence for ground truth).

    Example:
        >>> format_box(Box(0, 0, 10.5, 20, "cup", 0.912), confidence=True)
        'cup [0 0 10.5 20] 0.91'
    """
    coords = f"[{box.x1:g} {box.y1:g} {box.x2:g} {box.y2:g}]"
    text = f"{box.label} {coords}" if box.label else coords
    return f"{text} {box.confidence:.2f}" if confidence else text


def _columns(head: Sequence[str], left: Sequence[str], right: Sequence[str]) -> list[list[str]]:
    pairs = itertools.zip_longest(left or ["-"], right or ["-"], fillvalue="")
    return [list(head)] + [[a, b] for a, b in pairs]


def format_image(s: Specimen) -> str:
    """The specimen's image as ``uri (WxH)``; "" when it has neither URI nor size.

    Example:
        >>> format_image(Specimen("a", image_uri="s3://b/1.jpg", width=640, height=480))
        's3://b/1.jpg (640x480)'
        >>> format_image(Specimen("a", width=640, height=480))
        '(no uri) (640x480)'
    """
    size = f"({s.width}x{s.height})" if s.width or s.height else ""
    if not s.image_uri and not size:
        return ""
    return " ".join(x for x in (s.image_uri or "(no uri)", size) if x)


def _specimen_view(s: Specimen) -> RenderableType:
    head = f"{s.specimen_id or '(no id)'}  flags: {', '.join(s.flags) or '-'}"
    head += f"  scores: {_numbers(s.scores)}"
    if image := format_image(s):
        head += f"\n  image: {image}"
    if s.question:
        head += f"\n  question: {s.question}"
    if s.ground_truth_boxes or s.predicted_boxes:
        rows = _columns(
            ("ground truth", "prediction"),
            [format_box(b, confidence=False) for b in s.ground_truth_boxes],
            [format_box(b, confidence=True) for b in s.predicted_boxes],
        )
    else:
        rows = _columns(
            ("references", "answer"),
            list(s.reference_texts),
            [s.prediction_text] if s.prediction_text else [],
        )
    return Group(Text(head), _grid(rows, indent=2))


def format_specimen(s: Specimen) -> str:
    """One specimen: its id, flags and scores, then ground truth beside prediction."""
    return _render(_specimen_view(s))


def steps_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """Prints a run's evaluation steps (a table, or JSON)."""
    steps = client.evaluation_steps(args.run, split=args.split)
    if args.json:
        print(to_json(steps), file=out)
    else:
        _show(out, _steps_view(steps) if steps else f"no evaluations recorded for run {args.run}")
    return 0


def specimens_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """Prints the specimens of one evaluation step (blocks of two columns, or JSON)."""
    specimens = list(client.specimens(args.run, args.step, split=args.split, flag=args.flag))
    if args.json:
        print(to_json(specimens), file=out)
        return 0
    which = f" with flag {args.flag}" if args.flag else ""
    if not specimens:
        print(
            f"no specimens{which} at {args.split} step {args.step} "
            f"(the steps with specimens: evalstream runs steps {args.run})",
            file=out,
        )
        return 0
    n = len(specimens)
    views: list[RenderableType] = [
        Text(f"{n} specimen{'' if n == 1 else 's'}{which} at {args.split} step {args.step}")
    ]
    for specimen in specimens:
        views += [Text(""), _specimen_view(specimen)]
    _show(out, Group(*views))
    return 0
