"""The run store: runs, loss points (in packed chunks), checkpoints and specimens.

``Store`` is the protocol the servicers depend on; ``SQLiteStore`` is the embedded
implementation (one SQLite file, WAL, group commit; see ``store.sqlite``),
``PostgresStore`` the scale-out one (``store.postgres``; psycopg is imported
when one opens). The modules here are backend-neutral: the protocol, its types
and errors (`_types`), the chunk codec (`_codec`), the compaction policy
(`_compaction`), input checks (`_checks`), row layouts (`_records`), the
backend-neutral half of both stores (`_front`), store URLs (`_url`) and min-max
downsampling of a curve read back for a chart (`downsample`).
"""

from __future__ import annotations

from evalstream_server.store._types import (
    MAX_SERIES_NAME,
    SPLITS,
    STATUSES,
    TASKS,
    AlreadyExists,
    Box,
    ChangeMark,
    CheckpointRow,
    Conflict,
    EvaluationStepRow,
    HyperValue,
    InvalidInput,
    NewRun,
    NotFound,
    PointChunk,
    ProjectSummary,
    RunRecord,
    SeriesChunks,
    SeriesData,
    SpecimenRecord,
    Store,
    StoreClosed,
    StoreError,
    StoreOverloaded,
    StoreUnavailable,
    Webhook,
    WriteResult,
    WriterLost,
)
from evalstream_server.store.downsample import downsample_minmax
from evalstream_server.store.postgres import PostgresStore
from evalstream_server.store.sqlite import SQLiteStore, schema
from evalstream_server.store.sqlite.schema import SCHEMA_VERSION

__all__ = [
    "MAX_SERIES_NAME",
    "SCHEMA_VERSION",
    "SPLITS",
    "STATUSES",
    "TASKS",
    "AlreadyExists",
    "Box",
    "ChangeMark",
    "CheckpointRow",
    "Conflict",
    "EvaluationStepRow",
    "HyperValue",
    "InvalidInput",
    "NewRun",
    "NotFound",
    "PointChunk",
    "PostgresStore",
    "ProjectSummary",
    "RunRecord",
    "SQLiteStore",
    "SeriesChunks",
    "SeriesData",
    "SpecimenRecord",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreOverloaded",
    "StoreUnavailable",
    "Webhook",
    "WriterLost",
    "WriteResult",
    "downsample_minmax",
    "schema",
]
