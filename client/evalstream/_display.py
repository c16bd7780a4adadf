"""How verdicts and comparisons read as text: what `str()` of a Verdict or a
Comparison returns and what the CLI prints, one implementation for both.

Drawn with rich (https://github.com/Textualize/rich): `format_verdict` and
`format_comparison` return plain text (no colour, no box drawing, not wrapped
unless ``COLUMNS`` says a width); the CLI prints the same views coloured and
fitted to a terminal. The table machinery (`_grid`, `_render`) serves the CLI's
other views too. Verdicts and comparisons are typed `Any` here because
`evalstream._verdicts` imports this module for their `__str__`.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

#: The width of output that is not fitted to a terminal: wide enough never to wrap a row,
#: so that grep and awk see one row per line.
_UNWRAPPED = 10_000

_GOOD, _FAIR, _BAD = "green", "yellow", "red"
#: Colours of the words for bands, grades, states, severities and statuses.
_STYLES: Mapping[str, str] = {
    # bands of scores (evalstream_server.metrics.bands)
    "excellent": _GOOD,
    "very_tight": _GOOD,
    "high": _GOOD,
    "good": _GOOD,
    "acceptable": _FAIR,
    "moderate": _FAIR,
    "medium": _FAIR,
    "low": _BAD,
    "poor": _BAD,
    "very_poor": _BAD,
    "needs_improvement": _BAD,
    # verdict states, checkpoint grades and overfitting severities
    "healthy": _GOOD,
    "insufficient_data": "dim",
    "underfitting": _FAIR,
    "overfitting": _FAIR,
    "mild": _FAIR,
    "severe": _BAD,
    "severe_overfitting": _BAD,
    "not_learning": _BAD,
    "unstable": _BAD,
    "diverged": _BAD,
    # run statuses and health
    "running": "cyan",
    "finished": _GOOD,
    "failed": _BAD,
    "killed": _BAD,
    "serving": _GOOD,
    "not_serving": _BAD,
}
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?%?")
#: A cell that is a styled word, alone or after a number ("0.7500 good").
_STYLED_CELL = re.compile(r"(?:\S+ )?\(?([A-Za-z_]+)\)?")


def _num(x: Any) -> str:
    """A value for a table cell: "-" for None, 4 significant digits for a float."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, (tuple, list)):
        return ", ".join(_num(i) for i in x) or "-"
    return str(x)


def _styled(text: str) -> Text:
    """``text`` with its band, grade or state word coloured (seen only on a terminal)."""
    m = _STYLED_CELL.fullmatch(text)
    style = _STYLES.get(m.group(1).lower(), "") if m else ""
    out = Text(text)
    if m and style:
        out.stylize(style, m.start(1), m.end(1))
    return out


def _numeric(cells: Iterable[str]) -> bool:
    """Whether a column holds numbers (or "-"/"n/a" where a number is missing)."""
    seen = False
    for c in cells:
        first = c.split(" ", 1)[0]
        if _NUMBER.fullmatch(first):
            seen = True
        elif c.strip() not in ("", "-", "n/a"):
            return False
    return seen


#: The widest a wrapped text column is kept (a longer word, such as a path, is folded).
_MAX_WORD = 20
#: The widest a header keeps a word before folding it.
_MAX_HEADER_WORD = 12


def _longest_word(cells: Iterable[str], cap: int | None) -> int:
    longest = max((len(w) for c in cells for w in c.split()), default=1)
    return longest if cap is None else min(longest, cap)


def _fit(natural: Sequence[int], narrowest: Sequence[int], available: int) -> list[int] | None:
    """Column widths that sum to at most ``available``, or None when none do.

    The widest column that may still shrink gives up a character at a time, so that
    short columns stay whole and the long text wraps.

    Example:
        >>> _fit([4, 30, 6], [4, 10, 6], 30)
        [4, 20, 6]
        >>> _fit([4, 30, 6], [4, 10, 6], 19) is None
        True
    """
    widths = list(natural)
    for _ in range(sum(widths) - available):
        shrinkable = [i for i, w in enumerate(widths) if w > narrowest[i]]
        if not shrinkable:
            return None
        widths[max(shrinkable, key=widths.__getitem__)] -= 1
    return widths


