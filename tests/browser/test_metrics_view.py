"""The Metrics tab in a real browser: both series in the product's colours (chart data equal
to GetCurves, pixels of a screenshot), the verdict banner equal to GetVerdict, zoom that
refetches finer points keeping a spike, live growth, the log toggle and phone width."""

from __future__ import annotations

import io
import math
import re
from typing import Any

import grpc
import pytest
from evalstream import Client
from evalstream.v1 import runs_pb2, runs_pb2_grpc

from ..web.conftest import WebServer

PIL = pytest.importorskip("PIL.Image")

ORANGE, BLUE = (0xFF, 0x7F, 0x0E), (0x1F, 0x77, 0xB4)
SPIKE_STEP = 1234


def _nan_to_none(values: list[float]) -> list[float | None]:
    return [None if not math.isfinite(v) else v for v in values]


@pytest.fixture
def trained(web: WebServer) -> Any:
    """A run: training loss at 3000 steps with a one-step spike, validation every 250."""
    with Client(web.target) as client:
        run = client.create_run(
            "vision",
            "metrics-run",
            model="tiny-vlm",
            hyperparameters={"learning_rate": 3e-4, "batch_size": 8, "dataset_size": 800},
        )
        for step in range(3000):
            loss = 2.0 * math.exp(-step / 800) + 0.2
            if step == SPIKE_STEP:
                loss = 40.0
            run.log(step, loss=loss, learning_rate=3e-4 * (1 - step / 3000))
            if step % 250 == 0 and step:
                run.log(step, split="validation", loss=loss + 0.1)
        run.flush(timeout=60)
        yield client, run


def _rpc(web: WebServer) -> Any:
    return runs_pb2_grpc.RunsStub(grpc.insecure_channel(web.target))


def _open(page: Any, web: WebServer, run_id: str, query: str = "") -> Any:
    page.goto(f"{web.base}/runs/{run_id}{query}")
    chart = page.locator('div.chart[data-chart="loss"][data-drawn="1"]')
    chart.wait_for()
    return chart


def _chart_series(page: Any) -> dict[str, list[Any]]:
    return page.evaluate(
        """() => {
          const u = document.querySelector('div.chart[data-chart="loss"]').uplot;
          return {x: u.data[0], train: u.data[1], validation: u.data[2],
                  colours: u.series.slice(1, 3).map((s) => s._stroke || s.stroke)};
        }"""
    )


def _points(series: Any) -> dict[int, float | None]:
    return dict(zip(series.steps, _nan_to_none(list(series.values)), strict=True))


def test_metrics_draws_both_series_in_the_product_colours(
    web: WebServer, page: Any, trained
) -> None:
    _, run = trained
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/curves" in r.url else None)
    chart = _open(page, web, run.id)
    max_points = int(chart.get_attribute("data-max-points"))
    # The first load asks for about the chart's width in points, never the whole series.
    width = chart.bounding_box()["width"]
    first = next(u for u in asked if "/curves?" in u)
    assert f"max_points={max_points}" in first and abs(max_points - width) <= 2
    expected = _rpc(web).GetCurves(
        runs_pb2.GetCurvesRequest(run_id=run.id, series=["loss"], max_points=max_points)
    )
    by_split = {s.split: s for s in expected.series}
    got = _chart_series(page)
    shown_train = {x: y for x, y in zip(got["x"], got["train"], strict=True) if y is not None}
    shown_val = {x: y for x, y in zip(got["x"], got["validation"], strict=True) if y is not None}
    assert shown_train == _points(by_split[1])
    assert shown_val == _points(by_split[2])
    assert len(shown_train) <= max_points < 3000  # downsampled to about the width
    assert max(shown_train.values()) == 40.0  # the spike survives downsampling
    assert int(chart.get_attribute("data-points")) == len(shown_train) + len(shown_val)
    assert [c.lower() for c in got["colours"]] == ["#ff7f0e", "#1f77b4"]
    assert page.evaluate("performance.getEntriesByName('evalstream:charts-drawn').length") == 1
    image = PIL.open(io.BytesIO(chart.screenshot())).convert("RGB")
    raw = image.tobytes()
    colours = {tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)}
    near = lambda target: any(  # noqa: E731
        all(abs(c[i] - target[i]) <= 12 for i in range(3)) for c in colours
    )
    assert near(ORANGE), "no orange training line in the chart"
    assert near(BLUE), "no blue validation line in the chart"


