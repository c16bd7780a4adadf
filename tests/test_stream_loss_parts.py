"""StreamLoss's parts on their own: chunk checks (both sizes), the burst waker, the window."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import numpy as np
import pytest
from evalstream.v1 import common_pb2, runs_pb2
from evalstream_server.api._convert import SMALL_PACKED, packed_array
from evalstream_server.api._window import Waker, Window, settled
from evalstream_server.api.runs import RunsLimits, chunk_violations


@pytest.mark.parametrize("n", [1, 3, SMALL_PACKED, SMALL_PACKED + 1, 1000])
def test_the_first_negative_step_is_named_whatever_the_chunk_size(n: int) -> None:
    steps = list(range(n))
    bad = n // 2
    steps[bad] = -7
    if n - 1 > bad:
        steps[-1] = -8  # a later negative step is not the one named
    chunk = runs_pb2.LossChunk(
        run_id="r", split=common_pb2.SPLIT_TRAIN, steps=steps, values=[0.0] * n
    )
    (violation,) = chunk_violations(chunk, RunsLimits())
    assert violation.field == f"steps[{bad}]"
    assert "step -7 is negative" in violation.description


@pytest.mark.parametrize("n", [1, SMALL_PACKED, 1000])
def test_non_negative_steps_pass(n: int) -> None:
    chunk = runs_pb2.LossChunk(
        run_id="r", split=common_pb2.SPLIT_TRAIN, steps=list(range(n)), values=[0.0] * n
    )
    assert chunk_violations(chunk, RunsLimits()) == []


class _CountingLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self.threadsafe_calls = 0

    def call_soon_threadsafe(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.threadsafe_calls += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def test_a_burst_of_wakes_from_another_thread_costs_one_loop_wake_up() -> None:
    loop = _CountingLoop()
    try:
        waker = Waker(loop)
        waiters = [loop.create_future() for _ in range(100)]
        waiters[5].cancel()  # a stream that went away meanwhile
        thread = threading.Thread(target=lambda: [waker.wake(w) for w in waiters])
        thread.start()
        thread.join()
        loop.run_until_complete(asyncio.sleep(0))
        assert loop.threadsafe_calls == 1
        assert all(w.done() for w in waiters) and waiters[5].cancelled()
        waker.wake(waiters[0])  # a later burst schedules its own drain
        loop.run_until_complete(asyncio.sleep(0))
        assert loop.threadsafe_calls == 2
    finally:
        loop.close()


def test_settled_returns_once_the_store_future_is_done() -> None:
    async def scenario() -> list[str]:
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        order: list[str] = []

        waker = Waker(asyncio.get_running_loop())

        async def wait() -> None:
            await settled(future, waker)
            order.append(f"settled {future.result()}")

        task = asyncio.create_task(wait())
        await asyncio.sleep(0.05)
        order.append("before")
        threading.Thread(target=future.set_result, args=(42,)).start()
        await asyncio.wait_for(task, 5)
        return order

    assert asyncio.run(scenario()) == ["before", "settled 42"]


def test_the_window_is_a_bounded_fifo() -> None:
    """Items come out in order; a put into a full window waits for a get, a get for a put."""

    async def main() -> list[tuple[str, int]]:
        window: Window[int] = Window(asyncio.get_running_loop(), 2)
        events: list[tuple[str, int]] = []

        async def produce() -> None:
            for i in range(5):
                await window.put(i)
                events.append(("put", i))

        producer = asyncio.create_task(produce())
        await asyncio.sleep(0)
        assert events == [("put", 0), ("put", 1)]  # full: the third put waits
        for _ in range(5):
            events.append(("got", await window.get()))
        await producer
        getter = asyncio.create_task(window.get())
        await asyncio.sleep(0)
        assert not getter.done()  # empty: the get waits
        await window.put(9)
        assert await getter == 9
        # A cancelled get loses nothing: the next one takes the item.
        cancelled = asyncio.create_task(window.get())
        await asyncio.sleep(0)
        cancelled.cancel()
        await window.put(10)
        assert await window.get() == 10
        return events

    events = asyncio.run(main())
    assert [e for e in events if e[0] == "got"] == [("got", i) for i in range(5)]
    # Never more than 2 put and not yet got.
    held = 0
    for kind, _ in events:
        held += 1 if kind == "put" else -1
        assert held <= 2


@pytest.mark.parametrize("n", [1, SMALL_PACKED, SMALL_PACKED + 1])
def test_packed_fields_become_arrays_bit_for_bit(n: int) -> None:
    """Both conversions keep NaN payloads (a signalling one too), -0.0 and int64 extremes."""
    bits = [0x7FF8000000000123, 0x7FF0000000000001, 0xFFF8000000000000, 0x8000000000000000]
    values = (np.array(bits * n, dtype=np.uint64)[:n]).view(np.float64)
    steps = ([2**63 - 1, -(2**63), 0, 5] * n)[:n]
    chunk = runs_pb2.LossChunk(steps=steps, values=values.tolist())
    got_values = packed_array(chunk.values, np.float64)
    assert got_values.dtype == np.float64
    assert got_values.view(np.uint64).tolist() == values.view(np.uint64).tolist()
    got_steps = packed_array(chunk.steps, np.int64)
    assert got_steps.dtype == np.int64 and got_steps.tolist() == steps