class _Grid:
    """A table of string cells that fits the width it is drawn in.

    Numeric columns are right-aligned and their numbers never broken; text wraps at
    spaces. When even the narrowest layout is too wide, each row is drawn as a record
    (one "header  value" line per column), as ``psql``'s expanded display does.
    """

    def __init__(self, rows: Sequence[Sequence[str]], *, header: bool, indent: int) -> None:
        self.head = list(rows[0]) if header else None
        self.body = [list(r) for r in (rows[1:] if header else rows)]
        self.indent = indent
        columns = list(zip(*self.body, strict=True)) or [()] * len(rows[0])
        head = self.head or [""] * len(columns)
        self.numeric = [_numeric(c) for c in columns]
        self.natural = [
            max([len(name), *map(len, cells)]) for name, cells in zip(head, columns, strict=True)
        ]
        self.narrowest = [
            max(
                _longest_word(cells, None if numeric else _MAX_WORD),
                _longest_word([name], _MAX_HEADER_WORD),
            )
            for name, cells, numeric in zip(head, columns, self.numeric, strict=True)
        ]

    def _table(self, widths: Sequence[int]) -> Table:
        table = Table(
            box=None, pad_edge=False, show_header=self.head is not None, header_style="bold"
        )
        for i, numeric in enumerate(self.numeric):
            table.add_column(
                self.head[i] if self.head else "",
                justify="right" if numeric else "left",
                overflow="fold",
                width=widths[i],
            )
        for r in self.body:
            table.add_row(*(_styled(c) for c in r))
        return table

    def _records(self, head: Sequence[str]) -> Group:
        records: list[RenderableType] = []
        for number, r in enumerate(self.body):
            if number:
                records.append(Text(""))
            record = Table(box=None, pad_edge=False, show_header=False)
            record.add_column(style="bold", overflow="fold", max_width=_MAX_HEADER_WORD * 2)
            record.add_column(overflow="fold")
            for name, cell in zip(head, r, strict=True):
                record.add_row(name, _styled(cell))
            records.append(record)
        return Group(*records)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        available = options.max_width - self.indent - 2 * (len(self.natural) - 1)
        widths = _fit(self.natural, self.narrowest, available)
        if widths is None and self.head is not None:
            yield _indent(self._records(self.head), self.indent)
        else:  # a headerless grid (two columns: a name and its value) wraps as it must
            yield _indent(self._table(widths or self.narrowest), self.indent)


def _indent(view: RenderableType, by: int = 2) -> RenderableType:
    return Padding(view, (0, 0, 0, by), expand=False) if by else view


def _grid(rows: Sequence[Sequence[str]], *, header: bool = True, indent: int = 0) -> _Grid:
    """A table of string cells (the first row its header unless ``header=False``)."""
    return _Grid(rows, header=header, indent=indent)


def _console(stream: TextIO) -> Console:
    """A console on ``stream``: colour and the terminal's width on a terminal, else plain.

    Rich leaves out colour and escape codes when ``stream`` is not a terminal (and
    honours NO_COLOR and FORCE_COLOR); it wraps at ``COLUMNS`` when that is set.
    """
    console = Console(file=stream, highlight=False, markup=False, emoji=False)
    columns = os.environ.get("COLUMNS", "")
    if not console.is_terminal and not columns.isdigit():
        console.width = _UNWRAPPED
    return console


def _render(view: RenderableType, *, width: int | None = None) -> str:
    """``view`` as plain text, ``width`` wide (default: as stdout would print it)."""
    buffer = io.StringIO()
    console = _console(buffer)
    if width is not None:
        console.width = width
    console.print(view)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").split("\n"))


def _table(rows: Sequence[Sequence[str]], *, indent: int = 0) -> str:
    """Rows of strings, the first the header, as an aligned plain-text table.

    Example:
        >>> print(_table([["name", "value"], ["bleu", "0.31"], ["rouge1", "0.4762"]]))
        name     value
        bleu      0.31
        rouge1  0.4762
    """
    return _render(_grid(rows, indent=indent))


def _state(v: Any) -> Text:
    """The verdict's state in capitals with its severity, coloured by both."""
    out = Text()
    out.append(v.state.upper() or "UNKNOWN", style=_STYLES.get(v.state, ""))
    if v.severity:
        out.append(" (")
        out.append(v.severity, style=_STYLES.get(v.severity, ""))
        out.append(")")
    return out


def _best(v: Any) -> str | None:
    """The early-stopping line, or None when there is no best evaluation yet."""
    es = v.early_stopping
    if es.best_step is None:
        return None
    value = "" if es.best_value is None else f" {es.best_value:.4g}"
    ago = es.evaluations_since_best
    since = f"{ago} evaluation{'' if ago == 1 else 's'} ago" if ago else "the latest evaluation"
    stop = "stop now" if es.should_stop else "keep going"
    saved = f"; saved in {es.best_checkpoint_path}" if es.best_checkpoint_path else ""
    return f"best {es.monitor}{value} at step {es.best_step} ({since}): {stop}{saved}"