def test_verdict_banner_is_get_verdict(web: WebServer, page: Any, trained) -> None:
    _, run = trained
    _open(page, web, run.id, "/metrics")
    verdict = _rpc(web).GetVerdict(runs_pb2.GetVerdictRequest(run_id=run.id))
    state = runs_pb2.RunState.Name(verdict.state).removeprefix("RUN_STATE_").lower()
    banner = page.locator("#verdict section.banner")
    assert banner.get_attribute("data-verdict") == state
    assert verdict.summary in banner.inner_text()
    for advice in verdict.advice:
        assert advice.text in banner.locator(f'li[data-action="{advice.action}"]').inner_text()
    tabs = page.locator("nav.tabs a")
    assert tabs.nth(0).get_attribute("aria-current") == "page"
    assert tabs.nth(1).get_attribute("href") == f"/runs/{run.id}/evaluation"


def test_zoom_refetches_a_narrower_range_finer_keeping_the_spike(
    web: WebServer, page: Any, trained
) -> None:
    _, run = trained
    chart = _open(page, web, run.id)
    before = _chart_series(page)
    step_before = (before["x"][-1] - before["x"][0]) / len(before["x"])
    chart.focus()
    with page.expect_response(lambda r: "/curves?" in r.url and "start_step" in r.url):
        page.keyboard.press("+")
    page.wait_for_function(
        "() => document.querySelector('div.chart[data-chart=\"loss\"]').dataset.range !== ''"
    )
    page.wait_for_timeout(300)
    after = _chart_series(page)
    lo, hi = (int(x) for x in chart.get_attribute("data-range").split("-"))
    assert lo <= SPIKE_STEP <= hi and hi - lo < 3000 * 0.6
    assert min(after["x"]) >= lo and max(after["x"]) <= hi
    assert (after["x"][-1] - after["x"][0]) / len(after["x"]) < step_before  # finer
    train = dict(zip(after["x"], after["train"], strict=True))
    assert train[SPIKE_STEP] == 40.0  # the single-step spike is still drawn
    page.get_by_role("button", name="Show every step").click()
    page.wait_for_function(
        "() => document.querySelector('div.chart[data-chart=\"loss\"]').dataset.range === ''"
    )


def test_log_toggle_changes_the_y_scale_and_the_theme_redraws(
    web: WebServer, page: Any, trained
) -> None:
    _, run = trained
    page.emulate_media(color_scheme="light")
    _open(page, web, run.id)
    distr = "document.querySelector('div.chart[data-chart=\"loss\"]').uplot.scales.y.distr"
    assert page.evaluate(distr) == 1
    page.get_by_role("button", name="Log scale").click()
    page.wait_for_function(f"() => {distr} === 3")
    assert page.get_by_role("button", name="Log scale").get_attribute("aria-pressed") == "true"
    assert "log=1" in page.url
    # The theme switch redraws the chart in the new theme's colours, keeping the scale.
    chart = "document.querySelector('div.chart[data-chart=\"loss\"]')"
    page.evaluate(f"() => {{ {chart}.uplot.drawnInOldTheme = true; }}")
    page.get_by_role("button", name=re.compile("theme")).click()
    page.wait_for_function(f"() => !{chart}.uplot.drawnInOldTheme && {distr} === 3")
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    assert page.evaluate(f"() => {chart}.dataset.drawn") == "1"


def test_live_points_and_nan_update_chart_and_banner(web: WebServer, page: Any) -> None:
    with Client(web.target) as client:
        run = client.create_run("vision", "live-run")
        for step in range(100):
            run.log(step, loss=2.0 / (step + 1) + 0.1)
        run.flush(timeout=30)
        chart = _open(page, web, run.id)
        page.locator("#verdict section.banner").wait_for()
        before = int(chart.get_attribute("data-points"))
        for step in range(100, 150):
            run.log(step, loss=0.1)
        run.flush(timeout=30)
        page.wait_for_function(
            "(n) => +document.querySelector('div.chart[data-chart=\"loss\"]').dataset.points > n",
            arg=before,
            timeout=15000,
        )
        for step in range(150, 160):
            run.log(step, loss=math.nan)
        run.flush(timeout=30)
        page.wait_for_selector('#verdict section.banner[data-verdict="diverged"]', timeout=15000)
        page.wait_for_selector("p[data-nonfinite]:not([data-nonfinite='0'])", timeout=15000)
        x = page.evaluate("document.querySelector('div.chart[data-chart=\"loss\"]').uplot.data[0]")
        assert max(x) == 159  # the NaN steps are on the chart, marked, not dropped
        run.finish()


