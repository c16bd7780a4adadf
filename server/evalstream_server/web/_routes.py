"""The JSON API's handlers: query strings in, the servicer's answer out as JSON.

Each handler parses its query string (refusing unknown parameters, repeated single
parameters and malformed numbers, naming the parameter), builds the request the RPC
would get, calls the servicer method through `_calls.call`, and converts the answer
with `_json.message_to_json`. A ``{run}`` in a path is a run id, or ``project/name``
with the slash URL-encoded (``%2F``): the first slash splits project from name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import grpc
from aiohttp import web
from evalstream.v1 import common_pb2, runs_pb2

from evalstream_server.api._convert import SPLIT_ENUMS, STATUS_ENUMS
from evalstream_server.api.runs import RunsServicer
from evalstream_server.auth import Principal
from evalstream_server.metrics.bands import BANDS
from evalstream_server.web._calls import ApiError, call
from evalstream_server.web._download import download_name, stream_export
from evalstream_server.web._images import MAX_IMAGE_BYTES, resolve_image
from evalstream_server.web._json import message_to_json
from evalstream_server.web._stream import stream_points, stream_verdicts

__all__ = ["CALLER", "ROUTES", "STREAM_ROUTES", "Api", "json_response"]

E = TypeVar("E")
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
STEPS = (0, 2**63 - 1)
EXPORT_FORMATS: Mapping[str, runs_pb2.ExportFormat] = {
    "csv": runs_pb2.EXPORT_FORMAT_CSV,
    "jsonl": runs_pb2.EXPORT_FORMAT_JSONL,
}
# The names the RPCs' own conversions use: "train", ...; "running", ...
SPLITS: Mapping[str, common_pb2.Split] = SPLIT_ENUMS
STATUSES: Mapping[str, runs_pb2.RunStatus] = STATUS_ENUMS
BOOLEANS: Mapping[str, bool] = {"true": True, "false": False}

_dumps = functools.partial(json.dumps, allow_nan=False, separators=(",", ":"))


def json_response(data: Any, *, status: int = 200) -> web.Response:
    """A JSON answer; never NaN (the converter spells non-finite numbers as strings)."""
    return web.json_response(
        data, status=status, dumps=_dumps, headers={"Cache-Control": "no-store"}
    )


def bad(field: str, message: str) -> ApiError:
    """INVALID_ARGUMENT naming the query parameter ``field``."""
    return ApiError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"{field}: {message}",
        violations=[{"field": field, "description": message}],
    )


class Query:
    """A request's query parameters, checked against those the endpoint takes."""

    def __init__(self, request: web.Request, allowed: tuple[str, ...], repeated: tuple[str, ...]):
        self._query = request.query
        for name in self._query:
            if name not in allowed:
                known = ", ".join(allowed) or "none"
                raise bad(name, f"unknown parameter; this endpoint takes: {known}")
            if name not in repeated and len(self._query.getall(name)) > 1:
                raise bad(name, "given more than once; give it once")

    def text(self, name: str) -> str:
        return self._query.get(name, "")

    def texts(self, name: str) -> list[str]:
        return list(self._query.getall(name, []))

    def integer(self, name: str, bounds: tuple[int, int] = INT32) -> int | None:
        raw = self._query.get(name)
        if raw is None or raw == "":
            return None
        try:
            value = int(raw, 10)
        except ValueError:
            raise bad(name, f"{raw[:40]!r} is not an integer") from None
        if not bounds[0] <= value <= bounds[1]:
            raise bad(name, f"{value} is out of range [{bounds[0]}, {bounds[1]}]")
        return value

    def choice(self, name: str, raw: str, choices: Mapping[str, E]) -> E:
        if raw not in choices:
            raise bad(name, f"{raw[:40]!r} is not one of {', '.join(choices)}")
        return choices[raw]

    def split(self, name: str = "split") -> common_pb2.Split:
        raw = self.text(name)
        return self.choice(name, raw, SPLITS) if raw else common_pb2.SPLIT_UNSPECIFIED


#: The caller of the request being handled (set by the server's middleware, in the
#: request's own task, as the gRPC interceptor sets `auth.current_principal`).
CALLER: contextvars.ContextVar[Principal] = contextvars.ContextVar("evalstream_web_caller")


def principal_of(_request: web.Request) -> Principal:
    return CALLER.get()


