"""The evalstream.v1.Runs servicer.

Runs, loss ingestion, verdicts and comparisons are part of the contract but not
of this server version yet: every method answers UNIMPLEMENTED and says what is
missing, so clients can tell "not built" from "broken".
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from evalstream.v1 import runs_pb2_grpc

from evalstream_server.api._status import abort

_MISSING = {
    "CreateRun": "run tracking (the embedded run store)",
    "GetRun": "run tracking (the embedded run store)",
    "ListRuns": "run tracking (the embedded run store)",
    "StreamLoss": "durable loss ingestion (the embedded run store)",
    "LogCheckpoint": "checkpoint metrics (the embedded run store)",
    "GetCurves": "reading curves back (the embedded run store)",
    "GetVerdict": "curve diagnosis (verdicts)",
    "WatchVerdict": "live verdict updates",
    "CompareRuns": "run comparison",
    "ListEvaluationSteps": "per-specimen evaluation records",
    "GetSpecimens": "per-specimen evaluation records",
}


def _unimplemented(name: str) -> Any:
    def method(self: RunsServicer, request: Any, context: grpc.ServicerContext) -> NoReturn:
        abort(
            context,
            grpc.StatusCode.UNIMPLEMENTED,
            f"Runs.{name} is not available in this server version: {_MISSING[name]} "
            "has not been built yet",
        )

    method.__name__ = name
    return method


class RunsServicer(runs_pb2_grpc.RunsServicer):
    """Answers UNIMPLEMENTED, naming the missing capability, for every Runs method."""


for _name in _MISSING:
    setattr(RunsServicer, _name, _unimplemented(_name))
