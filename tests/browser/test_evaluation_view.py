"""The Advanced Evaluation tab: the step slider, specimens by flag, boxes drawn, VQA."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from evalstream import Box, Client, ImageBoxes

from ..web.conftest import WebServer, _web_server
from ._evaluation_data import PROJECT, Written, png, write_runs

# Colours the view draws with: ground truth green, prediction red (evaluation.js).
PREDICTION_RGB = (0xD6, 0x27, 0x28)
GROUND_TRUTH_RGB = (0x2C, 0xA0, 0x2C)
IMAGE_RGB = (0x30, 0x60, 0x90)


@pytest.fixture
def written(web: WebServer) -> Written:
    return write_runs(web.target)


def _boxes_shown(page: Any, side: str) -> list[list[float]]:
    """The [x1, y1, x2, y2] rows of the box table under the prediction or ground truth."""
    rows = page.locator(f"#specimen-detail .{side} tbody tr")
    out = []
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td").all_inner_texts()
        out.append([float(c.replace(",", "")) for c in cells[1:5]])
    return out


def _pixel(page: Any, side: str, x: int, y: int) -> tuple[int, int, int]:
    rgba = page.evaluate(
        """([side, x, y]) => Array.from(document.querySelector(`#specimen-detail .${side} canvas`)
            .getContext('2d').getImageData(x, y, 1, 1).data)""",
        [side, x, y],
    )
    return (rgba[0], rgba[1], rgba[2])


def _expected(web: WebServer, run: str, step: int, specimen: str) -> list[list[float]]:
    with Client(web.target) as client:
        (s,) = [s for s in client.get_run(run).specimens(step) if s.specimen_id == specimen]
        return [[b.x1, b.y1, b.x2, b.y2] for b in s.predicted_boxes]


def test_the_slider_changes_the_shown_prediction(web: WebServer, page: Any, written) -> None:
    page.goto(f"{web.base}/runs/{written.grounding}/evaluation?specimen=img1")
    page.get_by_role("heading", name="Specimen img1 at step 200").wait_for()
    tabs = page.locator("nav.tabs a")
    assert tabs.all_inner_texts() == ["Metrics", "Advanced Evaluation"]
    assert tabs.nth(1).get_attribute("aria-current") == "page"
    slider = page.get_by_role("slider", name="Evaluation step")
    assert page.locator("output.step-number").inner_text() == "step 200 (2 of 2)"
    at_200 = _boxes_shown(page, "prediction")
    # The keyboard moves the slider to the first step; the same specimen stays selected.
    slider.focus()
    page.keyboard.press("ArrowLeft")
    page.get_by_role("heading", name="Specimen img1 at step 100").wait_for()
    at_100 = _boxes_shown(page, "prediction")
    assert at_100 != at_200
    assert at_100 == _expected(web, written.grounding, 100, "img1") == [[100, 100, 150, 150]]
    assert at_200 == _expected(web, written.grounding, 200, "img1") == [[12, 11, 60, 62]]
    # The URL reproduces the view.
    assert re.search(r"step=100", page.url) and "specimen=img1" in page.url
    page.reload()
    page.get_by_role("heading", name="Specimen img1 at step 100").wait_for()
    assert _boxes_shown(page, "prediction") == at_100


def test_the_boxes_are_drawn_on_a_canvas_of_the_images_size(
    web: WebServer, page: Any, written
) -> None:
    page.goto(f"{web.base}/runs/{written.grounding}/evaluation?step=100&specimen=img1")
    page.get_by_role("heading", name="Specimen img1 at step 100").wait_for()
    canvas = page.locator("#specimen-detail .prediction canvas")
    assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == ("200", "160")
    # The predicted box [100 100 150 150]: its edge is red, its inside and the far
    # corner blank; the ground truth [10 10 60 60] is green on the left canvas.
    assert _pixel(page, "prediction", 125, 101) == PREDICTION_RGB
    assert _pixel(page, "prediction", 101, 125) == PREDICTION_RGB
    assert _pixel(page, "prediction", 125, 125) != PREDICTION_RGB
    assert _pixel(page, "prediction", 190, 10) != PREDICTION_RGB
    assert _pixel(page, "ground-truth", 35, 59) == GROUND_TRUTH_RGB
    assert _pixel(page, "ground-truth", 125, 101) != PREDICTION_RGB
    assert "No image was sent; blank canvas, 200×160" in page.locator(".image-note").inner_text()


def test_filtering_by_flag_narrows_the_list(web: WebServer, page: Any, written) -> None:
    page.goto(f"{web.base}/runs/{written.grounding}/evaluation?step=100")
    picks = page.locator("button.specimen-pick")
    picks.first.wait_for()
    assert picks.all_inner_texts() == ["img1", "img2"]
    page.get_by_label("Flag").select_option("missed_detection")
    page.get_by_role("heading", name="Specimens flagged missed detection").wait_for()
    assert picks.all_inner_texts() == ["img1"]
    assert "flag=missed_detection" in page.url
    # The step's action items are the API's.
    actions = page.locator("ul.actions").inner_text()
    assert "Add negative examples" in actions and "Add training data" in actions


def test_the_same_specimen_in_another_run_at_its_best_step(
    web: WebServer, page: Any, written
) -> None:
    page.goto(f"{web.base}/runs/{written.grounding}/evaluation?step=200&specimen=img1")
    other = page.locator(f".other-run[data-run='{written.other}']")
    other.wait_for()
    assert "grounding-b" in other.locator("h3").first.inner_text()
    assert "at step 200" in other.inner_text()
    cells = other.locator(".prediction tbody tr td").all_inner_texts()
    assert [float(c) for c in cells[1:5]] == [20, 30, 70, 90]
    # The VQA run never recorded img1: not shown as a prediction, listed with the reason.
    assert page.locator(f".other-run[data-run='{written.vqa}']").count() == 0
    absent = page.locator(f".absent-runs li[data-run='{written.vqa}']")
    assert "never recorded specimen 'img1'" in (absent.text_content() or "")


def test_a_link_to_a_step_or_split_the_run_lacks_says_so(
    web: WebServer, page: Any, written
) -> None:
    page.goto(f"{web.base}/runs/{written.grounding}/evaluation?step=150&split=train")
    page.locator(".notice").first.wait_for()
    notices = page.locator(".notice").all_inner_texts()
    assert len(notices) == 2, notices
    assert 'no evaluation on the split "train"' in notices[0] and "showing validation" in notices[0]
    assert '"150" is not an evaluation step' in notices[1] and "100, 200" in notices[1]
    assert "showing step 200" in notices[1]
    assert page.locator("#eval-step + output").inner_text().startswith("step 200")


def test_vqa_shows_the_question_references_and_answer(web: WebServer, page: Any, written) -> None:
    page.goto(f"{web.base}/runs/{written.vqa}/evaluation?specimen=q2")
    detail = page.locator("#specimen-detail")
    detail.get_by_role("heading", name="Specimen q2 at step 100").wait_for()
    assert detail.locator(".question").inner_text() == "What colour is the bus?"
    assert detail.locator(".references li").all_inner_texts() == ["a blue bus"]
    assert detail.locator("blockquote.answer").inner_text() == "a red bus"
    assert "bleu" in detail.inner_text()


def test_an_unknown_run_shows_an_error(web: WebServer, page: Any) -> None:
    page.goto(f"{web.base}/runs/r_0000000000000000/evaluation")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "not found" in alert.inner_text()
    assert page.get_by_role("heading", name="Not found").is_visible()


@pytest.fixture
def imaged(tmp_path: Path) -> Iterator[tuple[WebServer, str]]:
    """A server with an image root, and a run whose specimen's image lies under it."""
    root = tmp_path / "images"
    (root / "val").mkdir(parents=True)
    (root / "val" / "img9.png").write_bytes(png(200, 160, IMAGE_RGB))
    for web in _web_server(tmp_path, {"image_root": root}):
        with Client(web.target) as client:
            run = client.create_run(PROJECT, "with-images")
            predicted, true = Box(100, 100, 150, 150, "cup", 0.7), Box(10, 10, 60, 60, "cup")
            image = ImageBoxes("img9", (predicted,), (true,), "val/img9.png", 200, 160)
            client.score_boxes([image], checkpoint=run.checkpoint(100))
        yield web, run.id


