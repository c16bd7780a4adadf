"""``evalstream runs update``: keep one-off values on a run, add hyperparameters it does not
have yet, and record saved checkpoint paths."""

from __future__ import annotations

import argparse
from typing import TextIO

from evalstream._client import Client
from evalstream.cli._format import _grid, _show, to_json
from evalstream.cli._projects import parse_hp


def parse_checkpoint(text: str) -> tuple[int, str]:
    """``STEP=PATH`` as a saved checkpoint.

    Example:
        >>> parse_checkpoint("1500=out/checkpoint-1500")
        (1500, 'out/checkpoint-1500')
    """
    raw, eq, path = text.partition("=")
    try:
        step = int(raw)
    except ValueError:
        step = -1
    if not eq or step < 0 or not path:
        raise argparse.ArgumentTypeError(
            f"expected STEP=PATH with a step >= 0, e.g. 1500=out/checkpoint-1500, got {text!r}"
        )
    return step, path


def add_parser(runs: argparse._SubParsersAction) -> None:
    """Adds ``update`` to the ``runs`` commands."""
    ru = runs.add_parser(
        "update",
        help="keep one-off values on a run (its summary), add hyperparameters and record "
        "saved checkpoint paths",
    )
    ru.add_argument("run", help="run id or project/name")
    ru.add_argument(
        "--summary",
        type=parse_hp,
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="values merged into the run's summary, e.g. --summary train_runtime=612.4 "
        "(int, float, true/false, else a string)",
    )
    ru.add_argument(
        "--hp",
        type=parse_hp,
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="hyperparameters the run does not have yet, e.g. --hp dataset_size=5000 (parsed "
        "as runs create --hp); one the run has with another value is refused",
    )
    ru.add_argument(
        "--checkpoint",
        type=parse_checkpoint,
        nargs="+",
        action="extend",
        default=[],
        metavar="STEP=PATH",
        help="where the checkpoint of a step was saved, e.g. --checkpoint 1500=out/checkpoint-1500",
    )
    ru.add_argument("--json", action="store_true", help="print the updated run as JSON")


def update_command(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """Updates the run and prints its summary (or the run as JSON)."""
    run = client.get_run(args.run)
    info = run.update(
        summary=dict(args.summary),
        saved_checkpoints=dict(args.checkpoint),
        hyperparameters=dict(args.hp),
    )
    if args.json:
        print(to_json(info), file=out)
        return 0
    saved = f", {len(args.checkpoint)} checkpoint path(s) recorded" if args.checkpoint else ""
    _show(out, f"{info.name} ({info.id}) updated{saved}")
    for title, values in (("hyperparameters", info.hyperparameters), ("summary", info.summary)):
        rows = [[k, str(v)] for k, v in sorted(values.items())]
        if rows and (title == "summary" or args.hp):
            _show(out, f"{title}:")
            _show(out, _grid(rows, header=False, indent=2))
    return 0
