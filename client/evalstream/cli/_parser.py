"""The argument parser of the ``evalstream`` command."""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evalstream._base import DEFAULT_BATCH_SIZE, DEFAULT_TARGET
from evalstream.cli import (
    _export,
    _plot,
    _projects,
    _run_update,
    _specimen_history,
    _specimens,
    _watch,
)


def _parse_floats(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def version() -> str:
    """The installed evalstream's version: its distribution's metadata, else ``__version__``."""
    try:
        return importlib.metadata.version("evalstream")
    except importlib.metadata.PackageNotFoundError:  # imported from a source tree
        from evalstream import __version__

        return __version__


def _parse_confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from exc
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def _checkpoint_arguments(p: argparse.ArgumentParser, item: str) -> None:
    """--run, --step and --split: record the scores as a run's checkpoint, each item a specimen."""
    p.add_argument(
        "--run",
        default=None,
        help=f"run id or project/name: record the scores as its checkpoint and every {item} "
        "as a specimen (runs specimens shows them); needs --step",
    )
    p.add_argument("--step", type=int, default=None, help="the checkpoint's training step")
    p.add_argument(
        "--split",
        choices=("train", "validation", "test"),
        default="validation",
        help="the checkpoint's split (default validation)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="evalstream", description="evalstream client")
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    p.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help=f"server address (default {DEFAULT_TARGET}); several servers: IP addresses "
        "comma-separated, or dns:///NAME:PORT (balanced round-robin, with failover)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="deadline of each call in seconds (default 600); `runs watch` has none: "
        "it follows the run until it ends, reconnecting if the connection breaks",
    )
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
    sec.add_argument(
        "--tls-server-name",
        default=None,
        help="the name the servers' certificates carry, checked when --target lists several "
        "addresses (default the first; env EVALSTREAM_TLS_SERVER_NAME)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    sb = sub.add_parser(
        "score-boxes",
        help="score predicted boxes against ground truth",
        description="Scores predicted boxes against ground truth. Box files are evalstream "
        "JSON Lines, or COCO's own: a dataset JSON as --ground-truth and a results list as "
        "--predictions. A box without a confidence or a label, or with a key the reader "
        "does not know, is refused with its file and line unless a flag says what to assume.",
    )
    sb.add_argument(
        "--predictions",
        type=Path,
        required=True,
        help="predicted boxes: JSON Lines, or a COCO results list",
    )
    sb.add_argument(
        "--ground-truth",
        type=Path,
        required=True,
        help="ground-truth boxes: JSON Lines, or a COCO dataset",
    )
    sb.add_argument(
        "--format",
        choices=("auto", "jsonl", "coco"),
        default="auto",
        help="auto (default): COCO when the files are COCO JSON (a dataset object, a results "
        "array), else JSON Lines; jsonl; coco",
    )
    sb.add_argument("--iou", type=_parse_floats, default=None, help="IoU thresholds, e.g. 0.5,0.75")
    sb.add_argument("--confidence", type=float, default=None, help="confidence threshold in [0, 1]")
    sb.add_argument(
        "--pr-curve", action="store_true", help="F1-optimal confidence and AP per threshold"
    )
    sb.add_argument(
        "--class-agnostic",
        action="store_true",
        help="match regardless of label (boxes then need no label)",
    )
    sb.add_argument(
        "--bbox-format",
        choices=("xyxy", "xywh"),
        default=None,
        help="how a JSON Lines bbox is read: xyxy = corners [x1, y1, x2, y2] (default), "
        "xywh = COCO's [x, y, width, height]; COCO files are always xywh",
    )
    sb.add_argument(
        "--assume-confidence",
        type=_parse_confidence,
        default=None,
        metavar="C",
        help="confidence of a prediction that gives none (otherwise refused), e.g. 1.0",
    )
    sb.add_argument(
        "--assume-label",
        default=None,
        metavar="LABEL",
        help='label of a box that gives none (otherwise refused), e.g. ""',
    )
    sb.add_argument(
        "--ignore-unknown-keys",
        action="store_true",
        help="drop box keys the reader does not know (otherwise refused), with a note",
    )
    sb.add_argument(
        "--coco-image",
        choices=("url", "file_name", "none"),
        default="url",
        help="COCO: each image's URI is its coco_url (default), its file_name (a path "
        "relative to the server's --image-root), or none",
    )
    sb.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="images per message")
    sb.add_argument("--json", action="store_true", help="print the full report as JSON")
    _checkpoint_arguments(sb, "image")

    st = sub.add_parser(
        "score-text", help="score answers against references (BLEU, ROUGE, METEOR, BERTScore)"
    )
    st.add_argument(
        "--predictions",
        type=Path,
        required=True,
        help="one answer per line (.txt), or JSONL with prediction [and specimen_id, question, "
        "image_uri]",
    )
    st.add_argument(
        "--references",
        type=Path,
        required=True,
        help="one reference per line (.txt), or JSONL with references: [...] per line [and "
        "question, image_uri]",
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
    _checkpoint_arguments(st, "pair")

    h = sub.add_parser("health", help="print the server's health status; exit 0 only if SERVING")
    h.add_argument("--service", default="", help="service name ('' for the whole server)")
    h.add_argument("--json", action="store_true", help='print {"service": ..., "status": ...}')

    runs = sub.add_parser("runs", help="list, show and backfill training runs")
    rsub = runs.add_subparsers(dest="runs_command", required=True)
    rl = rsub.add_parser("list", help="runs of a project")
    rl.add_argument("--project", required=True)
    rl.add_argument(
        "--status", action="append", default=[], choices=("running", "finished", "failed", "killed")
    )
    rl.add_argument("--model", default="")
    rl.add_argument("--json", action="store_true", help="print the runs as JSON")
    rs = rsub.add_parser(
        "show", help="one run: hyperparameters, derived values, summary, last points"
    )
    rs.add_argument("run", help="run id or project/name")
    rs.add_argument("--json", action="store_true", help="print the run as JSON")
    rv = rsub.add_parser("verdict", help="diagnose a run: state, evidence, advice, where to stop")
    rv.add_argument("run", help="run id or project/name")
    rv.add_argument("--json", action="store_true", help="print the verdict as JSON")
    rc = rsub.add_parser("compare", help="compare runs; changed variables are marked with *")
    rc.add_argument("runs", nargs="+", help="run ids or project/name")
    rc.add_argument("--baseline", default="", help="run the deltas are against (default the first)")
    rc.add_argument("--json", action="store_true", help="print the comparison as JSON")
    ri = rsub.add_parser(
        "import", help="backfill points from CSV or JSONL (step, split, value[, series])"
    )
    ri.add_argument("file", type=Path)
    ri.add_argument("--run", required=True, help="run id or project/name")
    ri.add_argument("--series", default="loss", help="series when a row names none (default loss)")
    ri.add_argument("--split", default="train", help="split when a row names none (default train)")
    ri.add_argument(
        "--json",
        action="store_true",
        help="print {run, points, imported, refused: [{line, reason}]} (still exit 1 on refusals)",
    )
    _projects.add_parsers(sub, rsub)
    _specimens.add_parsers(rsub)
    _specimen_history.add_parsers(rsub)
    _export.add_parser(rsub)
    _plot.add_parser(rsub)
    _watch.add_parser(rsub)
    _run_update.add_parser(rsub)
    return p


def _security(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """Client security options from flags, else EVALSTREAM_TOKEN/_CA/_CERT/_KEY/_TLS_SERVER_NAME."""

    def pick(flag: object, variable: str) -> Any:
        return flag if flag is not None else (environ.get(variable) or None)

    return {
        "token": pick(args.token, "EVALSTREAM_TOKEN"),
        "ca": pick(args.ca, "EVALSTREAM_CA"),
        "client_cert": pick(args.cert, "EVALSTREAM_CERT"),
        "client_key": pick(args.key, "EVALSTREAM_KEY"),
        "tls": True if args.tls else None,
        "insecure": args.insecure,
        "tls_server_name": pick(args.tls_server_name, "EVALSTREAM_TLS_SERVER_NAME"),
    }
