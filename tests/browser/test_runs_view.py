"""The runs view in a real browser: logged runs with their status and verdict (as
GetVerdict says), the best checkpoint, filters kept in the URL, and paging."""

from __future__ import annotations

import math
import re
from typing import Any

import grpc
from evalstream import Client
from evalstream.v1 import runs_pb2, runs_pb2_grpc

from ..web.conftest import WebServer


def _state(web: WebServer, run_id: str) -> str:
    with grpc.insecure_channel(web.target) as channel:
        verdict = runs_pb2_grpc.RunsStub(channel).GetVerdict(
            runs_pb2.GetVerdictRequest(run_id=run_id)
        )
    return runs_pb2.RunState.Name(verdict.state).removeprefix("RUN_STATE_").lower()


def test_runs_list_shows_logged_runs_with_status_and_verdict(web: WebServer, page: Any) -> None:
    with Client(web.target) as client:
        good = client.create_run("vision", "steady", model="tiny-vlm")
        for step in range(200):
            good.log(step, loss=2.0 / (step + 1) + 0.1)
            if step % 50 == 49:
                good.log(step, split="validation", loss=2.0 / (step + 1) + 0.2)
        good.flush(timeout=30)
        bad = client.create_run("vision", "blown-up", model="other-vlm")
        for step in range(40):
            bad.log(step, loss=1.0 if step < 39 else math.nan)
        bad.flush(timeout=30)
        bad.finish()
        client.create_run("text", "elsewhere")
    page.goto(web.base + "/")
    row = page.locator(f'tr[data-run="{good.id}"]')
    row.wait_for()
    assert row.locator("a").inner_text() == "steady"
    assert row.locator("a").get_attribute("href") == f"/runs/{good.id}"
    assert "tiny-vlm" in row.inner_text()
    badges = row.locator(".badge")
    assert badges.nth(0).inner_text() == "running"
    assert badges.nth(1).inner_text() == _state(web, good.id).replace("_", " ")
    assert "step 199" in row.inner_text()  # best checkpoint (validation/loss at its last eval)
    bad_row = page.locator(f'tr[data-run="{bad.id}"]')
    assert bad_row.locator(".badge").nth(0).inner_text() == "finished"
    assert bad_row.locator(".badge.bad").last.inner_text() == "diverged" == _state(web, bad.id)
    assert "(validation/loss: none yet)" in bad_row.inner_text()  # never evaluated: no best
    assert page.locator('section[data-project="text"]').is_visible()  # every project

    # Filters are kept in the URL, so that a link shows the same list.
    page.get_by_label("Model").fill("other-vlm")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_function('(id) => !document.querySelector(`tr[data-run="${id}"]`)', arg=good.id)
    assert "model=other-vlm" in page.url
    page.reload()
    page.locator(f'tr[data-run="{bad.id}"]').wait_for()
    assert page.locator(f'tr[data-run="{good.id}"]').count() == 0
    assert page.get_by_label("Model").input_value() == "other-vlm"


def test_one_project_pages_through_its_runs(web: WebServer, page: Any) -> None:
    with Client(web.target) as client:
        ids = [client.create_run("many", f"run-{i:02d}").id for i in range(55)]
    page.goto(web.base + "/projects/many")
    page.locator("tr[data-run]").first.wait_for()
    first = set(page.locator("tr[data-run]").evaluate_all("rs => rs.map(r => r.dataset.run)"))
    assert len(first) == 50
    page.get_by_role("link", name="Next page →").click()
    page.wait_for_function("() => document.querySelectorAll('tr[data-run]').length === 5")
    second = set(page.locator("tr[data-run]").evaluate_all("rs => rs.map(r => r.dataset.run)"))
    assert "page_token=" in page.url
    assert first | second == set(ids) and not first & second


def test_a_bad_filter_shows_the_api_error(web: WebServer, page: Any) -> None:
    with Client(web.target) as client:
        client.create_run("vision", "any")
    page.goto(web.base + "/projects/vision?status=sleeping")
    error = page.locator(".error")
    error.wait_for()
    assert "status" in error.inner_text()


def test_ticked_runs_open_the_compare_view(web: WebServer, page: Any) -> None:
    with Client(web.target) as client:
        base = client.create_run("vision", "base", hyperparameters={"learning_rate": 1e-4})
        fast = client.create_run("vision", "fast", hyperparameters={"learning_rate": 3e-4})
        client.create_run("vision", "other")
    page.goto(web.base + "/projects/vision")
    button = page.get_by_role("button", name=re.compile("Compare selected"))
    page.get_by_label("Select base to compare").check()
    assert button.is_disabled()  # one run is not a comparison
    page.get_by_label("Select fast to compare").check()
    assert button.inner_text() == "Compare selected (2)"
    button.click()
    page.wait_for_url(f"{web.base}/compare?run={base.id}&run={fast.id}")
    page.get_by_text("changed learning_rate").wait_for()
