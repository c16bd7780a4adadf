"""The ``evalstream`` command line: talks to a running server.

    evalstream score-boxes --predictions P.jsonl --ground-truth G.jsonl [--iou 0.5,0.75]
                           [--confidence 0.3] [--pr-curve] [--json] [--target HOST:PORT]
    evalstream score-text --predictions P.txt --references R.txt [--metrics bleu,rouge] [--json]
    evalstream health [--service NAME]
    evalstream runs list --project P | runs show RUN | runs import FILE --run RUN
    evalstream runs verdict RUN | runs watch RUN | runs compare A B C

Box files are JSON Lines. Each line is either one image,
``{"image_id": "img1", "boxes": [{"bbox": [x1, y1, x2, y2], "label": "dog", "confidence": 0.9}]}``,
or one box, ``{"image_id": "img1", "bbox": [...], "label": "dog", "confidence": 0.9}``.
A box may give ``x1, y1, x2, y2`` keys instead of ``bbox``; ``--bbox-format xywh``
reads ``bbox`` as COCO's [x, y, width, height]. Images are matched by image_id;
an image in only one file is scored with no boxes on the other side.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from evalstream._base import DEFAULT_BATCH_SIZE, DEFAULT_TARGET
from evalstream._client import Client
from evalstream._types import Box, BoxReport, BoxScores, Figure, ImageBoxes, TextReport
from evalstream._verdicts import Comparison, Verdict
from evalstream.errors import EvalstreamError


class InputError(ValueError):
    """A box file line that cannot be read; the message names file and line."""


def _box(record: dict[str, Any], where: str, bbox_format: str) -> Box:
    try:
        if "bbox" in record:
            a, b, c, d = (float(v) for v in record["bbox"])
            x1, y1, x2, y2 = (a, b, a + c, b + d) if bbox_format == "xywh" else (a, b, c, d)
        else:
            x1, y1, x2, y2 = (float(record[k]) for k in ("x1", "y1", "x2", "y2"))
        confidence = float(record.get("confidence", record.get("score", 1.0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{where}: a box needs bbox [4 numbers] or x1, y1, x2, y2 ({exc})"
        ) from exc
    label = record.get("label", record.get("phrase", record.get("category_id", "")))
    return Box(x1, y1, x2, y2, label=str(label), confidence=confidence)


def read_boxes(path: Path, *, bbox_format: str = "xyxy") -> dict[str, list[Box]]:
    """Reads a box file into {image_id: boxes}, keeping the file's image order."""
    images: dict[str, list[Box]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not JSON ({exc.msg})") from exc
            if not isinstance(record, dict) or "image_id" not in record:
                raise InputError(f"{where}: each line must be an object with an image_id")
            boxes = images.setdefault(str(record["image_id"]), [])
            if "boxes" in record:
                boxes.extend(
                    _box(b, f"{where} box {i}", bbox_format) for i, b in enumerate(record["boxes"])
                )
            else:
                boxes.append(_box(record, where, bbox_format))
    return images


def pair_images(
    predictions: dict[str, list[Box]], ground_truth: dict[str, list[Box]]
) -> list[ImageBoxes]:
    """Joins both files by image_id, ground-truth order first."""
    ids = list(ground_truth) + [i for i in predictions if i not in ground_truth]
    return [
        ImageBoxes(i, tuple(predictions.get(i, ())), tuple(ground_truth.get(i, ()))) for i in ids
    ]


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


def _parse_floats(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evalstream", description="evalstream client")
    p.add_argument(
        "--target", default=DEFAULT_TARGET, help=f"server address (default {DEFAULT_TARGET})"
    )
    p.add_argument("--timeout", type=float, default=600.0, help="deadline in seconds (default 600)")
    sec = p.add_argument_group(
        "security", "each option's variable is read when the option is not given"
    )
    sec.add_argument(
        "--token",
        default=None,
        help="bearer token (env EVALSTREAM_TOKEN; prefer it: options show in ps)",
    )
    sec.add_argument(
        "--ca", type=Path, default=None, help="CA bundle, PEM; turns TLS on (env EVALSTREAM_CA)"
    )
    sec.add_argument(
        "--cert",
        type=Path,
        default=None,
        help="client certificate, PEM, for mTLS (env EVALSTREAM_CERT)",
    )
    sec.add_argument("--key", type=Path, default=None, help="client key, PEM (env EVALSTREAM_KEY)")
    sec.add_argument("--tls", action="store_true", help="TLS with the system's roots (no --ca)")
    sec.add_argument(
        "--insecure",
        action="store_true",
        help="allow sending the token in plaintext to a non-loopback host",
    )
    sub = p.add_subparsers(dest="command", required=True)

    sb = sub.add_parser("score-boxes", help="score predicted boxes against ground truth")
    sb.add_argument("--predictions", type=Path, required=True, help="predicted boxes, JSON Lines")
    sb.add_argument(
        "--ground-truth", type=Path, required=True, help="ground-truth boxes, JSON Lines"
    )
    sb.add_argument("--iou", type=_parse_floats, default=None, help="IoU thresholds, e.g. 0.5,0.75")
    sb.add_argument("--confidence", type=float, default=None, help="confidence threshold in [0, 1]")
    sb.add_argument(
        "--pr-curve", action="store_true", help="F1-optimal confidence and AP per threshold"
    )
    sb.add_argument("--class-agnostic", action="store_true", help="match regardless of label")
    sb.add_argument("--bbox-format", choices=("xyxy", "xywh"), default="xyxy")
    sb.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per message")
    sb.add_argument("--json", action="store_true", help="print the full report as JSON")

    st = sub.add_parser(
        "score-text", help="score answers against references (BLEU, ROUGE, METEOR, BERTScore)"
    )
    st.add_argument(
        "--predictions",
        type=Path,
        required=True,
        help="one answer per line (.txt), or JSONL with prediction [and specimen_id]",
    )
    st.add_argument(
        "--references",
        type=Path,
        required=True,
        help="one reference per line (.txt), or JSONL with references: [...] per line",
    )
    st.add_argument(
        "--metrics", default="", help="comma-separated: bleu,rouge,meteor,bertscore (default all)"
    )
    st.add_argument("--tokenize", default="13a", help="BLEU tokenizer: 13a, intl, zh, char, none")
    st.add_argument("--lowercase", action="store_true", help="BLEU: lowercase")
    st.add_argument("--no-stemmer", action="store_true", help="ROUGE: no Porter stemming")
    st.add_argument("--rouge-lsum", action="store_true", help="ROUGE: add rougeLsum")
    st.add_argument("--idf", action="store_true", help="BERTScore: idf weights from the references")
    st.add_argument("--batch-size", type=int, default=64, help="pairs per message")
    st.add_argument("--json", action="store_true", help="print the full report as JSON")

    h = sub.add_parser("health", help="print the server's health status; exit 0 only if SERVING")
    h.add_argument("--service", default="", help="service name ('' for the whole server)")

    runs = sub.add_parser("runs", help="list, show and backfill training runs")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    rl = rsub.add_parser("list", help="runs of a project")
    rl.add_argument("--project", required=True)
    rl.add_argument(
        "--status", action="append", default=[], choices=("running", "finished", "failed", "killed")
    )
    rl.add_argument("--model", default="")
    rl.add_argument("--json", action="store_true")
    rs = rsub.add_parser("show", help="one run: hyperparameters, derived values, last points")
    rs.add_argument("run", help="run id")
    rs.add_argument("--json", action="store_true")
    rv = rsub.add_parser("verdict", help="diagnose a run: state, evidence, advice, where to stop")
    rv.add_argument("run", help="run id")
    rv.add_argument("--json", action="store_true")
    rw = rsub.add_parser("watch", help="print the verdict, then each change, until the run ends")
    rw.add_argument("run", help="run id")
    rc = rsub.add_parser("compare", help="compare runs; changed variables are marked with *")
    rc.add_argument("runs", nargs="+", help="run ids")
    rc.add_argument("--baseline", default="", help="run the deltas are against (default the first)")
    rc.add_argument("--json", action="store_true")
    ri = rsub.add_parser(
        "import", help="backfill points from CSV or JSONL (step, split, value[, series])"
    )
    ri.add_argument("file", type=Path)
    ri.add_argument("--run", required=True, help="run id")
    ri.add_argument("--series", default="loss", help="series when a row names none (default loss)")
    ri.add_argument("--split", default="train", help="split when a row names none (default train)")
    return p


def _security(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """Client security options from flags, else EVALSTREAM_TOKEN/_CA/_CERT/_KEY."""

    def pick(flag: object, variable: str) -> Any:
        return flag if flag is not None else (environ.get(variable) or None)

    return {
        "token": pick(args.token, "EVALSTREAM_TOKEN"),
        "ca": pick(args.ca, "EVALSTREAM_CA"),
        "client_cert": pick(args.cert, "EVALSTREAM_CERT"),
        "client_key": pick(args.key, "EVALSTREAM_KEY"),
        "tls": True if args.tls else None,
        "insecure": args.insecure,
    }


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
    except (InputError, OSError, ValueError) as exc:
        print(f"evalstream: {exc}", file=sys.stderr)
        return 2
    except EvalstreamError as exc:
        print(f"evalstream: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2), file=out)
    else:
        print(format_report(report), file=out)
    return 0


def read_text_file(path: Path, key: str) -> tuple[list[Any], list[str]]:
    """Lines of a .txt file, or `key` (and specimen_id) of each JSONL line."""
    values: list[Any] = []
    ids: list[str] = []
    with path.open(encoding="utf-8") as f:
        if path.suffix.lower() != ".jsonl":
            for line in f:
                values.append(line.rstrip("\n"))
                ids.append("")
            return values, ids
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not JSON ({exc.msg})") from exc
            if isinstance(record, str):
                record = {key: record}
            if not isinstance(record, dict) or key not in record:
                raise InputError(f"{path}:{number}: expected an object with {key!r}")
            values.append(record[key])
            ids.append(str(record.get("specimen_id", record.get("id", ""))))
    return values, ids


def format_text_report(report: TextReport) -> str:
    """The human-readable table of `evalstream score-text`."""
    rows = [["score", "value", "band", "signature"]]
    rows += [[s.name, str(s), s.band or s.reason, s.signature] for s in report.overall.values()]
    return f"{report.pairs_total} pairs\n" + _table(rows)


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


def read_points(
    path: Path, *, default_split: str = "train", default_series: str = "loss"
) -> dict[tuple[str, str], tuple[list[int], list[float]]]:
    """Reads step,split,value[,series] rows from CSV (with a header) or JSONL."""
    grouped: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def add(where: str, row: dict[str, Any]) -> None:
        try:
            step = int(row["step"])
            value = float(row["value"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: needs integer step and numeric value ({exc})") from exc
        key = (str(row.get("split") or default_split), str(row.get("series") or default_series))
        steps, values = grouped.setdefault(key, ([], []))
        steps.append(step)
        values.append(value)

    with path.open(encoding="utf-8", newline="") as f:
        if path.suffix.lower() in (".jsonl", ".json"):
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        add(f"{path}:{number}", json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise InputError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        else:
            for number, row in enumerate(csv.DictReader(f), 2):
                add(f"{path}:{number}", row)
    return grouped


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