def _checkpoint_rows(checkpoints: Iterable[Any]) -> list[list[str]]:
    """The checkpoint table; a "saved in" column once any checkpoint has a recorded path."""
    checkpoints = list(checkpoints)
    paths = any(c.path for c in checkpoints)
    rows = [["step", "metric", "train", "validation", "grade"] + (["saved in"] if paths else [])]
    rows += [
        [str(c.step), c.metric, _num(c.train_value), _num(c.validation_value), c.grade or "-"]
        + ([c.path or "-"] if paths else [])
        for c in checkpoints
    ]
    return rows


def _verdict_view(v: Any) -> RenderableType:
    head = _state(v)
    head.append(f" at step {v.as_of_step}")
    if v.summary:
        head.append(f": {v.summary}")
    out: list[RenderableType] = [head]
    evidence = [
        [k.replace("_", " "), _num(x)] for k, x in v.evidence.items() if x not in (None, ())
    ]
    if evidence:
        out += [Text("evidence"), _grid(evidence, header=False, indent=2)]
    best = _best(v)
    if best:
        out.append(Text(best))
    if v.checkpoints:
        out += [Text("checkpoints"), _grid(_checkpoint_rows(v.checkpoints), indent=2)]
    if v.advice:
        out += [Text("advice"), _grid([["-", a.text] for a in v.advice], header=False, indent=2)]
    lc = v.loss_context
    if lc.get("initial_loss") is not None and lc.get("final_loss") is not None:

        def loss(key: str) -> str:
            band = lc.get(f"{key}_band")
            return f"{lc[f'{key}_loss']:.4g}" + (f" ({band})" if band else "")

        caveat = f"; {lc['caveat']}" if lc.get("caveat") else ""
        out.append(Text(f"loss context: start {loss('initial')}, final {loss('final')}{caveat}"))
    return Group(*out)


def format_verdict(v: Any) -> str:
    """A verdict as readable text: state, evidence, where to stop, checkpoints, advice."""
    return _render(_verdict_view(v))


def _verdict_change_view(before: Any, after: Any) -> RenderableType | None:
    """What ``after`` says that ``before`` did not, or None when nothing shown changed."""
    head = Text(f"step {after.as_of_step}")
    lines: list[RenderableType] = [head]
    state_changed = (before.state, before.severity) != (after.state, after.severity)
    if state_changed:
        head.append(": ")
        head.append_text(_state(after))
        head.append(", was ")
        head.append_text(_state(before))
    if after.summary != before.summary and after.summary:
        lines.append(_indent(Text(after.summary)))
    shown = set(before.advice)
    lines += [_indent(Text(f"advice: {a.text}")) for a in after.advice if a not in shown]
    best = _best(after)
    if best and best != _best(before):
        lines.append(_indent(Text(best)))
    old = set(before.checkpoints)
    new = [c for c in after.checkpoints if c not in old]
    if new:
        lines.append(_grid(_checkpoint_rows(new), indent=2))
    if len(lines) == 1 and not state_changed:
        return None
    return Group(*lines)


def format_verdict_change(before: Any, after: Any) -> str:
    """One short block of what changed between two verdicts ("" when nothing shown did).

    The state and severity, the summary, new advice, a new best step and new or
    regraded checkpoint rows; ``runs watch`` prints this after the first verdict.
    """
    view = _verdict_change_view(before, after)
    return "" if view is None else _render(view)


def _comparison_view(c: Any) -> RenderableType:
    keys = sorted({k for r in c.rows for k in r.hyperparameters})
    metrics = sorted({m for r in c.rows for m in r.best_metrics})
    head = ["run", "model"] + [f"{k}*" if k in c.differing else k for k in keys]
    head += ["final train", "best val", "state"] + metrics
    rows = [head] + [
        [r.run_name or r.run_id, r.model or "-"]
        + [str(r.hyperparameters[k]) if k in r.hyperparameters else "-" for k in keys]
        + [_num(r.final_train_loss), _num(r.best_validation_loss), r.state or "-"]
        + [_num(r.best_metrics.get(m)) for m in metrics]
        for r in c.rows
    ]
    out: list[RenderableType] = [_grid(rows)]
    for p in c.pairs:
        line = Text(f"{p.run_a} vs {p.run_b}: changed {', '.join(p.changed) or 'nothing'}")
        if p.warning:
            line.append("  WARNING: ", style=_BAD)
            line.append(p.warning)
        out.append(line)
    out += [Text(f"best {metric}: {rid} ({value:.4g})") for metric, (rid, value) in c.best.items()]
    if c.incomparable:
        out.append(Text("not compared (signatures differ): " + ", ".join(c.incomparable)))
    return Group(*out)


def format_comparison(c: Any) -> str:
    """The comparison table; hyperparameters that differ across runs are marked with *."""
    return _render(_comparison_view(c))
