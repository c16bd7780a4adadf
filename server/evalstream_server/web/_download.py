"""A run's points as a download: ExportCurves' CSV or JSON Lines, streamed.

The servicer's export generator runs in the handler pool one message at a time (as
the RPC runs it, `api.export`): each message's text is written before the next is
made, and aiohttp's write waits while the socket's buffer is full, so a slow reader
holds one message in the server, never the export. The body is chunked; its bytes are
the ones ``Client.export`` writes for the same run and format. A refusal before the
first byte (unknown run, bad split) is the usual JSON error; a failure after it
closes the connection without the last chunk, so that no client takes a cut file for
a whole one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
from typing import Any

from aiohttp import web
from evalstream.v1 import runs_pb2

from evalstream_server.api.runs import RunsServicer
from evalstream_server.auth import Principal, acting_as
from evalstream_server.web._calls import ApiError, WebContext
from evalstream_server.web._pages import security_headers

__all__ = ["CONTENT_TYPES", "download_name", "stream_export"]

log = logging.getLogger("evalstream.web")

#: The formats served, and their media types.
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def download_name(project: str, name: str, fmt: str) -> str:
    """A file name safe in any header and file system: ``project-name.fmt``.

    Characters other than ASCII letters, digits, ``.``, ``_`` and ``-`` become ``_``;
    the stem is at most 100 characters and never starts with a dot.

    Example:
        >>> download_name("vision", 'lr=3e-4 "best"/é', "csv")
        'vision-lr_3e-4_best_.csv'
        >>> download_name("", "..", "jsonl")
        'run.jsonl'
    """
    stem = _UNSAFE.sub("_", f"{project}-{name}" if project else name)[:100].lstrip(".")
    return f"{stem or 'run'}.{fmt}"


async def stream_export(
    request: web.Request,
    runs: RunsServicer,
    pool: concurrent.futures.Executor | None,
    principal: Principal,
    pb: runs_pb2.ExportCurvesRequest,
    *,
    fmt: str,
    filename: str,
) -> web.StreamResponse:
    """Streams ExportCurves' text messages as the body of a download."""
    context = WebContext()
    thread_context = acting_as(principal)  # entered by one thread at a time: next() is serial
    replies = runs.ExportCurves(pb, context)
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[Any] | None = None

    def advance() -> Any:
        return next(replies, None)

    async def step() -> Any:
        nonlocal pending
        pending = loop.run_in_executor(pool, thread_context.run, advance)
        return await pending

    try:
        first = await step()  # a refusal here is the middleware's JSON error
        response = web.StreamResponse(
            headers={
                "Content-Type": CONTENT_TYPES[fmt],
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
                "X-Estimated-Points": str(first.estimated_points if first else 0),
            }
        )
        response.enable_chunked_encoding()
        security_headers(response)
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        item = first
        try:
            while item is not None:
                if item.text:
                    await response.write(item.text)
                item = await step()
        except (ConnectionError, RuntimeError):  # the client left, or the transport closed
            return response
        except ApiError as exc:  # after the first byte: the status is sent, cut the body
            log.warning(
                "export failed while streaming",
                extra={"fields": {"path": request.path, "code": exc.code.name}},
            )
            if request.transport is not None:
                request.transport.close()
        return response
    finally:
        context.active = False  # the export ends at its next check
        close = getattr(replies, "close", None)  # a generator's; not while it runs a step
        if close is not None and (pending is None or pending.done()):
            close()
