"""`evalstream runs plot` and `evalstream.plot.plot_runs` against a real server.

The drawn figure is read back (its Line2D data, colours, titles, markers) and
checked against what was logged, and against the server's own min-max
downsampling as the reference for long series.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from evalstream import Client, plot
from evalstream._run_types import RunInfo
from evalstream.cli import main
from evalstream_server.store.downsample import downsample_minmax
from matplotlib.colors import to_hex, to_rgba
from matplotlib.lines import Line2D

STEPS = list(range(0, 300))


def _train(step: int) -> float:
    return 3.0 * math.exp(-step / 80) + 0.2


def _validation(step: int) -> float:
    # falls to its best at step 150, then rises: overfitting
    return 0.6 + ((step - 150) / 100) ** 2


def _make_run(
    client: Client,
    name: str,
    *,
    lr: float = 3e-4,
    nan_at: int | None = None,
    verdict_config: dict[str, object] | None = None,
) -> str:
    run = client.create_run(
        "p",
        name,
        hyperparameters={"learning_rate": lr, "batch_size": 8},
        verdict_config=verdict_config,
    )
    values = [_train(s) for s in STEPS]
    if nan_at is not None:
        values[nan_at] = float("nan")
    run.log_many(STEPS, values)
    run.log_many(STEPS, [lr * (1 - s / 300) for s in STEPS], series="learning_rate")
    evals = list(range(50, 300, 50))
    run.log_many(evals, [_validation(s) for s in evals], split="validation")
    for s in evals:
        run.log_checkpoint(s, {"bleu": 0.1 + s / 1000, "rougeL": 0.2 + s / 2000})
    run.finish()
    return run.id


def _lines(fig, label: str) -> list[Line2D]:  # noqa: ANN001 - Figure
    return [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label() == label]


def _line(fig, label: str) -> Line2D:  # noqa: ANN001
    found = _lines(fig, label)
    assert len(found) == 1, [ln.get_label() for ax in fig.axes for ln in ax.get_lines()]
    return found[0]


def test_plot_draws_the_logged_points_in_the_product_colours(live_server) -> None:
    with Client(live_server.target) as client:
        run_id = _make_run(client, "one")
        verdict = client.verdict(run_id)
        fig = plot.plot_runs(client, ["p/one"])
    train = _line(fig, "train loss")
    assert list(train.get_xdata()) == STEPS
    np.testing.assert_allclose(train.get_ydata(), [_train(s) for s in STEPS])
    assert to_hex(train.get_color()) == "#ff7f0e" == plot.TRAIN_COLOR
    validation = _line(fig, "validation loss")
    assert list(validation.get_xdata()) == [50, 100, 150, 200, 250]
    np.testing.assert_allclose(validation.get_ydata(), [_validation(s) for s in range(50, 300, 50)])
    assert to_hex(validation.get_color()) == "#1f77b4" == plot.VALIDATION_COLOR
    assert validation.get_marker() == "o" and train.get_marker() in ("None", None, "")

    loss_ax = train.axes
    assert verdict.state and verdict.state.upper() in loss_ax.get_title(loc="left")
    assert fig.get_suptitle() == "p/one"

    # the best checkpoint: validation loss was best at step 150
    assert verdict.early_stopping.best_step == 150
    (best,) = [ln for ln in loss_ax.get_lines() if ln.get_gid() == "best"]
    assert list(best.get_xdata()) == [150]
    assert best.get_ydata()[0] == pytest.approx(_validation(150))
    assert "best validation/loss" in best.get_label()
    vlines = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "best-step"]
    assert vlines and all(list(ln.get_xdata()) == [150, 150] for ln in vlines)

    # the learning-rate panel and one panel per checkpoint metric
    lr = _line(fig, "learning rate")
    np.testing.assert_allclose(lr.get_ydata(), [3e-4 * (1 - s / 300) for s in STEPS])
    assert lr.axes.get_ylabel() == "learning rate"
    assert sorted(ax.get_title() for ax in fig.axes if ax.get_title()) == ["bleu", "rougeL"]
    bleu = _line(fig, "validation bleu")
    assert list(bleu.get_xdata()) == [50, 100, 150, 200, 250]
    np.testing.assert_allclose(bleu.get_ydata(), [0.1 + s / 1000 for s in range(50, 300, 50)])
    assert to_hex(bleu.get_color()) == plot.VALIDATION_COLOR
    assert any(ln.get_gid() == "best-step" for ln in bleu.axes.get_lines())


def test_plot_stars_a_checkpoint_metric_monitor_in_its_panel(live_server) -> None:
    with Client(live_server.target) as client:
        _make_run(client, "bleu", verdict_config={"monitor": "validation/bleu"})
        verdict = client.verdict("p/bleu")
        fig = plot.plot_runs(client, ["p/bleu"])
    assert verdict.early_stopping.best_step == 250  # bleu rises to its last evaluation
    bleu = _line(fig, "validation bleu")
    (best,) = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == "best"]
    assert best.axes is bleu.axes
    assert (list(best.get_xdata()), best.get_ydata()[0]) == ([250], pytest.approx(0.35))
    assert best.get_label() == "best validation/bleu 0.35 at step 250"


def test_plot_marks_nan_at_the_top_of_the_axis(live_server) -> None:
    with Client(live_server.target) as client:
        _make_run(client, "nan", nan_at=120)
        fig = plot.plot_runs(client, ["p/nan"], log_scale=True)
    train = _line(fig, "train loss")
    y = np.asarray(train.get_ydata(), dtype=float)
    assert np.isnan(y[120]) and np.isfinite(np.delete(y, 120)).all()
    (crosses,) = [ln for ln in train.axes.get_lines() if ln.get_gid() == "nonfinite"]
    assert list(crosses.get_xdata()) == [120] and crosses.get_marker() == "x"
    assert to_hex(crosses.get_color()) == plot.NONFINITE_COLOR
    assert train.axes.get_yscale() == "log"
    assert "DIVERGED" in train.axes.get_title(loc="left")
    fig.savefig(io.BytesIO(), format="png")  # draws without error


def test_plot_reads_long_series_downsampled_min_max(live_server) -> None:
    steps = np.arange(20_000)
    values = 2.0 + np.sin(steps / 500)
    values[12_345] = 50.0  # a spike that must stay visible
    with Client(live_server.target) as client:
        run = client.create_run("p", "long")
        run.log_many(steps, values)
        run.finish()
        fig = plot.plot_runs(client, [run.id], size=(300, 200))
    train = _line(fig, "train loss")
    keep = downsample_minmax(steps, values, 600)  # two points per pixel column
    assert len(train.get_xdata()) == len(keep) <= 600
    assert list(train.get_xdata()) == steps[keep].tolist()
    np.testing.assert_allclose(train.get_ydata(), values[keep])
    assert 12_345 in list(train.get_xdata())


def test_overlay_legend_names_what_changed(live_server) -> None:
    with Client(live_server.target) as client:
        _make_run(client, "lr3e-4", lr=3e-4)
        _make_run(client, "lr1e-4", lr=1e-4)
        fig = plot.plot_runs(client, ["p/lr3e-4", "p/lr1e-4"])
    a = _line(fig, "lr3e-4 (learning_rate=3e-4) train loss")
    b = _line(fig, "lr1e-4 (learning_rate=1e-4) train loss")
    legend = [t.get_text() for t in a.axes.get_legend().get_texts()]
    assert "lr3e-4 (learning_rate=3e-4) train loss" in legend
    assert "lr1e-4 (learning_rate=1e-4) validation loss" in legend
    assert a.get_linestyle() != b.get_linestyle()
    for line in (a, b):  # orange-ish: red > green > blue
        r, g, bl, _ = to_rgba(line.get_color())
        assert r > g > bl
    for label in (
        "lr3e-4 (learning_rate=3e-4) validation loss",
        "lr1e-4 (learning_rate=1e-4) validation loss",
    ):
        r, g, bl, _ = to_rgba(_line(fig, label).get_color())
        assert bl > g > r  # blue-ish
    title = a.axes.get_title(loc="left")
    assert title.startswith("lr3e-4: ") and "\nlr1e-4: " in title


@pytest.mark.parametrize(
    ("suffix", "magic"), [(".png", b"\x89PNG\r\n\x1a\n"), (".svg", b"<svg"), (".pdf", b"%PDF-")]
)
def test_cli_writes_each_format(live_server, tmp_path: Path, suffix: str, magic: bytes) -> None:
    with Client(live_server.target) as client:
        _make_run(client, "fmt")
    path = tmp_path / f"curves{suffix}"
    out = io.StringIO()
    argv = ["--target", live_server.target, "runs", "plot", "p/fmt", "-o", str(path)]
    assert main([*argv, "--log-scale", "--title", "My run", "--size", "600x450"], out=out) == 0
    data = path.read_bytes()
    head = data[:8] if suffix != ".svg" else data[:400]
    assert magic in head if suffix == ".svg" else head.startswith(magic)
    assert out.getvalue() == f"wrote {path}\n"
    if suffix == ".svg":
        assert b"My run" in data


def test_cli_bad_suffix_is_refused_before_any_call(tmp_path: Path, capsys) -> None:
    # nothing listens on port 1: a call would fail with UNAVAILABLE (exit 1), not 2
    argv = ["--target", "127.0.0.1:1", "runs", "plot", "r_1", "-o", str(tmp_path / "c.jpg")]
    assert main(argv, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "c.jpg: the format comes from the suffix; use .png, .svg or .pdf (got '.jpg')" in err
    assert not (tmp_path / "c.jpg").exists()


def test_cli_without_matplotlib_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    monkeypatch.delitem(sys.modules, "evalstream.plot", raising=False)
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    argv = ["--target", "127.0.0.1:1", "runs", "plot", "r_1", "-o", str(tmp_path / "c.png")]
    assert main(argv, out=io.StringIO()) == 2
    assert "pip install 'evalstream[plot]'" in capsys.readouterr().err


def test_the_client_and_its_cli_never_import_matplotlib() -> None:
    probe = "import sys, evalstream, evalstream.cli; print('matplotlib' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "False"


# -------------------------------------------------------- layout with many metrics and keys

TEXT_METRICS = [
    "bertscore_f1",
    "bleu",
    "meteor",
    *(f"rouge{k}_{m}" for k in ("1", "2", "L") for m in ("fmeasure", "precision", "recall")),
]
VQA = {  # hyperparameters of two runs differing in 8 keys, as a new user's first runs
    "overfit-8c191465": {
        "batch_size": 8,
        "learning_rate": 0.001,
        "max_steps": 40,
        "eval_interval": 10,
        "dataset_size": 32,
        "lr_scheduler": "constant_with_a_very_long_name",
        "per_device_train_batch_size": 8,
        "optimizer": "adamw",
    },
    "hf-vqa-48874399": {
        "batch_size": 16,
        "d_model": 32,
        "dataset_size": 96,
        "eval_interval": 20,
        "learning_rate": 0.01,
        "lr_scheduler": "linear",
        "max_steps": 60,
        "per_device_train_batch_size": 16,
    },
}


def _make_vqa_run(client: Client, name: str, *, monitor: str | None = None) -> str:
    run = client.create_run(
        "vqa",
        name,
        hyperparameters=VQA[name],  # type: ignore[arg-type]
        verdict_config={"monitor": monitor} if monitor else None,
    )
    steps = list(range(60))
    run.log_many(steps, [3 * math.exp(-s / 20) + 0.2 for s in steps])
    run.log_many(steps, [1e-3 * (1 - s / 60) for s in steps], series="learning_rate")
    evals = [20, 40, 59]
    run.log_many(evals, [1 + ((s - 40) / 30) ** 2 for s in evals], split="validation")
    for i, s in enumerate(evals):
        run.log_checkpoint(s, {m: 0.1 * (j % 5) + 0.05 * i for j, m in enumerate(TEXT_METRICS)})
    run.finish()
    return run.id


def _draw_strict(fig) -> None:  # noqa: ANN001 - Figure
    """Draws the figure with matplotlib's warnings (a collapsed layout) as errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig.savefig(io.BytesIO(), format="png")


