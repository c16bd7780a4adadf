"""Server-Sent Events: WatchVerdict, and a run's newly acked points, as ``text/event-stream``.

Each verdict is an ``event: verdict`` whose data is the GetVerdict JSON, the first
one at once; ``event: end`` when the run finishes; ``event: error`` (the JSON error
body) when the watch fails after the stream began (the server stopping: UNAVAILABLE).
A comment line every `HEARTBEAT_SECONDS` keeps proxies from closing an idle stream
and finds a browser that left: the servicer's watch then ends at its next poll.
A refusal before the first event (unknown run, bad token) is the usual JSON error.

The points stream wakes on the same notification as WatchVerdict (the verdict hub is
told of each committed chunk) and sends, per series, the points after the last step it
sent, read through GetCurves (the caller's scope, limits and min-max downsampling).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from evalstream.v1 import common_pb2, runs_pb2

from evalstream_server.api.runs import RunsServicer
from evalstream_server.auth import Principal, acting_as
from evalstream_server.web._calls import ApiError, WebContext
from evalstream_server.web._json import message_to_json

__all__ = ["HEARTBEAT_SECONDS", "MIN_INTERVAL_SECONDS", "stream_points", "stream_verdicts"]

HEARTBEAT_SECONDS = 15.0
#: Points events are at most this often: writes in between are sent together.
MIN_INTERVAL_SECONDS = 0.5


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, allow_nan=False)}\n\n".encode()


async def stream_verdicts(
    request: web.Request,
    runs: RunsServicer,
    pool: concurrent.futures.Executor | None,
    principal: Principal,
    run_id: str,
) -> web.StreamResponse:
    """Streams the run's verdicts until it finishes, the client leaves or the server stops."""
    context = WebContext()
    watch = runs.WatchVerdict(runs_pb2.WatchVerdictRequest(run_id=run_id), context)

    def advance() -> Any:
        verdict = next(watch, None)
        return None if verdict is None else ("verdict", message_to_json(verdict))

    return await _serve(request, pool, principal, context, advance, run_id, interval=0.0)


class _NewPoints:
    """Reads, per series, the points after the last step sent (a thread's work)."""

    def __init__(
        self,
        runs: RunsServicer,
        context: WebContext,
        run_id: str,
        *,
        splits: list[common_pb2.Split],
        series: list[str],
        max_points: int,
        after_step: int,
    ) -> None:
        self._runs, self._context, self._run_id = runs, context, run_id
        self._splits, self._series, self._max_points = splits, series, max_points
        self._after = after_step
        self._last: dict[tuple[int, str], int] = {}  # (split, name) -> last step sent

    def _read(self, **fields: Any) -> runs_pb2.GetCurvesResponse:
        pb = runs_pb2.GetCurvesRequest(run_id=self._run_id, **fields)
        reply: runs_pb2.GetCurvesResponse = self._runs.GetCurves(pb, self._context)
        return reply

    def read(self) -> list[runs_pb2.Series]:
        # Series not seen yet: any with a point after the earliest last step sent
        # (validation may be acked after later training steps).
        floor = min(self._last.values(), default=self._after)
        found = self._read(
            splits=self._splits, series=self._series, max_points=2, start_step=floor + 1
        )
        for s in found.series:
            self._last.setdefault((s.split, s.name), self._after)
        out = []
        for (split, name), last in sorted(self._last.items()):
            reply = self._read(
                splits=[split], series=[name], max_points=self._max_points, start_step=last + 1
            )
            for s in reply.series:
                if s.steps:
                    self._last[(split, name)] = s.steps[-1]
                    out.append(s)
        return out


async def stream_points(
    request: web.Request,
    runs: RunsServicer,
    pool: concurrent.futures.Executor | None,
    principal: Principal,
    run_id: str,
    *,
    splits: list[common_pb2.Split],
    series: list[str],
    max_points: int,
    after_step: int,
) -> web.StreamResponse:
    """Streams the run's new points (``event: points``) until it finishes or the client leaves.

    The first event comes at once, with the points after `after_step` (-1: every point),
    each series downsampled to at most `max_points`; then one after each write.
    """
    context = WebContext()
    changes = runs.run_changes(run_id, context)
    reader = _NewPoints(
        runs,
        context,
        run_id,
        splits=splits,
        series=series,
        max_points=max_points,
        after_step=after_step,
    )

    def advance() -> Any:
        if next(changes, None) is None:
            return None
        data = {"run_id": run_id, "series": [message_to_json(s) for s in reader.read()]}
        return ("points", data)

    return await _serve(
        request, pool, principal, context, advance, run_id, interval=MIN_INTERVAL_SECONDS
    )


async def _serve(
    request: web.Request,
    pool: concurrent.futures.Executor | None,
    principal: Principal,
    context: WebContext,
    advance: Callable[[], tuple[str, Any] | None],
    run_id: str,
    *,
    interval: float,
) -> web.StreamResponse:
    """Writes `advance()`'s events (run in a handler thread, as `principal`) until it
    returns None, then ``event: end``; at most one event per `interval` seconds."""
    thread_context = acting_as(principal)  # entered by one thread at a time: next() is serial
    loop = asyncio.get_running_loop()

    def step() -> asyncio.Future[Any]:
        return loop.run_in_executor(pool, thread_context.run, advance)

    try:
        first = await step()  # a refusal here is the middleware's JSON error
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            }
        )
        await response.prepare(request)
        item = first
        try:
            while item is not None:
                await response.write(_event(*item))
                if interval:
                    await asyncio.sleep(interval)
                pending = step()
                while True:
                    done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_SECONDS)
                    if done:
                        break
                    await response.write(b": keep-alive\n\n")
                item = pending.result()
            await response.write(_event("end", {"run_id": run_id}))
        except ApiError as exc:
            await response.write(_event("error", exc.body()))
        except (ConnectionError, RuntimeError):  # the client left, or the transport closed
            pass
        return response
    finally:
        context.active = False  # the watch ends at its next poll