class Api:
    """The /api/v1 handlers over one `RunsServicer` and its handler threads."""

    def __init__(
        self,
        runs: RunsServicer,
        pool: concurrent.futures.Executor | None = None,
        *,
        image_root: Path | None = None,
    ) -> None:
        self._runs = runs
        self._pool = pool
        self._image_root = image_root

    async def _call(self, request: web.Request, fn: Callable[[Any, Any], Any], pb: Any) -> Any:
        return await call(self._pool, principal_of(request), fn, pb)

    async def _run(self, request: web.Request) -> runs_pb2.Run:
        """The run a path names: an id, or ``project/name``."""
        raw = request.match_info["run"]
        if "/" in raw:
            project, name = raw.split("/", 1)
            pb = runs_pb2.GetRunRequest(project=project, name=name)
        else:
            pb = runs_pb2.GetRunRequest(run_id=raw)
        run: runs_pb2.Run = await self._call(request, self._runs.GetRun, pb)
        return run

    async def _run_id(self, request: web.Request) -> str:
        raw = request.match_info["run"]
        return (await self._run(request)).id if "/" in raw else raw

    # ---------------------------------------------------------------- endpoints

    async def projects(self, request: web.Request) -> web.Response:
        q = Query(request, ("page_size", "page_token"), ())
        pb = runs_pb2.ListProjectsRequest(
            page_size=q.integer("page_size") or 0, page_token=q.text("page_token")
        )
        return json_response(
            message_to_json(await self._call(request, self._runs.ListProjects, pb))
        )

    async def runs(self, request: web.Request) -> web.Response:
        q = Query(
            request, ("status", "model", "name", "page_size", "page_token", "verdicts"), ("status",)
        )
        with_verdicts = q.choice("verdicts", q.text("verdicts") or "false", BOOLEANS)
        pb = runs_pb2.ListRunsRequest(
            project=request.match_info["project"],
            statuses=[q.choice("status", s, STATUSES) for s in q.texts("status")],
            model=q.text("model"),
            name=q.text("name"),
            page_size=q.integer("page_size") or 0,
            page_token=q.text("page_token"),
        )
        reply: runs_pb2.ListRunsResponse = await self._call(request, self._runs.ListRuns, pb)
        answer = message_to_json(reply)
        if with_verdicts:  # one GetVerdict per run of the page: bounded by page_size
            answer["verdicts"] = [await self._verdict_summary(request, r.id) for r in reply.runs]
        return json_response(answer)

    async def _verdict_summary(self, request: web.Request, run_id: str) -> dict[str, Any]:
        """A run's verdict in a line of the runs list, or the refusal of its GetVerdict."""
        pb = runs_pb2.GetVerdictRequest(run_id=run_id)
        try:
            verdict: runs_pb2.Verdict = await self._call(request, self._runs.GetVerdict, pb)
        except ApiError as exc:  # e.g. stored thresholds that no longer validate
            return {"run_id": run_id, **exc.body()}
        full = message_to_json(verdict)
        summary = {k: full[k] for k in ("run_id", "state", "severity", "summary", "as_of_step")}
        summary["early_stopping"] = full.get("early_stopping", {})
        return summary

    async def run(self, request: web.Request) -> web.Response:
        Query(request, (), ())
        return json_response(message_to_json(await self._run(request)))

    async def curves(self, request: web.Request) -> web.Response:
        q = Query(
            request,
            ("split", "series", "start_step", "end_step", "max_points", "page_size", "page_token"),
            ("split", "series"),
        )
        pb = runs_pb2.GetCurvesRequest(
            splits=[q.choice("split", s, SPLITS) for s in q.texts("split")],
            series=q.texts("series"),
            max_points=q.integer("max_points") or 0,
            page_size=q.integer("page_size") or 0,
            page_token=q.text("page_token"),
        )
        start, end = q.integer("start_step", INT64), q.integer("end_step", INT64)
        if start is not None:
            pb.start_step = start
        if end is not None:
            pb.end_step = end
        pb.run_id = await self._run_id(request)
        return json_response(message_to_json(await self._call(request, self._runs.GetCurves, pb)))

    async def export(self, request: web.Request) -> web.StreamResponse:
        q = Query(
            request, ("format", "split", "series", "start_step", "end_step"), ("split", "series")
        )
        fmt = q.text("format") or "csv"
        pb = runs_pb2.ExportCurvesRequest(
            format=q.choice("format", fmt, EXPORT_FORMATS),
            splits=[q.choice("split", s, SPLITS) for s in q.texts("split")],
            series=q.texts("series"),
        )
        start, end = q.integer("start_step", STEPS), q.integer("end_step", STEPS)
        if start is not None and end is not None and start > end:
            raise bad("start_step", f"{start} is after end_step {end} (both are inclusive)")
        if start is not None:
            pb.start_step = start
        if end is not None:
            pb.end_step = end
        run = await self._run(request)
        pb.run_id = run.id
        return await stream_export(
            request,
            self._runs,
            self._pool,
            principal_of(request),
            pb,
            fmt=fmt,
            filename=download_name(run.project, run.name, fmt),
        )

    async def verdict(self, request: web.Request) -> web.Response:
        Query(request, (), ())
        pb = runs_pb2.GetVerdictRequest(run_id=await self._run_id(request))
        return json_response(message_to_json(await self._call(request, self._runs.GetVerdict, pb)))

    async def compare(self, request: web.Request) -> web.Response:
        q = Query(request, ("run", "baseline"), ("run",))
        names = q.texts("run")
        if not names:
            raise bad("run", "required: give two or more runs, e.g. ?run=ID1&run=ID2")
        ids = [await self._resolve(request, name) for name in names]
        baseline = q.text("baseline")
        pb = runs_pb2.CompareRunsRequest(
            run_ids=ids, baseline_run_id=await self._resolve(request, baseline) if baseline else ""
        )
        return json_response(message_to_json(await self._call(request, self._runs.CompareRuns, pb)))

    async def specimen_image(self, request: web.Request) -> web.StreamResponse:
        """The image file a specimen's relative image_uri names under ``--image-root``."""
        q = Query(request, ("split", "step"), ())
        step = q.integer("step", INT64)
        specimen = request.match_info["specimen"]
        run = await self._run(request)  # an unknown run is 404 before any other refusal
        pb = runs_pb2.GetSpecimenHistoryRequest(split=q.split(), specimen_id=specimen)
        pb.run_id = run.id
        history = await self._call(request, self._runs.GetSpecimenHistory, pb)
        recorded = [e for e in history.steps if step is None or e.step == step]
        if not recorded:
            raise ApiError(
                grpc.StatusCode.NOT_FOUND,
                f"step: specimen {specimen[:80]!r} was not recorded at step {step}",
                field="step",
            )
        if self._image_root is None:
            raise ApiError(
                grpc.StatusCode.NOT_FOUND,
                "this server has no image root (--image-root): relative image paths are not served",
            )
        found = resolve_image(self._image_root, recorded[-1].specimen.image_uri)
        if isinstance(found, str):
            raise ApiError(grpc.StatusCode.NOT_FOUND, found)
        path, content_type = found
        body = await asyncio.get_running_loop().run_in_executor(self._pool, _read_image, path)
        if body is None:
            raise ApiError(
                grpc.StatusCode.NOT_FOUND, f"the image is over {MAX_IMAGE_BYTES} bytes; not served"
            )
        return web.Response(
            body=body, content_type=content_type, headers={"Cache-Control": "private, max-age=300"}
        )

    async def compare_specimens(self, request: web.Request) -> web.Response:
        q = Query(request, ("run", "specimen", "split", "step", "best"), ("run",))
        names = q.texts("run")
        if len(names) < 2:
            raise bad("run", f"{len(names)} runs given; give 2-20, e.g. ?run=ID1&run=ID2")
        specimen = q.text("specimen")
        if not specimen:
            raise bad("specimen", "required: the specimen id (image_id or specimen_id)")
        step = q.integer("step", INT64)
        best = q.choice("best", q.text("best"), BOOLEANS) if q.text("best") else False
        if (step is None) == (not best):
            raise bad("step", "give exactly one of step=N and best=true")
        pb = runs_pb2.CompareSpecimensRequest(split=q.split(), specimen_id=specimen)
        if best:
            pb.best = True
        else:
            pb.step = step if step is not None else 0
        pb.run_ids.extend([await self._resolve(request, name) for name in names])
        try:
            reply = await self._call(request, self._runs.CompareSpecimens, pb)
        except ApiError as exc:
            raise _renamed(exc) from None
        return json_response(message_to_json(reply))

    async def _resolve(self, request: web.Request, name: str) -> str:
        if "/" not in name:
            return name
        project, run_name = name.split("/", 1)
        pb = runs_pb2.GetRunRequest(project=project, name=run_name)
        run: runs_pb2.Run = await self._call(request, self._runs.GetRun, pb)
        return run.id

    async def verdict_stream(self, request: web.Request) -> web.StreamResponse:
        Query(request, (), ())
        run_id = await self._run_id(request)
        return await stream_verdicts(request, self._runs, self._pool, principal_of(request), run_id)

    async def curves_stream(self, request: web.Request) -> web.StreamResponse:
        q = Query(request, ("split", "series", "after_step", "max_points"), ("split", "series"))
        splits = [q.choice("split", s, SPLITS) for s in q.texts("split")]
        after = q.integer("after_step", (-1, INT64[1]))
        max_points = q.integer("max_points", (2, 100_000))
        run_id = await self._run_id(request)
        return await stream_points(
            request,
            self._runs,
            self._pool,
            principal_of(request),
            run_id,
            splits=splits,
            series=q.texts("series"),
            max_points=1000 if max_points is None else max_points,
            after_step=-1 if after is None else after,
        )

    async def bands(self, request: web.Request) -> web.Response:
        Query(request, (), ())
        return json_response(
            {
                "bands": [
                    {
                        "name": name,
                        "cutoffs": [{"min": c, "label": label} for c, label in b.cutoffs],
                        "floor": b.floor,
                    }
                    for name, b in BANDS.items()
                ]
            }
        )

    async def evaluations(self, request: web.Request) -> web.Response:
        q = Query(request, ("split",), ())
        pb = runs_pb2.ListEvaluationStepsRequest(split=q.split())
        pb.run_id = await self._run_id(request)
        reply = await self._call(request, self._runs.ListEvaluationSteps, pb)
        return json_response(message_to_json(reply))

    async def specimens(self, request: web.Request) -> web.Response:
        q = Query(request, ("step", "split", "flag", "page_size", "page_token"), ())
        step = q.integer("step", INT64)
        if step is None:
            raise bad("step", "required: the evaluation step (see .../evaluations)")
        pb = runs_pb2.GetSpecimensRequest(
            split=q.split(),
            step=step,
            flag=q.text("flag"),
            page_size=q.integer("page_size") or 0,
            page_token=q.text("page_token"),
        )
        pb.run_id = await self._run_id(request)
        reply = await self._call(request, self._runs.GetSpecimens, pb)
        return json_response(message_to_json(reply))

    async def specimen_history(self, request: web.Request) -> web.Response:
        q = Query(request, ("split",), ())
        pb = runs_pb2.GetSpecimenHistoryRequest(
            split=q.split(), specimen_id=request.match_info["specimen"]
        )
        pb.run_id = await self._run_id(request)
        reply = await self._call(request, self._runs.GetSpecimenHistory, pb)
        return json_response(message_to_json(reply))