def _metric_axes(fig) -> list:  # noqa: ANN001
    return [ax for ax in fig.axes if ax.get_title() in TEXT_METRICS]


def test_plot_default_height_grows_with_the_metric_rows(live_server) -> None:
    with Client(live_server.target) as client:
        _make_vqa_run(client, "overfit-8c191465")
        _make_vqa_run(client, "hf-vqa-48874399")
        two = plot.plot_runs(client, ["vqa/overfit-8c191465", "vqa/hf-vqa-48874399"])
        one = plot.plot_runs(client, ["vqa/hf-vqa-48874399"])
    for fig in (one, two):
        _draw_strict(fig)  # no "constrained_layout not applied" warning
        # 12 metrics in rows of 4: three rows of 170 px below the fixed 530 px
        assert tuple(fig.get_size_inches() * fig.dpi) == pytest.approx((1000, 530 + 3 * 170))
        panels = _metric_axes(fig)
        assert sorted(ax.get_title() for ax in panels) == sorted(TEXT_METRICS)
        renderer = fig.canvas.get_renderer()
        boxes = [ax.get_window_extent(renderer) for ax in fig.axes]
        assert min(b.height for b in boxes) >= 80  # pixels: no sliver
        for ax in panels:  # a panel's title overlaps no other panel
            title = ax.title.get_window_extent(renderer)
            assert not any(title.overlaps(b) for b in boxes if b is not boxes[fig.axes.index(ax)])
        assert not fig.get_supxlabel()  # nothing left out