def test_phone_width_has_no_horizontal_scroll(web: WebServer, browser: Any, trained) -> None:
    _, run = trained
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        _open(page, web, run.id)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        box = page.locator('div.chart[data-chart="loss"]').bounding_box()
        assert box["width"] <= 390
    finally:
        context.close()


def test_checkpoints_bands_grades_and_hyperparameters(web: WebServer, page: Any) -> None:
    with Client(web.target) as client:
        run = client.create_run(
            "vision",
            "graded",
            hyperparameters={"learning_rate": 1e-3, "batch_size": 8, "dataset_size": 100},
        )
        for step in range(400):
            run.log(step, loss=1.0 / (step + 1) + 0.1, learning_rate=1e-3 * (1 - step / 400))
        run.flush(timeout=30)
        # F1 train/validation: gap 0.02 (healthy) at 100, 0.30 (severe) at 300.
        for step, train, validation in ((100, 0.80, 0.78), (300, 0.95, 0.65)):
            run.log_checkpoint(step, {"bbox_f1@0.5": train}, split="train")
            run.log_checkpoint(step, {"bbox_f1@0.5": validation})
        run.update(summary={"train_runtime": 61.5}, saved_checkpoints={100: "out/ckpt-100"})
    _open(page, web, run.id)
    verdict = _rpc(web).GetVerdict(runs_pb2.GetVerdictRequest(run_id=run.id))
    grades = page.locator("tr[data-grade]")
    grades.first.wait_for()
    expected = [
        runs_pb2.CheckpointGrade.Name(c.grade).removeprefix("CHECKPOINT_GRADE_").lower()
        for c in verdict.checkpoints
    ]
    assert grades.evaluate_all("rs => rs.map(r => r.dataset.grade)") == expected
    assert "severe_overfitting" in expected and "healthy" in expected
    # F1 bands: >= 0.90 excellent (the best: green), >= 0.75 good and >= 0.60 acceptable
    # (amber), below needs_improvement (the floor: red).
    bands = page.locator("[data-band]").evaluate_all(
        "bs => bs.map(b => [b.dataset.band, b.className])"
    )
    assert ["good", "badge warn"] in bands and ["acceptable", "badge warn"] in bands
    assert ["excellent", "badge ok"] in bands  # train F1 0.95
    hyper = page.locator("section.panel", has_text="Hyperparameters").inner_text()
    assert "steps_per_epoch" in hyper and "13" in hyper  # ceil(100 / 8)
    assert "initial_learning_rate" in hyper and "final_learning_rate" in hyper
    assert "61.5" in page.locator("section.panel", has_text="Summary").inner_text()
    lr = page.locator('div.chart[data-chart="lr"][data-drawn="1"]')
    assert int(lr.get_attribute("data-points")) > 0


def test_an_ungraded_checkpoint_and_a_missing_learning_rate_are_said(
    web: WebServer, page: Any
) -> None:
    """Checkpoint metrics on validation only have no gap to grade; no learning_rate series."""
    with Client(web.target) as client:
        run = client.create_run("vision", "scores-only")
        for step in range(300):
            run.log(step, loss=1.0 / (step + 1))
        run.log_checkpoint(100, {"bleu": 0.31}, split="validation")
        run.flush(timeout=30)
    page.goto(f"{web.base}/runs/{run.id}")
    row = page.locator('tr[data-grade="unspecified"]').first
    row.wait_for()
    assert row.locator("td").nth(5).inner_text() == "—"
    assert "unspecified" not in page.locator("main").inner_text()
    page.locator('div.chart[data-chart="lr"][data-drawn="1"]').wait_for(state="attached")
    assert page.locator(".lr-note").inner_text().startswith("No learning rate logged")
