"""Pictures of runs: loss curves, learning rate and checkpoint metrics, with the verdict.

Needs matplotlib (``pip install 'evalstream[plot]'``); the rest of the client never
imports this module, so the thin install stays without it. Figures are built on
matplotlib's Agg canvas (no pyplot, no GUI, no global backend switch), so this
works in scripts, servers and notebooks alike.

Curves are read downsampled to the figure's width, two points per pixel column
(GetCurves ``max_points``, min-max per bucket as plotting libraries such as
tsdownsample do), so a spike or a NaN survives and a 10M-point series costs a
few thousand points. What is drawn:

- training loss in orange at every (downsampled) step, validation loss in blue at
  every evaluation (`TRAIN_COLOR`, `VALIDATION_COLOR`);
- NaN and infinite values as red crosses at the top of the panel, never dropped;
- the verdict (state and summary) in the title; the best checkpoint of the
  verdict's early stopping as a star on the monitored curve and a vertical line;
- a learning-rate panel when a ``learning_rate`` series exists, and one small
  panel per checkpoint metric (LogCheckpoint, scoring streams);
- several runs overlaid, told apart by line style and shade, labelled with the
  hyperparameters that differ between them (CompareRuns): at most
  `LEGEND_KEYS` of them, well-known keys first (`PREFERRED_KEYS`), then "+N more".

Layout: the loss and learning-rate panels keep a fixed height (`FIXED_HEIGHT` pixels)
and each row of metric panels adds `METRIC_ROW_HEIGHT`, so the default figure grows
with the number of metrics instead of squashing them. A size the caller gives is
kept: the metric panels that do not fit in rows of at least `MIN_METRIC_ROW_HEIGHT`
pixels are left out, and a note under the figure names them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgb
    from matplotlib.figure import Figure
except ImportError as exc:  # the thin client: no matplotlib
    raise ImportError("evalstream.plot needs matplotlib: pip install 'evalstream[plot]'") from exc

from evalstream._run_types import HyperValue, RunInfo, Series
from evalstream._verdicts import Verdict

__all__ = [
    "BEST_COLOR",
    "FIXED_HEIGHT",
    "FORMATS",
    "LEGEND_KEYS",
    "METRIC_ROW_HEIGHT",
    "MIN_METRIC_ROW_HEIGHT",
    "NONFINITE_COLOR",
    "PREFERRED_KEYS",
    "SPLIT_COLORS",
    "TRAIN_COLOR",
    "VALIDATION_COLOR",
    "figure_format",
    "plot_runs",
]

#: Training curves: matplotlib's tab10 orange, as the product draws them.
TRAIN_COLOR = "#ff7f0e"
#: Validation curves: matplotlib's tab10 blue.
VALIDATION_COLOR = "#1f77b4"
#: Colour of each split's curves (test: tab10 green).
SPLIT_COLORS: Mapping[str, str] = {
    "train": TRAIN_COLOR,
    "validation": VALIDATION_COLOR,
    "test": "#2ca02c",
}
#: The best checkpoint's star and vertical line.
BEST_COLOR = "#9467bd"
#: Crosses marking NaN and infinite values.
NONFINITE_COLOR = "#d62728"
#: Figure formats, by file suffix.
FORMATS = ("png", "svg", "pdf")
#: Default width, and height without metric panels, in pixels.
_DEFAULT_SIZE = (1000, 700)
#: Height in pixels of the loss and learning-rate panels with the titles (default size).
FIXED_HEIGHT = 530
#: Height in pixels each row of metric panels adds to the default figure.
METRIC_ROW_HEIGHT = 170
#: The least height in pixels of a row of metric panels in a figure of a given size;
#: the panels that would get less are left out (and named in a note).
MIN_METRIC_ROW_HEIGHT = 130
#: The least height in pixels kept for the loss and learning-rate panels.
_MIN_FIXED_HEIGHT = 300
#: Hyperparameters named in an overlaid run's legend label; the rest are "+N more".
LEGEND_KEYS = 3
#: Hyperparameters named first in legend labels when they differ; the others follow
#: in CompareRuns' order (alphabetical).
PREFERRED_KEYS = ("model", "learning_rate", "lr", "batch_size")

#: Line styles and shades (negative: towards black, positive: towards white) of overlaid runs.
_STYLES = ("-", "--", ":", "-.")
_SHADES = (0.0, -0.35, 0.4, -0.6, 0.6)
_TITLE_CHARS = 110
_METRICS_PER_ROW = 4
_METRIC_PANEL_WIDTH = 230  # pixels: fewer columns in a narrow figure
_NAME_CHARS = 24  # a run's name in a legend label or the figure's title
_VALUE_CHARS = 12  # a hyperparameter's value in a legend label


def figure_format(path: str | Path) -> str:
    """The format of a figure file from its suffix: "png", "svg" or "pdf".

    Example:
        >>> figure_format("curves.SVG")
        'svg'
        >>> figure_format("curves.jpg")
        Traceback (most recent call last):
        ...
        ValueError: cannot write 'curves.jpg': the format comes from the suffix, .png, .svg or .pdf
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(
            f"cannot write {str(path)!r}: the format comes from the suffix, "
            + ", ".join(f".{f}" for f in FORMATS[:-1])
            + f" or .{FORMATS[-1]}"
        )
    return suffix