def test_plot_given_size_leaves_metric_panels_out_with_a_note(live_server) -> None:
    with Client(live_server.target) as client:
        _make_vqa_run(client, "hf-vqa-48874399", monitor="validation/rougeL_recall")
        fig = plot.plot_runs(client, ["vqa/hf-vqa-48874399"], size=(600, 450))
    _draw_strict(fig)
    assert tuple(fig.get_size_inches() * fig.dpi) == pytest.approx((600, 450))  # kept
    # 600 px: two columns of >= 230 px; 450 px: one row of >= 130 px above 300 px of loss
    # and learning rate. The monitored metric is drawn first, then alphabetical.
    assert sorted(ax.get_title() for ax in _metric_axes(fig)) == ["bertscore_f1", "rougeL_recall"]
    note = fig.get_supxlabel()
    assert note.startswith("10 of 12 metric panels left out at 600x450 px")
    assert "bleu, meteor, rouge" in note
    renderer = fig.canvas.get_renderer()
    (text,) = [t for t in fig.texts if t.get_text() == note]
    assert text.get_window_extent(renderer).x1 <= 600  # the note fits the width
    assert "rougeL_recall" not in note


def test_overlay_label_names_three_changed_keys_then_a_count(live_server) -> None:
    with Client(live_server.target) as client:
        _make_vqa_run(client, "overfit-8c191465")
        _make_vqa_run(client, "hf-vqa-48874399")
        differing = client.compare(["vqa/overfit-8c191465", "vqa/hf-vqa-48874399"]).differing
        fig = plot.plot_runs(client, ["vqa/overfit-8c191465", "vqa/hf-vqa-48874399"])
    assert len(differing) == 9  # d_model and optimizer are each in one run only
    # learning_rate and batch_size first (well known), then CompareRuns' order
    a = _line(
        fig, "overfit-8c191465 (learning_rate=0.001, batch_size=8, d_model=-, +6 more) train loss"
    )
    _line(
        fig,
        "hf-vqa-48874399 (learning_rate=0.01, batch_size=16, d_model=32, +6 more) validation loss",
    )
    legend = a.axes.get_legend()
    assert "hf-vqa-48874399 best validation/loss 1 at step 40" in [
        t.get_text() for t in legend.get_texts()
    ]
    _draw_strict(fig)
    box = legend.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= 1000  # inside the figure


