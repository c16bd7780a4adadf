"""--text-cache-mb reaches the server's text memo and every text worker process's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from evalstream import Client
from evalstream_server.metrics.text import _memo

from .test_score_text import warmed_workers


@pytest.fixture
def default_budget_after() -> Iterator[None]:
    """build_server sets this process's budget: give the other tests the default back."""
    yield
    _memo.set_budget(_memo.DEFAULT_BUDGET)


@pytest.mark.parametrize("live_server", [{"text_workers": 1, "text_cache_mb": 3}], indirect=True)
def test_text_cache_budget_reaches_server_and_workers(live_server, default_budget_after) -> None:
    assert _memo.stats()["budget"] == 3 << 20
    workers = warmed_workers(live_server)
    # The pool has one process: whatever runs there ran its initializer.
    assert workers._pool.submit(_memo.stats).result(timeout=60)["budget"] == 3 << 20


@pytest.mark.parametrize("live_server", [{"text_cache_mb": 0}], indirect=True)
def test_text_cache_off_scores_the_same(live_server, default_budget_after) -> None:
    preds = ["a man riding a horse", "two dogs", "yes"]
    refs = [["a man rides a horse", "a person on a horse"], ["2 dogs"], ["yes"]]
    with Client(live_server.target) as client:
        off = client.score_text(preds, refs, metrics=["bleu", "rouge", "meteor"])
    assert _memo.stats()["entries"] == 0
    _memo.set_budget(_memo.DEFAULT_BUDGET)
    with Client(live_server.target) as client:
        on = client.score_text(preds, refs, metrics=["bleu", "rouge", "meteor"])
    assert _memo.stats()["entries"] > 0
    for got, want in zip(off.pairs, on.pairs, strict=True):
        assert {n: s.value for n, s in got.scores.items()} == {
            n: s.value for n, s in want.scores.items()
        }