@dataclass(frozen=True)
class _RunData:
    """What is drawn of one run."""

    info: RunInfo
    label: str
    series: Mapping[tuple[str, str], Series]  # (split, name): loss and learning_rate
    metrics: Mapping[tuple[str, str], tuple[list[int], list[float]]]  # (split, metric)
    verdict: Verdict


def plot_runs(
    client: Any,
    runs: Sequence[Any],
    *,
    log_scale: bool = False,
    title: str | None = None,
    size: tuple[int, int] | None = None,
    dpi: int = 100,
) -> Figure:
    """A figure of one run or several overlaid: losses, learning rate, checkpoint metrics.

    Args:
        client: A connected `evalstream.Client`.
        runs: Run ids, ``"project/name"`` strings or `Run` handles, 1 to 10.
        log_scale: Loss on a logarithmic axis.
        title: The figure's title (default: the run's ``project/name``; several
            runs: "N runs: " and their names); the verdicts stay in the loss
            panel's title.
        size: Width and height in pixels (at `dpi`); curves are read with two
            points per pixel column of the width. Default: 1000 wide, 700 high
            and `METRIC_ROW_HEIGHT` higher for each row of metric panels beyond
            the first. A size given is kept: metric panels that do not fit are
            left out and named in a note under the figure.
        dpi: Dots per inch of the figure.

    Returns:
        A matplotlib `Figure` on an Agg canvas: ``fig.savefig("curves.png")``.

    Raises:
        ValueError: no runs or more than 10, or a size under 100 pixels.
        NotFound: a run is unknown.

    Example:
        >>> from evalstream.plot import plot_runs
        >>> fig = plot_runs(client, ["vqa/lr3e-4", "vqa/lr1e-4"], log_scale=True)  # doctest: +SKIP
        >>> fig.savefig("curves.png")  # doctest: +SKIP
    """
    if not 1 <= len(runs) <= 10:
        raise ValueError(f"plot_runs draws 1 to 10 runs, got {len(runs)}")
    width = _DEFAULT_SIZE[0] if size is None else size[0]
    if size is not None and min(size) < 100:
        raise ValueError(f"size {size[0]}x{size[1]}: at least 100x100 pixels")
    data = _read(client, runs, max_points=2 * width)
    layout = _layout(data, size)
    fig = Figure(figsize=(layout.width / dpi, layout.height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    _draw(fig, data, layout, log_scale=log_scale, title=title)
    return fig


# ------------------------------------------------------------------ reading


def _read(client: Any, runs: Sequence[Any], *, max_points: int) -> list[_RunData]:
    handles = [client.get_run(r if isinstance(r, str) else r.id) for r in runs]
    ids = [h.id for h in handles]
    changed: tuple[str, ...] = ()
    if len(set(ids)) > 1:
        changed = tuple(client.compare(ids).differing)
    out = []
    for h in handles:
        info: RunInfo = h.info
        series = client.curves(info.id, series=("loss", "learning_rate"), max_points=max_points)
        metrics: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        for evaluation in client.evaluation_steps(info.id):
            for name, value in evaluation.metrics.items():
                steps, values = metrics.setdefault((evaluation.split, name), ([], []))
                steps.append(evaluation.step)
                values.append(value)
        out.append(
            _RunData(
                info=info,
                label=_label(info, changed, several=len(handles) > 1),
                series={(s.split, s.name): s for s in series},
                metrics=metrics,
                verdict=client.verdict(info.id),
            )
        )
    return out


def _short(value: HyperValue | None) -> str:
    """A hyperparameter as a legend shows it.

    >>> _short(3e-4), _short(0.1), _short(32), _short("adamw")
    ('3e-4', '0.1', '32', 'adamw')
    """
    if isinstance(value, float) and value != 0 and math.isfinite(value):
        if abs(value) < 1e-3 or abs(value) >= 1e5:
            mantissa, exponent = f"{value:.2e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _legend_keys(changed: Sequence[str]) -> list[str]:
    """The differing keys in label order: `PREFERRED_KEYS` first, then CompareRuns' order.

    >>> _legend_keys(["batch_size", "d_model", "learning_rate", "warmup"])
    ['learning_rate', 'batch_size', 'd_model', 'warmup']
    """
    first = [k for k in PREFERRED_KEYS if k in changed]
    return first + [k for k in changed if k not in first]


def _label(info: RunInfo, changed: Sequence[str], *, several: bool) -> str:
    """The run's name, and with several runs the values of what changed between them.

    At most `LEGEND_KEYS` keys (then "+N more"), long names and values shortened,
    so that a legend entry stays narrower than the figure.
    """
    if not several:
        return f"{info.project}/{info.name}"
    keys = _legend_keys(changed)
    values = []
    for key in keys[:LEGEND_KEYS]:
        value = info.model if key == "model" else info.hyperparameters.get(key)
        values.append(f"{key}={_shorten(_short(value), _VALUE_CHARS)}")
    if len(keys) > LEGEND_KEYS:
        values.append(f"+{len(keys) - LEGEND_KEYS} more")
    name = _shorten(info.name, _NAME_CHARS)
    return f"{name} ({', '.join(values)})" if values else name


@dataclass(frozen=True)
class _Layout:
    """The figure's size in pixels and the metric panels it has room for."""

    width: int
    height: int
    metrics: tuple[str, ...]  # drawn, sorted
    left_out: tuple[str, ...]  # no room: named in a note
    cols: int

    @property
    def rows(self) -> int:
        return -(-len(self.metrics) // self.cols) if self.metrics else 0


def _layout(data: Sequence[_RunData], size: tuple[int, int] | None) -> _Layout:
    """Grows the default height with the metric rows; caps the panels of a given size."""
    names = sorted({name for d in data for _, name in d.metrics})
    if size is None:
        cols = min(len(names), _METRICS_PER_ROW) or 1
        rows = -(-len(names) // cols)
        height = _DEFAULT_SIZE[1] if not rows else FIXED_HEIGHT + METRIC_ROW_HEIGHT * rows
        return _Layout(_DEFAULT_SIZE[0], height, tuple(names), (), cols)
    width, height = size
    cols = max(1, min(len(names), _METRICS_PER_ROW, width // _METRIC_PANEL_WIDTH))
    rows = min(-(-len(names) // cols), (height - _MIN_FIXED_HEIGHT) // MIN_METRIC_ROW_HEIGHT)
    room = max(0, rows) * cols
    if room >= len(names):
        return _Layout(width, height, tuple(names), (), cols)
    # the metrics the verdicts monitor first, then alphabetical
    monitored = [d.verdict.early_stopping.monitor.partition("/")[2] for d in data]
    keep = [n for n in dict.fromkeys(monitored) if n in names]
    keep += [n for n in names if n not in keep]
    drawn = sorted(keep[:room])
    return _Layout(width, height, tuple(drawn), tuple(n for n in names if n not in drawn), cols)


# ------------------------------------------------------------------ drawing


def _shade(color: str, index: int) -> tuple[float, float, float]:
    """`color` for the index-th overlaid run: itself, then darker and lighter shades."""
    amount = _SHADES[index % len(_SHADES)]
    rgb = to_rgb(color)
    target = 0.0 if amount < 0 else 1.0
    return tuple(c + (target - c) * abs(amount) for c in rgb)  # type: ignore[return-value]


def _shorten(text: str, limit: int = _TITLE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _curve(
    ax: Axes,
    s: Series,
    *,
    color: Any,
    style: str,
    label: str,
    markers: bool,
) -> None:
    """One series: non-finite values break the line and are crossed at the top of the axis."""
    values = [v if math.isfinite(v) else math.nan for v in s.values]
    ax.plot(
        s.steps,
        values,
        color=color,
        linestyle=style,
        linewidth=1.2,
        marker="o" if markers else None,
        markersize=3,
        label=label,
    )
    bad = [step for step, v in zip(s.steps, s.values, strict=True) if not math.isfinite(v)]
    if bad:
        ax.plot(
            bad,
            [0.97] * len(bad),
            linestyle="none",
            marker="x",
            markersize=7,
            color=NONFINITE_COLOR,
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label=f"NaN/inf in {label} ({len(bad)})",
            gid="nonfinite",
        )


def _draw(
    fig: Figure,
    data: Sequence[_RunData],
    layout: _Layout,
    *,
    log_scale: bool,
    title: str | None,
) -> None:
    several = len(data) > 1
    has_lr = any(("train", "learning_rate") in d.series for d in data)
    metric_names, cols, metric_rows = layout.metrics, layout.cols, layout.rows
    # in pixels: the metric rows get their share, loss and learning rate the rest (3:1)
    metric_px = min(METRIC_ROW_HEIGHT * metric_rows, layout.height - _MIN_FIXED_HEIGHT)
    fixed_px = layout.height - max(metric_px, 0)
    ratios = [fixed_px * 0.75, fixed_px * 0.25] if has_lr else [float(fixed_px)]
    if metric_rows:
        ratios.append(float(metric_px))
    grid = fig.add_gridspec(len(ratios), 1, height_ratios=ratios)
    loss_ax = fig.add_subplot(grid[0])
    panels: dict[tuple[str, str], Axes] = {}
    lr_ax = fig.add_subplot(grid[1], sharex=loss_ax) if has_lr else None
    if lr_ax is not None:
        loss_ax.tick_params(labelbottom=False)  # the learning-rate panel's axis is below
    if metric_names:
        sub = grid[len(ratios) - 1].subgridspec(metric_rows, cols)
        for i, name in enumerate(metric_names):
            ax = fig.add_subplot(sub[i // cols, i % cols], sharex=loss_ax)
            ax.set_title(name, fontsize="small")
            ax.tick_params(labelsize="x-small")
            if i + cols >= len(metric_names):  # the lowest panel of its column
                ax.set_xlabel("step", fontsize="small")
            panels[("metric", name)] = ax

    verdict_lines = []
    for index, d in enumerate(data):
        style = _STYLES[index % len(_STYLES)]
        prefix = f"{d.label} " if several else ""
        for split in ("train", "validation", "test"):
            s = d.series.get((split, "loss"))
            if s is not None and s.steps:
                _curve(
                    loss_ax,
                    s,
                    color=_shade(SPLIT_COLORS[split], index),
                    style=style,
                    label=f"{prefix}{split} loss",
                    markers=split != "train",
                )
        lr = d.series.get(("train", "learning_rate"))
        if lr_ax is not None and lr is not None and lr.steps:
            _curve(
                lr_ax,
                lr,
                color=_shade("#7f7f7f", index),
                style=style,
                label=f"{prefix}learning rate",
                markers=False,
            )
        for (split, name), (steps, values) in sorted(d.metrics.items()):
            panel = panels.get(("metric", name))
            if panel is None:  # no room: named in the figure's note
                continue
            color = _shade(SPLIT_COLORS.get(split, "#7f7f7f"), index)
            panel.plot(
                steps,
                values,
                color=color,
                linestyle=style,
                marker="o",
                markersize=3,
                label=f"{prefix}{split} {name}",
            )
        others = [a for a in (lr_ax, *panels.values()) if a is not None]
        # the star's legend entry names the run only: the label is in the curves' entries
        best_prefix = f"{_shorten(d.info.name, _NAME_CHARS)} " if several else ""
        _mark_best(d, index, loss_ax, others, prefix=best_prefix)
        v = d.verdict
        state = (v.state or "unknown").upper() + (f" ({v.severity})" if v.severity else "")
        head = f"{d.info.name}: " if several else ""
        line = f"{head}{state} at step {v.as_of_step}: {v.summary}"
        verdict_lines.append(_shorten(line, min(_TITLE_CHARS, int(layout.width / 7.5))))

    if not loss_ax.lines:
        loss_ax.text(
            0.5, 0.5, "no loss logged", ha="center", va="center", transform=loss_ax.transAxes
        )
    if log_scale:
        loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss (log)" if log_scale else "loss")
    loss_ax.set_title("\n".join(verdict_lines), fontsize="small", loc="left")
    loss_ax.grid(True, alpha=0.3)
    if loss_ax.lines:
        # two columns only when two labels fit side by side in the panel
        longest = max(len(str(ln.get_label())) for ln in loss_ax.lines)
        ncol = 2 if several and longest * 2 <= layout.width / 11 else 1
        legend = loss_ax.legend(fontsize="x-small", ncol=ncol, loc="best")
        # wider than a small figure's panel, it must not squash the panels to nothing
        legend.set_in_layout(False)
    if lr_ax is not None:
        # a short panel (a small size) takes a short label: a long one would collapse it
        lr_ax.set_ylabel("learning rate" if ratios[1] >= 110 else "lr")
        lr_ax.grid(True, alpha=0.3)
        lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    (lr_ax if lr_ax is not None else loss_ax).set_xlabel("step")
    for ax in panels.values():
        # a legend when one run has the metric on several splits (runs: the loss legend)
        if not several and sum(ln.get_gid() is None for ln in ax.lines) > 1:
            ax.legend(fontsize="xx-small", loc="best")
    if layout.left_out:
        fig.supxlabel(
            _shorten(
                f"{len(layout.left_out)} of {len(layout.left_out) + len(metric_names)} "
                f"metric panels left out at {layout.width}x{layout.height} px (a larger "
                f"size draws them): {', '.join(layout.left_out)}",
                int(layout.width / 6),  # x-small: ~5.3 px a character
            ),
            fontsize="x-small",
            x=0.01,
            ha="left",
            color="#555555",
        )
    if title is None:
        title = data[0].label
        if several:
            names = ", ".join(_shorten(d.info.name, _NAME_CHARS) for d in data)
            title = f"{len(data)} runs: {names}"
    fig.suptitle(_shorten(title, min(_TITLE_CHARS, int(layout.width / 9))))


def _mark_best(
    d: _RunData, index: int, loss_ax: Axes, others: Sequence[Axes], *, prefix: str
) -> None:
    """The best checkpoint: a star on the monitored curve, a vertical line on every panel."""
    es = d.verdict.early_stopping
    if es.best_step is None:
        return
    step = es.best_step
    style = _STYLES[index % len(_STYLES)]
    color = _shade(BEST_COLOR, index)
    split, _, name = es.monitor.partition("/")
    target = loss_ax
    for ax in others:
        if ax.get_title() == name:
            target = ax
    value = es.best_value
    if value is not None and math.isfinite(value) and (name == "loss" or target is not loss_ax):
        target.plot(
            [step],
            [value],
            linestyle="none",
            marker="*",
            markersize=13,
            markerfacecolor=color,
            markeredgecolor="black",
            label=f"{prefix}best {es.monitor} {value:.4g} at step {step}",
            gid="best",
            zorder=5,
        )
    for ax in (loss_ax, *others):
        ax.axvline(step, color=color, linestyle=style, linewidth=1, alpha=0.8, gid="best-step")
    loss_ax.annotate(
        f"best step {step}",
        xy=(step, 1.0),
        xycoords=loss_ax.get_xaxis_transform(),
        xytext=(3, -12 - 11 * index),
        textcoords="offset points",
        fontsize="x-small",
        color=color,
    )
