"""The Compare view: what changed, the one-variable warning, signatures, overlaid curves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from evalstream import Client

from ..web.conftest import WebServer

TRAIN_RGB = (0xFF, 0x7F, 0x0E)
VALIDATION_RGB = (0x1F, 0x77, 0xB4)


@dataclass(frozen=True)
class Sweep:
    base: str
    lr_up: str  # learning_rate changed
    both_up: str  # learning_rate and batch_size changed; BLEU tokenized otherwise


@pytest.fixture
def sweep(web: WebServer) -> Sweep:
    ids = {}
    with Client(web.target) as client:
        for name, lr, bs, tokenize in (
            ("base", 1e-4, 8, "13a"),
            ("lr-up", 3e-4, 8, "13a"),
            ("both-up", 3e-4, 16, "intl"),
        ):
            run = client.create_run(
                "sweep", name, hyperparameters={"learning_rate": lr, "batch_size": bs}
            )
            for step in range(0, 60):
                run.log(step, loss=2.0 / (1 + step * lr * 100))
                if step % 10 == 0:
                    run.log(step, split="validation", loss=2.2 / (1 + step * lr * 90))
            run.flush(timeout=30)
            client.score_text(
                ["a red bus"],
                [["a blue bus"]],
                metrics=["bleu"],
                bleu_tokenize=tokenize,
                checkpoint=run.checkpoint(50),
            )
            ids[name] = run.id
    return Sweep(ids["base"], ids["lr-up"], ids["both-up"])


def _grpc_pair(web: WebServer, a: str, b: str) -> tuple[tuple[str, ...], str]:
    with Client(web.target) as client:
        (pair,) = client.compare([a, b]).pairs
        return pair.changed, pair.warning


def test_the_view_names_what_changed(web: WebServer, page: Any, sweep: Sweep) -> None:
    page.goto(f"{web.base}/compare?run={sweep.base}&run={sweep.lr_up}")
    pair = page.locator("li.pair")
    pair.wait_for()
    changed, warning = _grpc_pair(web, sweep.base, sweep.lr_up)
    assert changed == ("learning_rate",) and warning == ""
    assert pair.inner_text() == "base → lr-up: changed learning_rate"
    row = page.locator("tr[data-key='learning_rate']")
    assert row.inner_text().split("\t") == ["learning_rate differs", "0.0001", "0.0003"]
    assert "differs" not in page.locator("tr[data-key='batch_size']").inner_text()
    # Each run links to its Metrics tab.
    for run_id in (sweep.base, sweep.lr_up):
        assert page.locator(f"a[href='/runs/{run_id}']").count() >= 1


def test_two_changed_variables_warn(web: WebServer, page: Any, sweep: Sweep) -> None:
    page.goto(f"{web.base}/compare?run={sweep.base}&run={sweep.both_up}")
    pair = page.locator("li.pair")
    pair.wait_for()
    changed, warning = _grpc_pair(web, sweep.base, sweep.both_up)
    assert set(changed) == {"learning_rate", "batch_size"} and warning
    assert pair.locator(".banner.warn").inner_text() == warning
    for key in changed:
        assert key in pair.inner_text()
    # BLEU was tokenized differently: said plainly, not compared.
    note = page.locator(".banner.warn", has_text="signatures differ")
    assert "bleu" in note.inner_text()


def test_the_loss_curves_are_overlaid_in_orange_and_blue(
    web: WebServer, page: Any, sweep: Sweep
) -> None:
    page.goto(f"{web.base}/compare?run={sweep.base}&run={sweep.lr_up}")
    page.locator("#compare-chart canvas").wait_for()
    legend = page.locator("#compare-chart .u-legend").inner_text()
    for label in ("base train", "base validation", "lr-up train", "lr-up validation"):
        assert label in legend
    series = page.evaluate("JSON.parse(document.getElementById('compare-chart').dataset.series)")
    colours = {s["label"]: s["colour"] for s in series}
    assert colours["base train"] == "#ff7f0e" and colours["base validation"] == "#1f77b4"
    assert colours["lr-up train"] != "#ff7f0e" and colours["lr-up validation"] != "#1f77b4"
    # The drawn chart holds pixels of both colours (the first run's lines).
    near = page.evaluate(
        """(wants) => {
          const canvas = document.querySelector('#compare-chart canvas');
          const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          return wants.map((w) => {
            let n = 0;
            for (let i = 0; i < data.length; i += 4) {
              const d = Math.abs(data[i] - w[0]) + Math.abs(data[i + 1] - w[1])
                + Math.abs(data[i + 2] - w[2]);
              if (data[i + 3] > 200 && d < 40) n++;
            }
            return n;
          });
        }""",
        [TRAIN_RGB, VALIDATION_RGB],
    )
    assert near[0] > 50 and near[1] > 20, near


def test_a_run_of_the_project_is_added_by_name(web: WebServer, page: Any, sweep: Sweep) -> None:
    page.goto(f"{web.base}/compare?run={sweep.base}&run={sweep.lr_up}")
    page.get_by_label("Run to add").select_option(label="both-up")
    page.get_by_role("button", name="Add to comparison").click()
    page.locator("li.pair").nth(2).wait_for()
    assert page.url.endswith(f"run={sweep.base}&run={sweep.lr_up}&run={sweep.both_up}")


def test_an_unknown_run_shows_an_error(web: WebServer, page: Any, sweep: Sweep) -> None:
    page.goto(f"{web.base}/compare?run={sweep.base}&run=r_0000000000000000")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "r_0000000000000000" in alert.inner_text() and "not found" in alert.inner_text()
