"""``evalstream projects`` and ``evalstream runs create``: their arguments, work and output."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import TextIO

from evalstream._client import Client
from evalstream._run_types import HyperValue
from evalstream.cli._format import _grid, _show, to_json
from evalstream.errors import AlreadyExists

TASK_CHOICES = ("phrase_grounding", "vqa", "other")


def parse_hp(text: str) -> tuple[str, HyperValue]:
    """``key=value`` as a typed hyperparameter: int, float, true/false, else a string.

    Example:
        >>> [parse_hp(t) for t in ("lr=1e-4", "bs=32", "amp=true", "opt=adamw")]
        [('lr', 0.0001), ('bs', 32), ('amp', True), ('opt', 'adamw')]
    """
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, e.g. lr=1e-4, got {text!r}")
    value: HyperValue
    if raw.lower() in ("true", "false"):
        value = raw.lower() == "true"
    else:
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                value = raw
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{key}={raw}: hyperparameter numbers must be finite")
    return key, value


def add_parsers(sub: argparse._SubParsersAction, runs: argparse._SubParsersAction) -> None:
    """Adds ``projects`` to the top-level commands and ``create`` to ``runs``."""
    pr = sub.add_parser("projects", help="projects this token may see, with their run counts")
    pr.add_argument("--json", action="store_true", help="print the projects as JSON")
    rc = runs.add_parser("create", help="create a run and print its id")
    rc.add_argument("project", help="project of the run")
    rc.add_argument("name", help="name of the run, unique within the project")
    rc.add_argument("--model", default="", help="model name, e.g. paligemma-3b")
    rc.add_argument(
        "--task", default="", choices=TASK_CHOICES, help="task the model is trained for"
    )
    rc.add_argument(
        "--hp",
        type=parse_hp,
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="hyperparameters, e.g. --hp lr=1e-4 batch_size=32 amp=true optimizer=adamw "
        "(int, float, true/false, else a string)",
    )
    rc.add_argument(
        "--resume",
        action="store_true",
        help="when the name is taken, print the existing run instead of failing",
    )
    rc.add_argument("--json", action="store_true", help="print the new run as JSON")


def projects_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """Prints the projects (a table, or JSON)."""
    projects = list(client.list_projects())
    if args.json:
        print(to_json(projects), file=out)
        return 0
    if not projects:
        _show(out, "no projects (create a run: evalstream runs create PROJECT NAME)")
        return 0
    rows = [["project", "runs", "running", "last update (UTC)"]]
    rows += [
        [
            p.name,
            str(p.runs),
            str(p.running),
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(p.updated_at)),
        ]
        for p in projects
    ]
    _show(out, _grid(rows))
    return 0


def create_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """Creates the run and prints its id; a taken name exits 1 unless --resume."""
    hypers = dict(args.hp)
    try:
        run = client.create_run(
            args.project,
            args.name,
            model=args.model,
            task=args.task,
            hyperparameters=hypers,
            resume=args.resume,
        )
    except AlreadyExists as exc:
        # The server's words, without the library's hint (resume=True is Python).
        server = exc.__cause__ if isinstance(exc.__cause__, AlreadyExists) else exc
        ref = f"{args.project}/{args.name}"
        print(
            f"evalstream: {server}; pass --resume to use it, or reach it by name as {ref} "
            f"(e.g. evalstream runs show {ref})",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(to_json(run.info), file=out)
    else:
        print(run.id, file=out)
    return 0
