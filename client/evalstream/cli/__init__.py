"""The ``evalstream`` command line: talks to a running server.

    evalstream [--target HOST:PORT[,...]] [--timeout S] [--token T] [--ca CA] ... COMMAND
    evalstream --version
    evalstream score-boxes --predictions P.jsonl --ground-truth G.jsonl [--iou 0.5,0.75]
                           [--format auto|jsonl|coco] [--confidence 0.3] [--pr-curve] [--json]
    evalstream score-text --predictions P.txt --references R.txt [--metrics bleu,rouge] [--json]
    evalstream health [--service NAME] [--json]
    evalstream runs list --project P [--status S] [--model M] [--json]
    evalstream runs show RUN [--json]
    evalstream runs verdict RUN [--json]
    evalstream runs watch RUN [--json] [--interval S] [--window STEPS]
    evalstream runs compare A B [C ...] [--baseline A] [--json]
    evalstream runs import FILE --run RUN [--series S] [--split S]
    evalstream runs create PROJECT NAME [--model M] [--task T] [--hp key=value ...] [--json]
    evalstream runs steps RUN [--split S] [--json]
    evalstream runs specimens RUN --step N [--split S] [--flag F] [--json]
    evalstream runs export RUN [--format csv|jsonl|parquet] [-o FILE] [--split S ...]
                           [--series NAME ...] [--start-step N] [--end-step N]
    evalstream runs update RUN [--summary KEY=VALUE ...] [--checkpoint STEP=PATH ...] [--json]
    evalstream runs plot RUN [RUN ...] -o FILE.png|svg|pdf [--log-scale] [--title T] [--size WxH]
    evalstream projects [--json]
    (RUN: a run id or project/name)

Tables fit the terminal and colour bands, grades and states; into a pipe they are
plain text. ``--json`` prints the result as JSON (``runs watch --json``: JSON Lines,
one verdict per line). The input files are described in :mod:`evalstream.cli._inputs`
and :mod:`evalstream.cli._coco`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from rich.console import Group, RenderableType
from rich.text import Text

from evalstream._client import Client
from evalstream._run_types import Checkpoint
from evalstream.cli import (
    _export,
    _plot,
    _projects,
    _run_update,
    _specimen_history,
    _specimens,
    _watch,
)
from evalstream.cli._box_files import read_box_files
from evalstream.cli._format import (
    _comparison_view,
    _grid,
    _report_view,
    _show,
    _text_report_view,
    _verdict_view,
    to_json,
)
from evalstream.cli._import import import_points
from evalstream.cli._inputs import BoxRules, InputError, read_text_file, text_column
from evalstream.cli._parser import _security, build_parser
from evalstream.errors import EvalstreamError

__all__ = ["build_parser", "main", "run"]


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Console script ``evalstream``; returns the exit code."""
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        with Client(
            args.target,
            timeout=args.timeout,
            stream_timeout=args.timeout,
            **_security(args, os.environ),
        ) as client:
            if args.command == "health":
                status = client.health(args.service)
                if args.json:
                    print(to_json({"service": args.service, "status": status}), file=out)
                else:
                    _show(out, _grid([[status]], header=False))
                return 0 if status == "SERVING" else 1
            if args.command == "runs":
                return _runs_command(client, args, out)
            if args.command == "projects":
                return _projects.projects_command(client, args, out)
            if args.command == "score-text":
                return _score_text(client, args, out)
            inputs = read_box_files(
                args.predictions,
                args.ground_truth,
                fmt=args.format,
                rules=BoxRules(
                    bbox_format=args.bbox_format,
                    assume_confidence=args.assume_confidence,
                    assume_label=args.assume_label,
                    class_agnostic=args.class_agnostic,
                    ignore_unknown_keys=args.ignore_unknown_keys,
                ),
                coco_image=args.coco_image,
            )
            for note in inputs.notes:
                print(f"evalstream: {note}", file=sys.stderr)
            report = client.score_boxes(
                inputs.images,
                checkpoint=_checkpoint(client, args),
                batch_size=args.batch_size,
                iou_thresholds=args.iou,
                confidence_threshold=args.confidence,
                pr_curve=args.pr_curve,
                class_agnostic=args.class_agnostic,
            )
    except EvalstreamError as exc:  # before ValueError: InvalidArgument is one too
        print(f"evalstream: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise  # the reader of our output stopped (`| head`): see `run`
    except (InputError, OSError, ValueError) as exc:
        print(f"evalstream: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(to_json(report), file=out)
    else:
        _show(out, _report_view(report))
    return 0


def _checkpoint(client: Client, args: argparse.Namespace) -> Checkpoint | None:
    """The checkpoint --run and --step name (scores and specimens recorded), or None."""
    if args.run is None:
        if args.step is not None:
            raise InputError("--step needs --run: the run whose checkpoint is scored")
        return None
    if args.step is None:
        raise InputError("--run needs --step: the checkpoint's training step")
    return Checkpoint(client.run_id(args.run), args.step, args.split)


def _score_text(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    predictions = read_text_file(args.predictions, "prediction")
    references = read_text_file(args.references, "references")
    if len(predictions.values) != len(references.values):
        raise InputError(
            f"{len(predictions.values)} predictions but {len(references.values)} references"
        )
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] or None
    report = client.score_text(
        predictions.values,
        references.values,
        specimen_ids=predictions.ids,
        questions=text_column("questions", predictions, references),
        image_uris=text_column("image_uris", predictions, references),
        checkpoint=_checkpoint(client, args),
        metrics=metrics,
        batch_size=args.batch_size,
        bleu_tokenize=args.tokenize,
        lowercase=args.lowercase,
        use_stemmer=not args.no_stemmer,
        rouge_lsum=args.rouge_lsum,
        idf=args.idf,
    )
    if args.json:
        print(to_json(report), file=out)
    else:
        _show(out, _text_report_view(report))
    return 0


def _runs_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.runs_command == "create":
        return _projects.create_command(client, args, out)
    if args.runs_command == "steps":
        return _specimens.steps_command(client, args, out)
    if args.runs_command == "specimens":
        return _specimens.specimens_command(client, args, out)
    if args.runs_command == "export":
        return _export.export_command(client, args, out)
    if args.runs_command == "plot":
        return _plot.plot_command(client, args, out)
    if args.runs_command == "update":
        return _run_update.update_command(client, args, out)
    if args.runs_command == "specimen":
        return _specimen_history.specimen_command(client, args, out)
    if args.runs_command == "compare-specimen":
        return _specimen_history.compare_specimen_command(client, args, out)
    if args.runs_command == "verdict":
        v = client.verdict(args.run)
        if args.json:
            print(to_json(v), file=out)
        else:
            _show(out, _verdict_view(v))
        return 0
    if args.runs_command == "watch":
        return _watch.watch_command(client, args, out)
    if args.runs_command == "compare":
        c = client.compare(args.runs, baseline=args.baseline)
        if args.json:
            print(to_json(c), file=out)
        else:
            _show(out, _comparison_view(c))
        return 0
    if args.runs_command == "list":
        runs = list(client.list_runs(args.project, statuses=args.status, model=args.model))
        if args.json:
            print(to_json(runs), file=out)
            return 0
        rows = [["id", "name", "model", "task", "status", "created"]]
        rows += [
            [
                r.id,
                r.name,
                r.model or "-",
                r.task or "-",
                r.status,
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.created_at)),
            ]
            for r in runs
        ]
        _show(out, _grid(rows) if runs else f"no runs in project {args.project!r}")
        return 0
    if args.runs_command == "show":
        run = client.get_run(args.run)
        # Two points per series (the first and the last) and the count: not every point.
        series = run.curves(max_points=2)
        if args.json:
            info = dataclasses.asdict(run.info)
            info["series"] = [
                {
                    "split": s.split,
                    "name": s.name,
                    "points": s.total_points,
                    "last_step": s.steps[-1] if s.steps else None,
                    "last_value": s.values[-1] if s.values else None,
                }
                for s in series
            ]
            print(to_json(info), file=out)
            return 0
        i = run.info
        view: list[RenderableType] = [
            _grid(
                [
                    ["run", f"{i.name} ({i.id})"],
                    ["project", i.project],
                    ["status", i.status],
                    ["model", i.model or "-"],
                    ["task", i.task or "-"],
                ],
                header=False,
            )
        ]
        for title, values in (
            ("hyperparameters", i.hyperparameters),
            ("derived", i.derived),
            ("summary", i.summary),
        ):
            if values:
                view.append(Text(title))
                rows = [[k, str(v)] for k, v in sorted(values.items())]
                view.append(_grid(rows, header=False, indent=2))
        rows = [["split", "series", "points", "last step", "last value"]]
        rows += [
            [s.split, s.name, str(s.total_points), str(s.steps[-1]), f"{s.values[-1]:.6g}"]
            for s in series
            if s.steps
        ]
        if len(rows) > 1:
            view += [Text("series"), _grid(rows, indent=2)]
        _show(out, Group(*view))
        return 0
    return import_points(client, args, out)


def run() -> None:
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped reading (`evalstream runs list --json | head`): what it
        # read is what it wanted, so exit quietly; stdout goes to devnull so that
        # Python's own flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    run()
