"""The ``evalstream`` command line: talks to a running server.

    evalstream score-boxes --predictions P.jsonl --ground-truth G.jsonl [--iou 0.5,0.75]
                           [--confidence 0.3] [--pr-curve] [--json] [--target HOST:PORT]
    evalstream score-text --predictions P.txt --references R.txt [--metrics bleu,rouge] [--json]
    evalstream health [--service NAME]
    evalstream runs list --project P | runs show RUN | runs import FILE --run RUN
    evalstream runs verdict RUN | runs watch RUN | runs compare A B C

The input files are described in :mod:`evalstream.cli._inputs`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from evalstream._client import Client
from evalstream.cli._format import (
    _table,
    format_comparison,
    format_report,
    format_text_report,
    format_verdict,
)
from evalstream.cli._inputs import InputError, pair_images, read_boxes, read_points, read_text_file
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
                print(status, file=out)
                return 0 if status == "SERVING" else 1
            if args.command == "runs":
                return _runs_command(client, args, out)
            if args.command == "score-text":
                return _score_text(client, args, out)
            images = pair_images(
                read_boxes(args.predictions, bbox_format=args.bbox_format),
                read_boxes(args.ground_truth, bbox_format=args.bbox_format),
            )
            report = client.score_boxes(
                images,
                batch_size=args.batch_size,
                iou_thresholds=args.iou,
                confidence_threshold=args.confidence,
                pr_curve=args.pr_curve,
                class_agnostic=args.class_agnostic,
            )
    except EvalstreamError as exc:  # before ValueError: InvalidArgument is one too
        print(f"evalstream: {exc}", file=sys.stderr)
        return 1
    except (InputError, OSError, ValueError) as exc:
        print(f"evalstream: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2), file=out)
    else:
        print(format_report(report), file=out)
    return 0


def _score_text(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    predictions, ids = read_text_file(args.predictions, "prediction")
    references, _ = read_text_file(args.references, "references")
    if len(predictions) != len(references):
        raise InputError(f"{len(predictions)} predictions but {len(references)} references")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] or None
    report = client.score_text(
        predictions,
        references,
        specimen_ids=ids,
        metrics=metrics,
        batch_size=args.batch_size,
        bleu_tokenize=args.tokenize,
        lowercase=args.lowercase,
        use_stemmer=not args.no_stemmer,
        rouge_lsum=args.rouge_lsum,
        idf=args.idf,
    )
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2), file=out)
    else:
        print(format_text_report(report), file=out)
    return 0


def _runs_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.runs_command == "verdict":
        v = client.verdict(args.run)
        print(
            json.dumps(dataclasses.asdict(v), indent=2) if args.json else format_verdict(v),
            file=out,
        )
        return 0
    if args.runs_command == "watch":
        for v in client.watch(args.run):
            print(format_verdict(v), file=out, flush=True)
            print("", file=out, flush=True)
        return 0
    if args.runs_command == "compare":
        c = client.compare(args.runs, baseline=args.baseline)
        print(
            json.dumps(dataclasses.asdict(c), indent=2) if args.json else format_comparison(c),
            file=out,
        )
        return 0
    if args.runs_command == "list":
        runs = list(client.list_runs(args.project, statuses=args.status, model=args.model))
        if args.json:
            print(json.dumps([dataclasses.asdict(r) for r in runs], indent=2), file=out)
            return 0
        rows = [["id", "name", "model", "task", "status", "created"]]
        rows += [
            [
                r.id,
                r.name,
                r.model,
                r.task,
                r.status,
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.created_at)),
            ]
            for r in runs
        ]
        print(_table(rows) if runs else f"no runs in project {args.project!r}", file=out)
        return 0
    if args.runs_command == "show":
        run = client.get_run(args.run)
        series = run.curves(max_points=0)
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
            print(json.dumps(info, indent=2), file=out)
            return 0
        i = run.info
        print(
            f"{i.name} ({i.id}) in {i.project}: {i.status}, "
            f"model {i.model or '-'}, task {i.task or '-'}",
            file=out,
        )
        for title, values in (("hyperparameters", i.hyperparameters), ("derived", i.derived)):
            if values:
                print(f"{title}:", file=out)
                print(_table([[f"  {k}", str(v)] for k, v in sorted(values.items())]), file=out)
        if series:
            rows = [["  split", "series", "points", "last step", "last value"]]
            rows += [
                [
                    f"  {s.split}",
                    s.name,
                    str(s.total_points),
                    str(s.steps[-1]),
                    f"{s.values[-1]:.6g}",
                ]
                for s in series
                if s.steps
            ]
            print("series:", file=out)
            print(_table(rows), file=out)
        return 0
    grouped = read_points(args.file, default_split=args.split, default_series=args.series)
    run = client.get_run(args.run)
    total = 0
    for (split, series_name), (steps, points) in grouped.items():
        run.log_many(steps, points, split=split, series=series_name)
        total += len(steps)
    run.flush(timeout=args.timeout)
    refused = run.refusals
    for r in refused:
        print(f"refused: {r.reason}", file=sys.stderr)
    print(
        f"imported {total - sum(1 for _ in refused)} of {total} points into {run.id}"
        if not refused
        else f"imported with {len(refused)} refused chunks",
        file=out,
    )
    return 1 if refused else 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