def test_an_image_under_the_image_root_is_drawn_under_the_boxes(imaged, page: Any) -> None:
    web, run = imaged
    page.goto(f"{web.base}/runs/{run}/evaluation?specimen=img9")
    canvas = page.locator("#specimen-detail .prediction canvas[data-image='drawn']")
    canvas.wait_for()
    assert _pixel(page, "prediction", 190, 10) == IMAGE_RGB
    assert _pixel(page, "prediction", 125, 125) == IMAGE_RGB
    assert _pixel(page, "prediction", 125, 101) == PREDICTION_RGB
    assert "under the server's image root" in page.locator(".image-note").inner_text()


def test_the_specimens_are_paged(web: WebServer, page: Any) -> None:
    with Client(web.target) as client:
        run = client.create_run(PROJECT, "many")
        images = [ImageBoxes(f"img{i:03d}", (), (Box(0, 0, 5, 5, "x"),)) for i in range(105)]
        client.score_boxes(images, checkpoint=run.checkpoint(10))
        listed = [s.specimen_id for s in run.specimens(10)]
    page.goto(f"{web.base}/runs/{run.id}/evaluation")
    picks = page.locator("button.specimen-pick")
    picks.first.wait_for()
    first = picks.all_inner_texts()
    assert first == listed[:100]
    page.get_by_role("button", name="Next page").click()
    page.get_by_role("button", name="Next page").and_(page.locator("[disabled]")).wait_for()
    assert picks.all_inner_texts() == listed[100:]
    page.get_by_role("button", name="Previous page").click()
    page.get_by_role("button", name="Previous page").and_(page.locator("[disabled]")).wait_for()
    assert picks.all_inner_texts() == first
