"""The run store: runs, loss points (in packed chunks), checkpoints and specimens.

``Store`` is the protocol the servicers depend on; ``SQLiteStore`` is the embedded
implementation (one SQLite file, WAL, group commit; see ``store.sqlite``).
"""

from __future__ import annotations

from evalstream_server.store._types import (
    MAX_SERIES_NAME,
    SPLITS,
    STATUSES,
    TASKS,
    AlreadyExists,
    Box,
    CheckpointRow,
    EvaluationStepRow,
    HyperValue,
    InvalidInput,
    NewRun,
    NotFound,
    PointChunk,
    RunRecord,
    SeriesData,
    SpecimenRecord,
    Store,
    StoreClosed,
    StoreError,
    StoreOverloaded,
    WriteResult,
    WriterLost,
)
from evalstream_server.store.schema import SCHEMA_VERSION
from evalstream_server.store.sqlite import SQLiteStore

__all__ = [
    "MAX_SERIES_NAME",
    "SCHEMA_VERSION",
    "SPLITS",
    "STATUSES",
    "TASKS",
    "AlreadyExists",
    "Box",
    "CheckpointRow",
    "EvaluationStepRow",
    "HyperValue",
    "InvalidInput",
    "NewRun",
    "NotFound",
    "PointChunk",
    "RunRecord",
    "SQLiteStore",
    "SeriesData",
    "SpecimenRecord",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreOverloaded",
    "WriterLost",
    "WriteResult",
]
