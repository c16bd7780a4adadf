"""The run logger loses nothing silently: bad points raise at the call, the server's
refusals at the next log, flush or finish, and a run with refused points is never
"finished" (real server, port 0)."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from evalstream import AsyncClient, Client, errors

# A server that takes at most 10 points per chunk: the logger's chunks of up to
# 10,000 points are refused, a limit the client cannot know.
SMALL_CHUNKS = pytest.mark.parametrize("live_server", [{"max_points_per_chunk": 10}], indirect=True)


def _wait_refused(run, n: int = 1) -> None:
    deadline = time.monotonic() + 30
    while run.stats.chunks_refused < n:
        assert time.monotonic() < deadline, "the server never answered the chunk"
        time.sleep(0.01)


def test_log_many_negative_step_among_200_raises_at_the_call(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("logger", "minus-one")
        steps = list(range(200))
        steps[57] = -1
        with pytest.raises(errors.InvalidPoint) as info:
            run.log_many(steps, [0.5] * 200)
        assert isinstance(info.value, ValueError) and isinstance(info.value, errors.EvalstreamError)
        assert (info.value.index, info.value.value) == (57, -1)
        assert "steps[57] = -1" in str(info.value)
        assert info.value.violations[0].field == "steps[57]"
        # Nothing of the call was logged, so nothing is dropped behind the caller's back.
        assert run.stats.points_logged == 0
        steps[57] = 57
        run.log_many(steps, [0.5] * 200)
        info_after = run.finish()
        assert info_after.status == "finished"
        (loss,) = run.curves()
        assert loss.steps == tuple(range(200))


@pytest.mark.parametrize(
    ("call", "field", "shown"),
    [
        (lambda run: run.log(-1, loss=1.0), "step", "step = -1"),
        (lambda run: run.log(2.5, loss=1.0), "step", "step = 2.5"),
        (lambda run: run.log(2**63, loss=1.0), "step", f"step = {2**63}"),
        (lambda run: run.log(True, loss=1.0), "step", "step = True"),
        (lambda run: run.log(1, loss="0.5"), "loss", "loss = '0.5' is not a number"),
        (lambda run: run.log(1, loss=None), "loss", "loss = None is not a number"),
        (lambda run: run.log(1, split="val", loss=1.0), "split", "split 'val'"),
        (lambda run: run.log(1, **{"x" * 129: 1.0}), "series", "at most 128 characters"),
        (lambda run: run.log_many([0, 1], [1.0]), "values", "2 steps but 1 values"),
        (lambda run: run.log_many([0], [1.0], wall_times=[]), "wall_times", "0 wall times"),
        (lambda run: run.log_many([0, 1.5], [1.0, 2.0]), "steps[1]", "steps[1] = 1.5"),
        (lambda run: run.log_many([0, 1], [1.0, "x"]), "values[1]", "values[1] = 'x'"),
        (lambda run: run.log_many([0], [1.0], series="s" * 129), "series", "128 characters"),
    ],
)
def test_log_refuses_what_the_server_would_at_the_call(live_server, call, field, shown) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("logger", "checks")
        with pytest.raises(errors.InvalidPoint) as info:
            call(run)
        assert info.value.violations[0].field == field
        assert shown in str(info.value)
        assert run.stats.points_logged == 0


def test_log_keeps_nan_infinities_and_integral_steps_exactly(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("logger", "nan")
        run.log(3.0, loss=math.nan, grad_norm=math.inf)
        run.log_many([4, 5], [-math.inf, 1])
        run.finish()
        series = {s.name: s for s in run.curves()}
        assert series["loss"].steps == (3, 4, 5)
        assert math.isnan(series["loss"].values[0])
        assert series["loss"].values[1:] == (-math.inf, 1.0)
        assert series["grad_norm"].values == (math.inf,)


@SMALL_CHUNKS
def test_server_refusal_raises_at_the_next_flush_and_finish_marks_failed(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("logger", "refused")
        run.log_many(range(100, 150), [0.5] * 50)
        with pytest.raises(errors.PointsRefused) as info:
            run.flush(timeout=30)
        (refusal,) = info.value.refusals
        assert (refusal.split, refusal.series, refusal.steps) == (
            "train",
            "loss",
            tuple(range(100, 150)),
        )
        assert "steps 100 to 149" in str(info.value)
        assert "50 points, at most 10 per chunk" in str(info.value)
        run.flush(timeout=30)  # raised once
        with pytest.raises(errors.PointsRefused):
            run.finish()
        assert client.get_run(run.id).info.status == "failed"
        assert run.curves() == []


@SMALL_CHUNKS
def test_server_refusal_raises_at_the_next_log(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("logger", "refused-log")
        run.log_many(range(20), [0.5] * 20)
        _wait_refused(run)
        with pytest.raises(errors.PointsRefused, match="steps 0 to 19"):
            run.log(20, loss=0.25)
        run.set_status("finished")  # the caller accepts the loss
        assert client.get_run(run.id).info.status == "finished"


@SMALL_CHUNKS
def test_leaving_the_block_with_refused_points_marks_the_run_failed(live_server) -> None:
    with Client(live_server.target) as client:
        with pytest.raises(errors.PointsRefused):
            with client.create_run("logger", "block") as run:
                run.log_many(range(30), [0.5] * 30)
        assert client.get_run(run.id).info.status == "failed"


@SMALL_CHUNKS
def test_async_run_refusal_raises_and_finish_marks_failed(live_server) -> None:
    async def scenario() -> tuple[str, str, str]:
        async with AsyncClient(live_server.target) as client:
            run = await client.create_run("logger", "async-refused")
            with pytest.raises(errors.InvalidPoint, match=r"steps\[1\] = -1"):
                run.log_many([0, -1], [1.0, 1.0])
            run.log_many(range(40), [0.5] * 40)
            with pytest.raises(errors.PointsRefused) as flushed:
                await run.flush(timeout=30)
            with pytest.raises(errors.PointsRefused) as finished:
                await run.finish()
            status = (await client.get_run(run.id)).info.status
            return str(flushed.value), str(finished.value), status

    flushed, finished, status = asyncio.run(scenario())
    assert "steps 0 to 39" in flushed and "steps 0 to 39" in finished
    assert status == "failed"


def test_flush_raises_when_the_stream_stopped_with_points_unsent(live_server) -> None:
    client = Client(live_server.target)
    run = client.create_run("logger", "closed")
    client.close()  # the channel is gone: the logger cannot send what it is given
    run.log(0, loss=1.0)
    with pytest.raises(errors.EvalstreamError, match="1 logged points were never acknowledged"):
        run.flush(timeout=30)
