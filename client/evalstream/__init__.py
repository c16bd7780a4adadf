"""evalstream: the thin client of the evalstream metrics service.

Needs only grpcio and protobuf. The public surface::

    Client, AsyncClient                  connections (context managers)
    Box, ImageBoxes                      box-scoring input
    TextReport, TextResult, PairResult,
    TextScore                            text-scoring results
    BoxResult, BoxReport, BoxScores,
    ImageResult, PrCurve, Figure         results (frozen dataclasses)
    Run, RunInfo, Series, LoggerStats,
    Refusal, Point                       runs: log loss and checkpoints, read curves, export
    ProjectInfo, EvaluationStep,
    Specimen                             projects, evaluations, ground truth beside prediction
    SpecimenAtStep, RunSpecimen          one specimen across steps and runs
    errors                               the exception tree (EvalstreamError, ...)
    evalstream.plot                      figures of runs (matplotlib; imported on its own,
                                         pip install 'evalstream[plot]')
"""

from __future__ import annotations

from evalstream import errors
from evalstream._client import AsyncClient, Client
from evalstream._export import Point
from evalstream._records import EvaluationStep, ProjectInfo, Specimen
from evalstream._run_types import Checkpoint, LoggerStats, RunInfo, Series
from evalstream._runs import AsyncRun, Run
from evalstream._specimen_reads import RunSpecimen, SpecimenAtStep
from evalstream._types import (
    Box,
    BoxReport,
    BoxResult,
    BoxScores,
    Figure,
    ImageBoxes,
    ImageResult,
    PairResult,
    PrCurve,
    TextReport,
    TextResult,
    TextScore,
)
from evalstream._verdicts import Comparison, Verdict
from evalstream.errors import EvalstreamError, Refusal

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncRun",
    "Box",
    "BoxReport",
    "BoxResult",
    "BoxScores",
    "Checkpoint",
    "Client",
    "Comparison",
    "EvalstreamError",
    "EvaluationStep",
    "Figure",
    "ImageBoxes",
    "ImageResult",
    "LoggerStats",
    "PairResult",
    "Point",
    "PrCurve",
    "ProjectInfo",
    "Refusal",
    "Run",
    "RunInfo",
    "RunSpecimen",
    "Series",
    "Specimen",
    "SpecimenAtStep",
    "TextReport",
    "TextResult",
    "TextScore",
    "Verdict",
    "errors",
]
