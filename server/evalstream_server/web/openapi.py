"""The OpenAPI 3.1 document of /api/v1 (hand-written; a test checks it lists every route).

Schemas of the answers are the evalstream.v1 messages in JSON (see
docs/reference/http-api.md for the mapping); here each is described by its message.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OPENAPI_PATH", "openapi_document"]

OPENAPI_PATH = "/api/v1/openapi.json"

_RUN = {
    "name": "run",
    "in": "path",
    "required": True,
    "description": "A run id, or project/name with the slash URL-encoded (%2F); the first "
    "slash splits project from name.",
    "schema": {"type": "string"},
}
_SPLIT_ENUM = ["train", "validation", "test"]


def _query(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema, **extra}


_INT = {"type": "integer"}
_PAGE = [
    _query("page_size", "Items per page, 1-1000 (default 100).", _INT),
    _query("page_token", "next_page_token of the previous page.", {"type": "string"}),
]
_SPLIT = _query("split", "Split.", {"type": "string", "enum": _SPLIT_ENUM})


def _get(summary: str, rpc: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "description": f"The answer of the {rpc} RPC, as JSON.",
            "operationId": rpc[0].lower() + rpc[1:],
            "parameters": params,
            "responses": {
                "200": {
                    "description": f"The {rpc} answer.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "503": {"$ref": "#/components/responses/Error"},
            },
        }
    }


_PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/projects": _get("The projects the token may read.", "ListProjects", _PAGE),
    "/api/v1/projects/{project}/runs": _get(
        "The runs of a project, newest first.",
        "ListRuns",
        [
            {"name": "project", "in": "path", "required": True, "schema": {"type": "string"}},
            _query(
                "status",
                "Only runs in these statuses (repeatable).",
                {"type": "string", "enum": ["running", "finished", "failed", "killed"]},
            ),
            _query("model", "Only runs of this model.", {"type": "string"}),
            _query("name", "Only the run of this name.", {"type": "string"}),
            *_PAGE,
            _query(
                "verdicts",
                "true: add 'verdicts', one per run of the page in order, each the run's "
                "GetVerdict in brief (run_id, state, severity, summary, as_of_step, "
                "early_stopping), or {run_id, error} when its verdict is refused.",
                {"type": "string", "enum": ["true", "false"], "default": "false"},
            ),
        ],
    ),
    "/api/v1/runs/{run}": _get("One run.", "GetRun", [_RUN]),
    "/api/v1/runs/{run}/curves": _get(
        "A run's series by step range, downsampled (max_points) or paged (page_size).",
        "GetCurves",
        [
            _RUN,
            _query("split", "Only these splits (repeatable).", _SPLIT["schema"]),
            _query("series", "Only these series, e.g. loss (repeatable).", {"type": "string"}),
            _query("start_step", "First step, inclusive.", _INT),
            _query("end_step", "Last step, inclusive.", _INT),
            _query("max_points", "Downsample each series to about this many (0: all, >= 2).", _INT),
            _query("page_size", "Points per page at full resolution (0: not paged).", _INT),
            _query("page_token", "next_page_token of the previous page.", {"type": "string"}),
        ],
    ),
    "/api/v1/runs/{run}/export": {
        "get": {
            "summary": "Every point of a run's series as a CSV or JSON Lines download.",
            "description": "The text of the ExportCurves RPC's messages, streamed (chunked) as "
            "they are made: the bytes the gRPC client's export writes for the same run and "
            "format. CSV columns: split,series,step,wall_time,value; non-finite values as "
            'nan, inf and -inf (in JSON Lines the strings "nan", "inf", "-inf"). '
            "X-Estimated-Points gives the points expected. A failure after the first byte "
            "closes the connection without the last chunk.",
            "operationId": "exportCurves",
            "parameters": [
                _RUN,
                _query(
                    "format",
                    "csv (default) or jsonl.",
                    {"type": "string", "enum": ["csv", "jsonl"], "default": "csv"},
                ),
                _query("split", "Only these splits (repeatable).", _SPLIT["schema"]),
                _query("series", "Only these series, e.g. loss (repeatable).", {"type": "string"}),
                _query("start_step", "First step, inclusive (>= 0).", _INT),
                _query("end_step", "Last step, inclusive (>= start_step).", _INT),
            ],
            "responses": {
                "200": {
                    "description": "The file, as an attachment named project-name.csv (or .jsonl).",
                    "content": {"text/csv": {}, "application/x-ndjson": {}},
                },
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "403": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "503": {"$ref": "#/components/responses/Error"},
            },
        }
    },
    "/api/v1/runs/{run}/verdict": _get(
        "The run's diagnosis now: state, evidence, recommended actions.", "GetVerdict", [_RUN]
    ),
    "/api/v1/runs/{run}/verdict/stream": {
        "get": {
            "summary": "The verdict now and each change of it, as Server-Sent Events.",
            "description": "WatchVerdict: 'event: verdict' with the GetVerdict JSON, first at "
            "once; 'event: end' when the run finishes; 'event: error' with the error body "
            "when the watch fails after the stream began; a comment line every 15 s.",
            "operationId": "watchVerdict",
            "parameters": [_RUN],
            "responses": {
                "200": {"description": "The events.", "content": {"text/event-stream": {}}},
                "401": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "503": {"$ref": "#/components/responses/Error"},
            },
        }
    },
    "/api/v1/runs/{run}/curves/stream": {
        "get": {
            "summary": "A run's newly acked points, as Server-Sent Events.",
            "description": "'event: points' with {run_id, series: [Series]}: first at once, "
            "the points after after_step, then after each write the points of each series "
            "after the last step sent, each series downsampled (min-max) to max_points; at "
            "most one event every 0.5 s. 'event: end' when the run finishes; 'event: error' "
            "when the stream fails after it began; a comment line every 15 s.",
            "operationId": "watchCurves",
            "parameters": [
                _RUN,
                _query("split", "Only these splits (repeatable).", _SPLIT["schema"]),
                _query("series", "Only these series (repeatable).", {"type": "string"}),
                _query("after_step", "Send the points after this step, >= -1 (default -1).", _INT),
                _query("max_points", "Points per series and event, 2-100000 (default 1000).", _INT),
            ],
            "responses": {
                "200": {"description": "The events.", "content": {"text/event-stream": {}}},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
            },
        }
    },
    "/api/v1/runs/{run}/evaluations": _get(
        "The run's evaluation steps with flag counts and action items.",
        "ListEvaluationSteps",
        [_RUN, _SPLIT],
    ),
    "/api/v1/runs/{run}/specimens": _get(
        "Ground truth beside prediction for each specimen of an evaluation step.",
        "GetSpecimens",
        [
            _RUN,
            _query("step", "The evaluation step.", _INT, required=True),
            _SPLIT,
            _query("flag", "Only specimens with this diagnosis flag.", {"type": "string"}),
            *_PAGE,
        ],
    ),
    "/api/v1/runs/{run}/specimens/{specimen}/history": _get(
        "One specimen at every evaluation step.",
        "GetSpecimenHistory",
        [
            _RUN,
            {"name": "specimen", "in": "path", "required": True, "schema": {"type": "string"}},
            _SPLIT,
        ],
    ),
    "/api/v1/runs/{run}/specimens/{specimen}/image": {
        "get": {
            "summary": "The image of a specimen whose image_uri is a path relative to the "
            "server's --image-root.",
            "description": "Served only for a path a specimen of the run references, resolved "
            "inside the image root to a regular file with an image suffix (jpg, jpeg, png, gif, "
            "webp, bmp), at most 64 MiB. http and https image_uris are loaded by the browser "
            "itself; file and s3 URIs are not served (404).",
            "operationId": "getSpecimenImage",
            "parameters": [
                _RUN,
                {"name": "specimen", "in": "path", "required": True, "schema": {"type": "string"}},
                _SPLIT,
                _query(
                    "step",
                    "The evaluation step whose record names the image (default: the latest).",
                    _INT,
                ),
            ],
            "responses": {
                "200": {"description": "The image file.", "content": {"image/*": {}}},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
            },
        }
    },
    "/api/v1/compare": _get(
        "Runs side by side: what changed and the best metrics.",
        "CompareRuns",
        [
            _query(
                "run", "A run id or project/name (repeatable).", {"type": "string"}, required=True
            ),
            _query("baseline", "The run the others are compared with.", {"type": "string"}),
        ],
    ),
    "/api/v1/compare/specimens": _get(
        "One specimen in several runs: at one step, or at each run's best checkpoint.",
        "CompareSpecimens",
        [
            _query(
                "run",
                "A run id or project/name (repeatable, 2-20 runs).",
                {"type": "string"},
                required=True,
            ),
            _query(
                "specimen",
                "The specimen id (image_id or specimen_id).",
                {"type": "string"},
                required=True,
            ),
            _SPLIT,
            _query("step", "The evaluation step read in every run (or best).", _INT),
            _query(
                "best",
                "true: each run at its best checkpoint (or step).",
                {"type": "string", "enum": ["true", "false"]},
            ),
        ],
    ),
    "/api/v1/bands": {
        "get": {
            "summary": "The quality bands of scores: cutoffs and labels, best first.",
            "description": "{bands: [{name, cutoffs: [{min, label}], floor}]}: a value takes "
            "the label of the first cutoff it reaches (value >= min), else the floor.",
            "operationId": "listBands",
            "parameters": [],
            "responses": {
                "200": {
                    "description": "The band tables.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "400": {"$ref": "#/components/responses/Error"},
            },
        }
    },
}


_WHO = {
    "description": "Who the session is: the token's name, role and projects.",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_PATHS["/api/v1/session"] = {
    "get": {
        "summary": "Who the caller is (header or session cookie).",
        "operationId": "getSession",
        "responses": {"200": _WHO, "401": {"$ref": "#/components/responses/Error"}},
    },
    "post": {
        "summary": "Sign in: check a token and keep it in an HttpOnly session cookie.",
        "description": "Sets evalstream_session (HttpOnly) and evalstream_csrf, both "
        "SameSite=Strict (Secure under TLS). A request authenticated by the cookie that is "
        "not GET or HEAD repeats evalstream_csrf in the X-CSRF-Token header.",
        "operationId": "signIn",
        "security": [],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["token"],
                        "properties": {"token": {"type": "string"}},
                    }
                }
            },
        },
        "responses": {
            "200": _WHO,
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
        },
    },
    "delete": {
        "summary": "Sign out: clear the session cookies (needs X-CSRF-Token with a cookie).",
        "operationId": "signOut",
        "responses": {
            "200": {"description": "Signed out."},
            "403": {"$ref": "#/components/responses/Error"},
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """The document served at `OPENAPI_PATH`.

    Example:
        >>> doc = openapi_document()
        >>> doc["openapi"], "/api/v1/runs/{run}/curves" in doc["paths"]
        ('3.1.0', True)
    """
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "evalstream HTTP API",
            "version": "v1",
            "description": "Read-only JSON over the evalstream.v1 read RPCs. Non-finite "
            'numbers are the strings "NaN", "Infinity" and "-Infinity".',
        },
        "paths": _PATHS,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "evalstream_session"},
            },
            "responses": {
                "Error": {
                    "description": "A refusal: what was wrong and which parameter.",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string", "examples": ["INVALID_ARGUMENT"]},
                                "message": {"type": "string"},
                                "field": {"type": "string", "examples": ["end_step"]},
                                "violations": {"type": "array", "items": {"type": "object"}},
                            },
                        }
                    },
                }
            },
        },
        "security": [{"bearer": []}, {"session": []}],
    }
