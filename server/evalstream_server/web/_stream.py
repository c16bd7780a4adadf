"""Server-Sent Events: WatchVerdict as ``text/event-stream``.

Each verdict is an ``event: verdict`` whose data is the GetVerdict JSON, the first
one at once; ``event: end`` when the run finishes; ``event: error`` (the JSON error
body) when the watch fails after the stream began (the server stopping: UNAVAILABLE).
A comment line every `HEARTBEAT_SECONDS` keeps proxies from closing an idle stream
and finds a browser that left: the servicer's watch then ends at its next poll.
A refusal before the first event (unknown run, bad token) is the usual JSON error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from typing import Any

from aiohttp import web
from evalstream.v1 import runs_pb2

from evalstream_server.api.runs import RunsServicer
from evalstream_server.auth import Principal, acting_as
from evalstream_server.web._calls import ApiError, WebContext
from evalstream_server.web._json import message_to_json

__all__ = ["HEARTBEAT_SECONDS", "stream_verdicts"]

HEARTBEAT_SECONDS = 15.0


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
    thread_context = acting_as(principal)  # entered by one thread at a time: next() is serial
    watch = runs.WatchVerdict(runs_pb2.WatchVerdictRequest(run_id=run_id), context)
    loop = asyncio.get_running_loop()

    def advance() -> Any:
        return next(watch, None)

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
                await response.write(_event("verdict", message_to_json(item)))
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