def test_overlay_label_shortens_long_values() -> None:
    info = RunInfo(
        id="r_1",
        project="vqa",
        name="a-run-with-a-name-longer-than-the-legend",
        model="",
        task="vqa",
        status="finished",
        hyperparameters={"lr_scheduler": "constant_with_a_very_long_name", "seed": 1},
        derived={},
        created_at=0.0,
        updated_at=0.0,
    )
    label = plot._label(info, ["lr_scheduler", "seed"], several=True)
    assert label == "a-run-with-a-name-longe… (lr_scheduler=constant_wi…, seed=1)"


def test_overlay_title_counts_and_names_the_runs(live_server) -> None:
    with Client(live_server.target) as client:
        _make_vqa_run(client, "overfit-8c191465")
        _make_vqa_run(client, "hf-vqa-48874399")
        runs = ["vqa/overfit-8c191465", "vqa/hf-vqa-48874399"]
        fig = plot.plot_runs(client, runs)
        titled = plot.plot_runs(client, runs, title="lr sweep")
    assert fig.get_suptitle() == "2 runs: overfit-8c191465, hf-vqa-48874399"
    assert titled.get_suptitle() == "lr sweep"


def test_cli_default_size_grows_and_given_size_is_kept(live_server, tmp_path: Path) -> None:
    with Client(live_server.target) as client:
        _make_vqa_run(client, "overfit-8c191465")
        _make_vqa_run(client, "hf-vqa-48874399")
    runs = ["vqa/overfit-8c191465", "vqa/hf-vqa-48874399"]
    for size, expected in ((None, (1000, 1040)), ("640x480", (640, 480))):
        path = tmp_path / f"{size}.png"
        argv = ["--target", live_server.target, "runs", "plot", *runs, "-o", str(path)]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert main([*argv, *(["--size", size] if size else [])], out=io.StringIO()) == 0
        ihdr = path.read_bytes()[16:24]  # PNG: width and height, big-endian, after the IHDR tag
        assert (int.from_bytes(ihdr[:4], "big"), int.from_bytes(ihdr[4:], "big")) == expected
