"""A watch that follows its run across reconnections, without a server: `_base.Follow`."""

from __future__ import annotations

import pytest
from evalstream import _base, errors
from evalstream._verdicts import Verdict
from evalstream.v1 import runs_pb2


def verdict(state: int, step: int, best: int | None = None) -> Verdict:
    pb = runs_pb2.Verdict(run_id="r1", state=state, as_of_step=step)
    if best is not None:
        pb.early_stopping.best_step = best
    return Verdict.from_pb(pb)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


HEALTHY, OVERFITTING = runs_pb2.RUN_STATE_HEALTHY, runs_pb2.RUN_STATE_OVERFITTING
DOWN = errors.Unavailable("Socket closed", code="UNAVAILABLE")


def test_follow_drops_the_repeat_a_new_stream_starts_with() -> None:
    follow = _base.Follow("r1", None, {}, clock=Clock())
    assert follow.fresh(verdict(HEALTHY, 100, best=50))
    assert follow.retry(DOWN) == pytest.approx(0.1)
    # The new stream's first verdict: later step, same state and best step: not news.
    assert not follow.fresh(verdict(HEALTHY, 180, best=50))
    assert follow.fresh(verdict(OVERFITTING, 400, best=50))
    assert follow.fresh(verdict(OVERFITTING, 500, best=300))


def test_follow_backs_off_exponentially_up_to_a_cap_and_resets_on_a_verdict() -> None:
    follow = _base.Follow("r1", None, {}, clock=Clock(), first_backoff=0.5, max_backoff=3.0)
    follow.fresh(verdict(HEALTHY, 1))
    assert [follow.retry(DOWN) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    follow.fresh(verdict(HEALTHY, 2))
    assert follow.retry(DOWN) == 0.5
    assert follow.reconnects == 6


def test_follow_raises_before_the_first_verdict_and_on_final_errors() -> None:
    follow = _base.Follow("r1", None, {}, clock=Clock())
    with pytest.raises(errors.Unavailable):  # a wrong address fails at once
        follow.retry(DOWN)
    follow.fresh(verdict(HEALTHY, 1))
    missing = errors.NotFound("run 'r1' not found", code="NOT_FOUND")
    with pytest.raises(errors.NotFound):
        follow.retry(missing)


def test_follow_has_no_deadline_unless_a_timeout_is_given() -> None:
    clock = Clock()
    assert _base.Follow("r1", None, {}, clock=clock).stream().timeout == _base.NO_DEADLINE
    follow = _base.Follow("r1", 10.0, {}, clock=clock)
    clock.now += 4
    assert follow.stream().timeout == pytest.approx(6.0)
    follow.fresh(verdict(HEALTHY, 1))
    clock.now += 5.95
    with pytest.raises(errors.Unavailable):  # no time left to reconnect in
        follow.retry(DOWN)