def _read_image(path: Path) -> bytes | None:
    """The file's bytes; None when it is larger than `MAX_IMAGE_BYTES`."""
    with path.open("rb") as f:
        body = f.read(MAX_IMAGE_BYTES + 1)
    return None if len(body) > MAX_IMAGE_BYTES else body


def _renamed(exc: ApiError) -> ApiError:
    """`exc` with CompareSpecimens' field names (``run_ids[i]``, ``specimen_id``, ``at``)
    as the query parameters that gave them (``run[i]``, the i-th ``run``; ``specimen``;
    ``step``)."""

    def rename(field: str) -> str:
        if field.startswith("run_ids"):
            return "run" + field[len("run_ids") :]
        return {"specimen_id": "specimen", "at": "step"}.get(field, field)

    if not exc.violations and not exc.field:
        return exc
    message = exc.message
    if exc.field and message.startswith(f"{exc.field}: "):
        message = f"{rename(exc.field)}: {message[len(exc.field) + 2 :]}"
    violations = [{**v, "field": rename(v["field"])} for v in exc.violations]
    return ApiError(exc.code, message, field=rename(exc.field), violations=violations)


#: Every GET route of /api/v1 and its handler; the OpenAPI document lists exactly these.
ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/v1/projects", "projects"),
    ("/api/v1/projects/{project}/runs", "runs"),
    ("/api/v1/runs/{run}", "run"),
    ("/api/v1/runs/{run}/curves", "curves"),
    ("/api/v1/runs/{run}/export", "export"),
    ("/api/v1/runs/{run}/verdict", "verdict"),
    ("/api/v1/runs/{run}/evaluations", "evaluations"),
    ("/api/v1/runs/{run}/specimens", "specimens"),
    ("/api/v1/runs/{run}/specimens/{specimen}/history", "specimen_history"),
    ("/api/v1/runs/{run}/specimens/{specimen}/image", "specimen_image"),
    ("/api/v1/compare", "compare"),
    ("/api/v1/compare/specimens", "compare_specimens"),
    ("/api/v1/bands", "bands"),
)
#: Streams (Server-Sent Events): GET routes whose answer lasts as long as the run.
STREAM_ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/v1/runs/{run}/verdict/stream", "verdict_stream"),
    ("/api/v1/runs/{run}/curves/stream", "curves_stream"),
)
