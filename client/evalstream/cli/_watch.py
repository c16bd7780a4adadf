"""``evalstream runs watch``: follow a run until it ends, live on a terminal, else line by line.

The verdict comes from WatchVerdict (`Client.watch`: pushed on each change, with
reconnects and no deadline) in a background thread; the losses are read every
``--interval`` seconds with GetCurves, the training loss only over the last
``--window`` steps and downsampled (never every point of a long run), the
validation loss as its last point. On a terminal a rich ``Live`` view shows the
latest losses, a sparkline of the recent training loss, the verdict and its
advice and the early-stopping state; into a pipe the first verdict is printed in
full, then one short block per verdict change and one line per new loss. When the
run ends the final state is printed and the command exits: 0 when the run
finished, 3 when it failed, was killed or its last verdict is diverged, 130 on
Ctrl-C.
"""

from __future__ import annotations

import argparse
import math
import queue
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from evalstream._display import (
    _STYLES,
    _best,
    _console,
    _state,
    _verdict_change_view,
    _verdict_view,
)
from evalstream._run_types import RunInfo, Series
from evalstream._verdicts import Verdict
from evalstream.cli._format import _show, to_json

#: Exit code when the run ended failed or killed, or its last verdict is diverged.
EXIT_BAD_RUN = 3
#: Exit code on Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
_SPARK = "▁▂▃▄▅▆▇█"
_SPARK_WIDTH = 40
_END = object()


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _steps(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected a number of steps >= 2, got {text!r}")
    return value


def add_parser(runs: argparse._SubParsersAction) -> None:
    """Adds ``watch`` to the ``runs`` commands."""
    rw = runs.add_parser(
        "watch",
        help="follow a run until it ends: latest losses, a sparkline, the verdict and its advice",
        description="Follows a run until it ends, however long (no deadline; reconnects when "
        "the connection breaks). On a terminal: a live view of the latest training and "
        "validation loss, a sparkline of the recent training loss, the verdict and its "
        "advice and the early-stopping state. Into a pipe: the first verdict in full, then "
        "one block per verdict change and one line per new loss. Exit 0 when the run "
        "finished, 3 when it failed, was killed or diverged, 130 on Ctrl-C.",
    )
    rw.add_argument("run", help="run id or project/name")
    rw.add_argument(
        "--json", action="store_true", help="print each verdict as one JSON line (no losses)"
    )
    rw.add_argument(
        "--interval",
        type=_positive,
        default=1.0,
        metavar="S",
        help="seconds between loss refreshes (default 1)",
    )
    rw.add_argument(
        "--window",
        type=_steps,
        default=1000,
        metavar="STEPS",
        help="steps of training loss the sparkline covers (default the last 1000)",
    )


def spark(values: Sequence[float], width: int = _SPARK_WIDTH) -> str:
    """A unicode sparkline of `values`, at most `width` characters; "×" where NaN or inf.

    Each character is the mean of its share of the values, scaled between the
    finite minimum and maximum.

    Example:
        >>> spark([3.0, 2.0, 1.0, 0.5])
        '█▅▂▁'
        >>> spark([1.0, float("nan"), 0.0, 0.0], 2)
        '×▁'
    """
    if not values:
        return ""
    n = min(width, len(values))
    buckets = [values[i * len(values) // n : (i + 1) * len(values) // n] for i in range(n)]
    means = [sum(b) / len(b) if all(math.isfinite(v) for v in b) else math.nan for b in buckets]
    finite = [m for m in means if math.isfinite(m)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
    span = hi - lo or 1.0
    return "".join(
        _SPARK[round((m - lo) / span * (len(_SPARK) - 1))] if math.isfinite(m) else "×"
        for m in means
    )


@dataclass
class _Losses:
    """The latest losses of a run and its recent training loss."""

    train: tuple[int, float] | None = None
    validation: tuple[int, float] | None = None
    recent: tuple[float, ...] = ()
    recent_from: int | None = None


def _last(series: list[Series], split: str) -> tuple[int, float] | None:
    for s in series:
        if s.split == split and s.name == "loss" and s.steps:
            return s.steps[-1], s.values[-1]
    return None


def _read_losses(client: Any, run_id: str, last_step: int | None, window: int) -> _Losses:
    """Two GetCurves: training loss over the window (downsampled), validation's last point."""
    start = None if last_step is None else max(0, last_step - window + 1)
    train = client.curves(
        run_id, splits=("train",), series=("loss",), start_step=start, max_points=2 * _SPARK_WIDTH
    )
    validation = client.curves(run_id, splits=("validation",), series=("loss",), max_points=2)
    recent = next((s for s in train if s.name == "loss" and s.steps), None)
    return _Losses(
        train=_last(train, "train"),
        validation=_last(validation, "validation"),
        recent=recent.values if recent else (),
        recent_from=recent.steps[0] if recent else None,
    )


def _loss_text(point: tuple[int, float] | None) -> str:
    return "-" if point is None else f"{point[1]:.4g} at step {point[0]}"


def _loss_line(losses: _Losses) -> str:
    """The plain line printed when a loss is new: ``step N: train loss X, validation loss Y``."""
    parts = []
    if losses.train is not None:
        parts.append(f"train loss {losses.train[1]:.4g}")
    if losses.validation is not None:
        parts.append(f"validation loss {losses.validation[1]:.4g} (step {losses.validation[0]})")
    step = losses.train[0] if losses.train is not None else losses.validation[0]  # type: ignore[index]
    return f"step {step}: " + ", ".join(parts)


@dataclass
class _View:
    """What the live view shows; `render` draws it."""

    info: RunInfo
    window: int
    verdict: Verdict | None = None
    losses: _Losses = field(default_factory=_Losses)

    def render(self) -> RenderableType:
        i = self.info
        head = Text(f"run {i.project}/{i.name} ({i.id})  ")
        head.append(i.status or "running", style=_STYLES.get(i.status or "running", ""))
        lines: list[RenderableType] = [head]
        train = Text(f"train loss       {_loss_text(self.losses.train)}")
        if self.losses.recent:
            train.append("   ")
            line = spark(self.losses.recent)
            for ch in line:
                train.append(ch, style="red" if ch == "×" else "dark_orange")
            train.append(f"  since step {self.losses.recent_from}", style="dim")
        lines.append(train)
        lines.append(Text(f"validation loss  {_loss_text(self.losses.validation)}"))
        v = self.verdict
        if v is None:
            lines.append(Text("verdict          waiting for the first verdict", style="dim"))
            return Group(*lines)
        verdict = Text("verdict          ")
        verdict.append_text(_state(v))
        verdict.append(f" at step {v.as_of_step}" + (f": {v.summary}" if v.summary else ""))
        lines.append(verdict)
        lines += [Text(f"advice           {a.text}") for a in v.advice]
        es = v.early_stopping
        best = _best(v)
        if best:
            since = es.evaluations_since_best
            patience = (
                f"; {since} without improvement ({es.steps_since_best} steps)" if since else ""
            )
            lines.append(Text(f"early stopping   {best}{patience}"))
        return Group(*lines)


def _follow(client: Any, run_id: str, events: queue.Queue[Any]) -> None:
    """The watch, in the background: each verdict, then _END (or the error) on the queue."""
    try:
        for v in client.watch(run_id):
            events.put(v)
        events.put(_END)
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        events.put(exc)


def _exit_code(info: RunInfo, verdict: Verdict | None) -> int:
    bad = info.status in ("failed", "killed") or (
        verdict is not None and verdict.state == "diverged"
    )
    return EXIT_BAD_RUN if bad else 0


def watch_command(
    client: Any, args: argparse.Namespace, out: TextIO, *, console: Console | None = None
) -> int:
    """Follows ``args.run`` until it ends; the exit code says how it ended (module docstring)."""
    info: RunInfo = client.get_run(args.run).info
    console = console or _console(out)
    live = console.is_terminal and not args.json
    view = _View(info, args.window)
    events: queue.Queue[Any] = queue.Queue()
    threading.Thread(
        target=_follow, args=(client, info.id, events), name="evalstream-watch", daemon=True
    ).start()
    shown: Verdict | None = None
    printed: tuple[Any, Any] | None = None
    # The first refresh waits a moment for the first verdict, whose step bounds the window.
    next_refresh = time.monotonic() + min(args.interval, 0.5)
    screen: AbstractContextManager[Live | None] = (
        Live(view.render(), console=console, auto_refresh=False) if live else nullcontext(None)
    )
    try:
        with screen as lv:
            while True:
                try:
                    item = events.get(timeout=max(0.0, next_refresh - time.monotonic()))
                except queue.Empty:
                    item = None
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Verdict):
                    if args.json:
                        print(to_json(item, lines=True), file=out, flush=True)
                    elif not live:
                        _print_change(out, shown, item)
                    view.verdict = shown = item
                if not args.json and time.monotonic() >= next_refresh:
                    printed = _refresh(client, view, out, live=live, printed=printed)
                    next_refresh = time.monotonic() + args.interval
                if lv is not None:
                    lv.update(view.render(), refresh=True)
            # The run has ended: its final status and losses, drawn once more.
            view.info = info = client.get_run(info.id).info
            if not args.json:
                _refresh(client, view, out, live=live, printed=printed)
            if lv is not None:
                lv.update(view.render(), refresh=True)
    except KeyboardInterrupt:
        print("evalstream: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.json:
        last = view.losses.train[0] if view.losses.train else shown.as_of_step if shown else 0
        state = f": {shown.state.upper()}" if shown is not None and shown.state else ""
        end = f"run {info.project}/{info.name} {info.status} at step {last}{state}"
        if live:
            console.print(Text(end))
        else:
            print("", file=out)
            _show(out, end)
    return _exit_code(info, shown)


def _print_change(out: TextIO, before: Verdict | None, after: Verdict) -> None:
    """Into a pipe: the first verdict in full, then a block per change (blank line between)."""
    if before is None:
        _show(out, _verdict_view(after))
        return
    change = _verdict_change_view(before, after)
    if change is not None:
        print("", file=out)
        _show(out, change)


def _refresh(
    client: Any, view: _View, out: TextIO, *, live: bool, printed: tuple[Any, Any] | None
) -> tuple[Any, Any] | None:
    """Reads the losses; into a pipe prints a line when one is new. Returns what was printed."""
    last = view.losses.train[0] if view.losses.train else None
    if view.verdict is not None:
        last = max(last or 0, view.verdict.as_of_step)
    view.losses = _read_losses(client, view.info.id, last, view.window)
    key = (view.losses.train, view.losses.validation)
    if live or key == printed or key == (None, None):
        return printed if not live else key
    _show(out, _loss_line(view.losses))
    return key
