"""``evalstream runs import FILE --run RUN``: backfill points, naming every line not imported.

Rows the server would refuse are found before sending (`read_points`); a chunk
the server refuses anyway (a limit only it knows) is mapped back to the lines
its steps came from. The other lines are imported either way: the writes are
idempotent, so importing the corrected file again stores only what was missing.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from evalstream._client import Client
from evalstream.cli._format import to_json
from evalstream.cli._inputs import read_points
from evalstream.errors import PointsRefused, Refusal

#: At most this many refused lines are printed (then a count of the rest).
MAX_SHOWN = 50


def import_points(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """Imports the file's good rows; prints FILE:LINE: reason for each other; 1 if any."""
    rows = read_points(args.file, default_split=args.split, default_series=args.series)
    run = client.get_run(args.run)
    refusals: list[Refusal] = []
    for (split, series), (steps, values, _) in rows.groups.items():
        try:
            run.log_many(steps, values, split=split, series=series)
        except PointsRefused as exc:  # this call's points are logged all the same
            refusals.extend(exc.refusals)
    try:
        run.flush(timeout=args.timeout)
    except PointsRefused as exc:
        refusals.extend(exc.refusals)
    bad = sorted(rows.problems + _refused_lines(rows.groups, refusals))
    imported = rows.rows - len(bad)
    if args.json:
        refused = [{"line": number, "reason": reason} for number, reason in bad]
        report = {"run": run.id, "points": rows.rows, "imported": imported, "refused": refused}
        print(to_json(report), file=out)
        return 1 if bad else 0
    for number, reason in bad[:MAX_SHOWN]:
        print(f"{args.file}:{number}: {reason}", file=sys.stderr)
    if len(bad) > MAX_SHOWN:
        print(f"{args.file}: ... and {len(bad) - MAX_SHOWN} more lines refused", file=sys.stderr)
    summary = f"imported {imported} of {rows.rows} points into {run.id}"
    if bad:
        summary += f"; {len(bad)} lines refused (fix them and import the file again)"
    print(summary, file=out)
    return 1 if bad else 0


def _refused_lines(
    groups: dict[tuple[str, str], tuple[list[int], list[float], list[int]]],
    refusals: list[Refusal],
) -> list[tuple[int, str]]:
    """(line, the server's reason) of each row in a refused chunk (or the row it named)."""
    found: list[tuple[int, str]] = []
    for r in refusals:
        steps, _, lines = groups.get((r.split, r.series), ([], [], []))
        named = r.refused_step
        refused = {named} if named is not None else set(r.steps)
        reason = f"refused by the server: {r.reason}"
        pairs = zip(steps, lines, strict=True)
        found.extend((line, reason) for step, line in pairs if step in refused)
    return found
