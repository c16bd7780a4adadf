"""The embedded run store: one SQLite file in the data directory.

Durability (what an ack promises)
    The database runs in WAL mode with ``synchronous=FULL`` by default: every
    COMMIT appends the transaction to the write-ahead log and fsyncs the log
    before returning. ``write_points`` (and the future of ``submit_points``)
    resolves only after the COMMIT of the transaction holding the chunk, so an
    acked chunk survives a process crash *and* a power loss (as far as the disk
    honours its flush). ``synchronous="NORMAL"`` is accepted for throw-away
    deployments; it keeps crash safety but an OS crash or power loss may lose
    the last acked transactions (SQLite then fsyncs only at checkpoints).

Group commit
    Every write (points, runs, statuses, checkpoints, specimens) goes through a
    bounded queue to ONE writer with its own connection: a thread, or a process
    of its own (``writer="process"``, what the server runs: see `_writer`, which
    also says what crosses and how). The writer takes
    everything queued (up to ``_MAX_BATCH`` operations), runs it in one
    transaction (each operation in a SAVEPOINT, so one bad operation fails alone),
    commits once (one fsync) and then resolves all the futures. Under load an
    fsync is thus shared by many chunks of many streams. A full queue is refused
    at once with StoreOverloaded (``submit_points``) or after a short wait (the
    other writes). Readers borrow a connection from a bounded pool (``readers``
    connections, opened on demand): in WAL mode they read a consistent snapshot
    beside the writer and never take its lock, and ``busy_timeout`` covers the
    rare moments (recovery, another process) where SQLite would otherwise answer
    "database is locked". The pool, not the handler threads, bounds how many
    connections exist, and with them the page caches (``_READ_CACHE_KB`` each):
    with a connection per handler thread, memory grew with every thread the
    handler pool (up to 256) ever started.

    A batch first runs without per-operation savepoints (each SAVEPOINT and
    RELEASE is a statement, and every statement hands the GIL away and has to
    win it back, which is what a busy server makes slow). Should any operation
    fail, the whole transaction is rolled back, the writer's caches dropped, and
    the batch run again with a SAVEPOINT per operation, so that the failure stays
    the failing operation's own, as before. In that optimistic run, the appends of
    the fast path (one row each) are also gathered and inserted by ONE multi-row
    INSERT (``_flush``) before anything that could read them and before COMMIT:
    the writer, which has the GIL only a fraction of the time on a busy server,
    then asks for it once per batch rather than once per chunk. The transaction
    itself only begins with the batch's first statement (`_Batch`): a batch of
    such appends alone is that one INSERT, committed by itself, with no BEGIN
    or COMMIT to wait for the GIL around; the next chunk id is kept from batch
    to batch rather than read each time.

Checkpoints
    SQLite's automatic checkpoint would run inside the COMMIT of whichever batch
    crosses the threshold, copying tens of MB into the database and fsyncing it
    while every caller of that batch waits. It is off (``wal_autocheckpoint=0``);
    a checkpointer thread with its own connection runs PASSIVE checkpoints
    (which never block the writer or the readers) every
    ``_CHECKPOINT_INTERVAL_S`` after a commit. The log can only restart from its
    beginning when a write transaction starts with every frame copied back; a
    writer that never pauses may not give the checkpointer that moment, so once
    the log holds more than ``_WAL_RESET_FRAMES`` frames the writer finishes the
    checkpoint itself, between two batches. Checkpoints do not change what an
    ack promises: the COMMIT's fsync of the log does.

Points
    Stored in chunks of packed little-endian arrays per (run, split, series), see
    ``schema.py``. A series is the merge of its chunks in write order; the latest
    chunk wins for a step. A chunk whose steps are evenly spaced (consecutive, the
    usual loss curve, or a constant stride such as an evaluation every 500 steps)
    is stored with an EMPTY steps blob, rebuilt from (min_step, max_step, n) when
    read: the disk then takes 8 bytes a point instead of 16. Writes are idempotent
    per (run, split, series, step), with ONE policy for a different value at a
    stored step: last write wins.

    - Fast path (the common case): the chunk's steps are strictly increasing and
      all greater than the series' largest stored step (kept in memory): the
      chunk is appended as is, with no read and no per-point Python work.
    - Otherwise the chunk is merged (numpy ``argsort``/``searchsorted``) against
      the stored points of its step range to count duplicates and changes, and
      only the new or changed points are appended as a *correction chunk*.
      Stored chunks are never rewritten in place, so a resend costs one read.
    - Runs of small chunks (e.g. one point per write) are compacted by the writer,
      in tiers (`_compaction_start`): once a series ends with ``_COMPACT_AFTER``
      chunks of fewer than 32 points, they are merged into one; once it ends
      with ``_COMPACT_AFTER`` of those (or smaller), they merge into one of about
      1,024 points, and so on up to ``_SMALL_CHUNK`` points (always a suffix of
      the write order, so "latest wins" is unchanged). A point is rewritten
      about three times, and a series of n points stays at about
      n / ``_SMALL_CHUNK`` + 3 * ``_COMPACT_AFTER`` rows.

    Values are stored bit for bit (NaN payloads and ±inf included); for
    idempotency any NaN equals any NaN, and otherwise values compare by bits
    (so 0.0 and -0.0 differ). A duplicate changes nothing (its wall time
    included); a changed point takes the new value and the new wall time (NaN if
    the new chunk has none).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import math
import secrets
import sqlite3
import struct
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar

import numpy as np

from evalstream_server.store import schema
from evalstream_server.store._types import (
    MAX_SERIES_NAME,
    SPLITS,
    STATUSES,
    TASKS,
    AlreadyExists,
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
    StoreClosed,
    StoreError,
    StoreOverloaded,
    WriteResult,
)
from evalstream_server.store._writer import _START_TIMEOUT_S, WriterLink

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")

SYNCHRONOUS_LEVELS = ("EXTRA", "FULL", "NORMAL")
# Large pages: point chunks are blobs of tens to hundreds of kB, and fewer, larger
# pages cut the per-page overhead of both the WAL and the overflow chains. Only
# applies to a new database (SQLite fixes the page size at creation in WAL mode).
_PAGE_SIZE = 65536
# The checkpointer thread's period (see "Checkpoints" above), and the log size
# (frames of _PAGE_SIZE: 4096 is 256 MB) past which the writer completes the
# checkpoint itself so that the log restarts.
_CHECKPOINT_INTERVAL_S = 0.25
_WAL_RESET_FRAMES = 4096
_JOURNAL_SIZE_LIMIT = 256 * 1024 * 1024
_BUSY_TIMEOUT_MS = 30_000
# Read connections: how many by default, and each one's page cache (KiB). The
# writer's cache is _WRITE_CACHE_KB. Memory for caches is thus bounded by
# readers * _READ_CACHE_KB + _WRITE_CACHE_KB whatever the number of threads.
_READERS = 8
_READ_CACHE_KB = 8 * 1024
_WRITE_CACHE_KB = 16 * 1024
# What the writer remembers per series and per run is a cache of the database,
# bounded so that a server creating runs for months keeps a flat memory: the
# least recently written series' state is dropped (and read back when written
# again), and the known-runs set and data versions start over past their caps.
_MAX_SERIES_STATES = 4096
_MAX_KNOWN_RUNS = 65536
_MAX_VERSIONS = 65536
_MAX_BATCH = 256
# Rows per multi-row INSERT of deferred appends: 8 parameters a row, well below
# SQLite's 32766 parameters per statement.
_FLUSH_ROWS = 512
_SMALL_CHUNK = 4096
_COMPACT_AFTER = 32
_CONTROL_WAIT_S = 10.0
# Tail levels: chunks of under 32 points, under 32 * 32, under _SMALL_CHUNK. A tail
# holds at most _COMPACT_AFTER - 1 chunks of each level, plus the one being added.
_MAX_TAIL = 3 * _COMPACT_AFTER
# "child" is the writer process's own store (`_writer`): no writer thread, its
# batches run by the process's loop.
_WRITERS = ("thread", "process", "child")
# Rows a write replaces by key (`SQLiteStore._w_upsert`): checkpoint metrics by
# (run, split, step, metric), specimens by (run, split, step, specimen id).
_UPSERTS = {
    "checkpoint_metrics": (
        "INSERT INTO checkpoint_metrics (run_id, split, step, metric, value, signature) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, split, step, metric) "
        "DO UPDATE SET value = excluded.value, signature = excluded.signature"
    ),
    "specimens": (
        "INSERT INTO specimens (run_id, split, step, specimen_id, body) "
        "VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id, split, step, specimen_id) DO UPDATE SET body = excluded.body"
    ),
}


def _level(n: int) -> int:
    """A small chunk's compaction level: 0 below 32 points, 1 below 1,024, else 2."""
    return 0 if n < _COMPACT_AFTER else 1 if n < _COMPACT_AFTER * _COMPACT_AFTER else 2


def _compaction_start(tail: Sequence[tuple[int, int]]) -> int | None:
    """Where the suffix of ``tail`` to merge begins, or None when there is none yet.

    Tiered, as in a log-structured merge: once ``_COMPACT_AFTER`` trailing chunks
    are of the last chunk's level or below, they merge into one chunk a level up.
    A point is thus rewritten about once per level (three times) on its way to a
    chunk of ``_SMALL_CHUNK`` points or more, rather than each time its growing
    chunk is merged again.

    >>> _compaction_start([(1, 500)] + [(i, 1) for i in range(2, 33)])  # 31 small ones
    >>> _compaction_start([(1, 500)] + [(i, 1) for i in range(2, 34)])
    1
    >>> _compaction_start([(i, 32) for i in range(31)] + [(31, 1)])  # level 0 after level 1
    """
    if len(tail) < _COMPACT_AFTER:
        return None
    top = _level(tail[-1][1])
    if _level(tail[-_COMPACT_AFTER][1]) > top:
        return None  # the trailing run is shorter (the common case, found at once)
    start = len(tail)
    while start and _level(tail[start - 1][1]) <= top:
        start -= 1
    return start if len(tail) - start >= _COMPACT_AFTER else None


_INT64_MAX = 2**63 - 1

_I8 = np.dtype("<i8")
_F8 = np.dtype("<f8")


# --------------------------------------------------------------------------- helpers


def _new_run_id() -> str:
    return "r_" + secrets.token_hex(8)


def _check_split(split: object, *, field: str = "split", allow_empty: bool = False) -> str:
    if allow_empty and split == "":
        return ""
    if not isinstance(split, str) or split not in SPLITS:
        raise InvalidInput(f"unknown split {split!r}; expected one of {list(SPLITS)}", field=field)
    return split


def _check_step(step: object, *, field: str = "step") -> int:
    if isinstance(step, bool) or not isinstance(step, int | np.integer):
        raise InvalidInput(f"step must be an integer, got {step!r}", field=field)
    value = int(step)
    if not 0 <= value <= _INT64_MAX:
        raise InvalidInput(f"step {value} is not in [0, 2**63)", field=field)
    return value


def _check_page_size(page_size: object) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise InvalidInput(f"page size must be >= 1, got {page_size!r}", field="page_size")
    return page_size


def _check_hypers(values: Mapping[str, HyperValue], *, field: str) -> dict[str, HyperValue]:
    if not isinstance(values, Mapping):
        raise InvalidInput(f"{field} must be a mapping, got {type(values).__name__}", field=field)
    out: dict[str, HyperValue] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"{field} key {key!r} must be a non-empty string", field=field)
        if isinstance(value, bool | str | float):
            out[key] = value
        elif isinstance(value, int):
            if not -(2**63) <= value <= _INT64_MAX:
                raise InvalidInput(f"{field}[{key!r}] = {value} does not fit in int64", field=field)
            out[key] = value
        else:
            raise InvalidInput(
                f"{field}[{key!r}] has type {type(value).__name__}; "
                "expected bool, int, float or str",
                field=field,
            )
    return out


def _hyper_key(value: HyperValue) -> tuple[str, float | int | None, str | None]:
    """(kind, num, text) as stored in run_hyperparameters: numbers compare numerically."""
    if isinstance(value, bool):
        return "bool", int(value), None
    if isinstance(value, int | float):
        # NaN is stored (and compared) as NULL: a NaN filter matches nothing.
        return "num", None if isinstance(value, float) and math.isnan(value) else value, None
    return "str", None, value


def _encode_token(kind: str, *values: object) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_token(token: str, kind: str, types: tuple[type, ...]) -> list[Any]:
    bad = InvalidInput(
        f"page token {token[:40]!r} is malformed or not from this listing", field="page_token"
    )
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise bad from exc
    if not isinstance(decoded, list) or len(decoded) != len(types) + 1 or decoded[0] != kind:
        raise bad
    values = decoded[1:]
    for value, typ in zip(values, types, strict=True):
        if isinstance(value, bool) or not isinstance(value, typ):
            raise bad
    return values


def _lastrowid(cursor: sqlite3.Cursor) -> int:
    if cursor.lastrowid is None:  # never after an INSERT; keeps the type an int
        raise StoreError("SQLite returned no row id after an INSERT")
    return int(cursor.lastrowid)


def _same_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: equal bit patterns, or both NaN (any payload)."""
    return (a.view(np.int64) == b.view(np.int64)) | (np.isnan(a) & np.isnan(b))


def _is_progression(steps: np.ndarray) -> bool:
    """Whether strictly increasing int64 steps are evenly spaced (one or two points always are).

    Such steps are determined by (first, last, count), and are stored with an empty
    steps blob. Constant time for the usual case: strictly increasing integers that
    span ``n - 1`` are consecutive. Otherwise one pass, and only when the span is a
    multiple of ``n - 1``.

    >>> _is_progression(np.array([7, 8, 9])), _is_progression(np.array([0, 500, 1000]))
    (True, True)
    >>> _is_progression(np.array([0, 1, 4])), _is_progression(np.array([0, 1, 3]))
    (False, False)
    """
    n = len(steps)
    if n <= 2:
        return True
    span = int(steps[-1]) - int(steps[0])
    if span == n - 1:
        return True
    if span % (n - 1):
        return False
    return bool((np.diff(steps) == span // (n - 1)).all())


def _steps_blob(steps: np.ndarray) -> bytes:
    """The stored steps blob of strictly increasing steps: empty when evenly spaced."""
    return b"" if _is_progression(steps) else steps.astype(_I8, copy=False).tobytes()


def _implicit_steps(lo: int, hi: int, n: int) -> np.ndarray:
    """The steps of a chunk stored with an empty steps blob: n evenly spaced from lo to hi.

    >>> _implicit_steps(5, 8, 4).tolist(), _implicit_steps(0, 1000, 3).tolist()
    ([5, 6, 7, 8], [0, 500, 1000])
    """
    if n == 1:
        return np.array([lo], dtype=np.int64)
    # lo + stride * i never exceeds hi < 2**63: no overflow (np.arange(lo, hi + 1) could).
    return lo + (hi - lo) // (n - 1) * np.arange(n, dtype=np.int64)


# The columns _decode_chunk takes, in its order.
_CHUNK_COLUMNS = "id, min_step, max_step, n, steps, vals, wall_times"


@dataclass(frozen=True, slots=True)
class _Chunk:
    """One stored chunk, decoded: sorted unique steps."""

    id: int
    steps: np.ndarray
    values: np.ndarray
    wall_times: np.ndarray | None


def _decode_chunk(row: tuple[int, int, int, int, bytes, bytes, bytes | None]) -> _Chunk:
    """A row of ``_CHUNK_COLUMNS``, decoded; an empty steps blob means evenly spaced steps."""
    cid, lo, hi, n, steps, vals, walls = row
    return _Chunk(
        cid,
        _implicit_steps(lo, hi, n) if n and not steps else np.frombuffer(steps, dtype=_I8),
        np.frombuffer(vals, dtype=_F8),
        None if walls is None else np.frombuffer(walls, dtype=_F8),
    )


def _merge(chunks: Sequence[_Chunk]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Merges chunks given in write order: sorted unique steps, the latest chunk winning.

    Chunks that follow each other (each one's steps above every earlier one's, the
    common case) are simply concatenated; otherwise a stable sort by step keeps the
    write order among equal steps and the last of each run of equal steps wins.
    """
    has_wall = any(c.wall_times is not None for c in chunks)
    if not chunks:
        empty_f = np.empty(0, dtype=np.float64)
        return np.empty(0, dtype=np.int64), empty_f, None
    steps = np.concatenate([c.steps for c in chunks]).astype(np.int64, copy=False)
    values = np.concatenate([c.values for c in chunks]).astype(np.float64, copy=False)
    walls: np.ndarray | None = None
    if has_wall:
        walls = np.concatenate(
            [
                c.wall_times if c.wall_times is not None else np.full(len(c.steps), np.nan)
                for c in chunks
            ]
        ).astype(np.float64, copy=False)
    nonempty = [c for c in chunks if len(c.steps)]
    ordered = all(
        int(nonempty[i].steps[0]) > int(nonempty[i - 1].steps[-1]) for i in range(1, len(nonempty))
    )
    # Each chunk is sorted, so consecutive chunks in step order mean the whole is.
    if ordered:
        return steps, values, walls
    order = np.argsort(steps, kind="stable")
    s = steps[order]
    last = np.ones(len(s), dtype=bool)
    last[:-1] = s[1:] != s[:-1]
    keep = order[last]
    return steps[keep], values[keep], None if walls is None else walls[keep]


def _packed(
    steps: np.ndarray, values: np.ndarray, walls: np.ndarray | None
) -> tuple[int, int, int, bytes, bytes, bytes | None]:
    """Merged points (sorted unique steps) as a row: (min step, max step, n, blobs).

    >>> _packed(np.array([3, 5]), np.array([0.5, 0.25]), None)[:4]
    (3, 5, 2, b'')
    """
    return (
        int(steps[0]),
        int(steps[-1]),
        len(steps),
        _steps_blob(steps),
        values.astype(_F8).tobytes(),
        None if walls is None else walls.astype(_F8).tobytes(),
    )


def _concat_points(
    rows: Sequence[tuple[Any, ...]],
) -> tuple[int, int, int, bytes, bytes, bytes | None] | None:
    """One-point rows (``_CHUNK_COLUMNS``, in write order) at increasing steps, merged
    without numpy: (min step, max step, n, steps blob, values blob, wall times blob).

    None when the rows are not all of one point, steps go back, or only some have
    wall times (`_merge` and `_packed` then do it). The common compaction (one point a write)
    thus costs no array per row.

    >>> one = lambda cid, step, v: (cid, step, step, 1, b"", struct.pack("<d", v), None)
    >>> lo, hi, n, steps, vals, walls = _concat_points([one(1, 10, 0.5), one(2, 12, 0.25)])
    >>> lo, hi, n, steps, struct.unpack("<2d", vals), walls
    (10, 12, 2, b'', (0.5, 0.25), None)
    >>> _concat_points([one(1, 10, 0.5), one(2, 11, 0.5), one(3, 13, 0.5)])[3] == struct.pack(
    ...     "<3q", 10, 11, 13
    ... )
    True
    >>> _concat_points([one(1, 10, 0.5), one(2, 10, 0.25)]) is None  # a rewrite: _merge
    True
    """
    if not rows or any(r[3] != 1 for r in rows):
        return None
    with_walls = sum(r[6] is not None for r in rows)
    if with_walls not in (0, len(rows)):
        return None
    steps = [r[1] for r in rows]
    gaps = {b - a for a, b in itertools.pairwise(steps)}
    if gaps and min(gaps) <= 0:
        return None
    even = len(gaps) <= 1
    return (
        steps[0],
        steps[-1],
        len(steps),
        b"" if even else struct.pack(f"<{len(steps)}q", *steps),
        b"".join(r[5] for r in rows),
        b"".join(r[6] for r in rows) if with_walls else None,
    )


def _row_to_run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        id=row[0],
        project=row[1],
        name=row[2],
        model=row[3],
        task=row[4],
        status=row[5],
        hyperparameters=json.loads(row[6]),
        verdict_config=json.loads(row[7]),
        created_at=row[8],
        updated_at=row[9],
    )


_RUN_COLUMNS = (
    "id, project, name, model, task, status, hyperparameters, verdict_config, "
    "created_at, updated_at"
)


def _specimen_to_json(rec: SpecimenRecord) -> str:
    return json.dumps(
        {
            "prediction_text": rec.prediction_text,
            "reference_texts": list(rec.reference_texts),
            "predicted_boxes": [list(b) for b in rec.predicted_boxes],
            "ground_truth_boxes": [list(b) for b in rec.ground_truth_boxes],
            "scores": dict(rec.scores),
            "flags": list(rec.flags),
        },
        separators=(",", ":"),
    )


def _specimen_from_json(specimen_id: str, body: str) -> SpecimenRecord:
    d = json.loads(body)
    return SpecimenRecord(
        specimen_id=specimen_id,
        prediction_text=d["prediction_text"],
        reference_texts=tuple(d["reference_texts"]),
        predicted_boxes=tuple(
            (float(b[0]), float(b[1]), float(b[2]), float(b[3]), str(b[4]), float(b[5]))
            for b in d["predicted_boxes"]
        ),
        ground_truth_boxes=tuple(
            (float(b[0]), float(b[1]), float(b[2]), float(b[3]), str(b[4]), float(b[5]))
            for b in d["ground_truth_boxes"]
        ),
        scores={str(k): float(v) for k, v in d["scores"].items()},
        flags=tuple(d["flags"]),
    )


def _check_specimen(rec: object, index: int) -> SpecimenRecord:
    field = f"specimens[{index}]"
    if not isinstance(rec, SpecimenRecord):
        raise InvalidInput(f"{field} is a {type(rec).__name__}, not a SpecimenRecord", field=field)
    if not isinstance(rec.specimen_id, str) or not rec.specimen_id:
        raise InvalidInput(
            f"{field}.specimen_id must be a non-empty string", field=f"{field}.specimen_id"
        )
    for name in ("predicted_boxes", "ground_truth_boxes"):
        for j, box in enumerate(getattr(rec, name)):
            if len(box) != 6:
                raise InvalidInput(
                    f"{field}.{name}[{j}] has {len(box)} fields; expected "
                    "(x1, y1, x2, y2, label, confidence)",
                    field=f"{field}.{name}",
                )
    return rec


# --------------------------------------------------------------------------- writer state


class _ValidChunk(NamedTuple):
    """A validated chunk, packed in the caller's thread (a private copy of its arrays).

    A tuple: the write's arguments as they cross to a writer process (a
    dataclass would pickle through Python code, per chunk, under the loop's GIL).
    """

    run_id: str
    split: str
    series: str
    steps: bytes
    values: bytes
    wall_times: bytes | None
    n: int
    increasing: bool  # strictly increasing steps
    implicit: bool  # increasing and evenly spaced: stored with an empty steps blob


class _SeriesState:
    """What the writer keeps in memory per series (writer thread only)."""

    __slots__ = ("id", "max_step", "tail")

    def __init__(self, sid: int, max_step: int, tail: list[tuple[int, int]]) -> None:
        self.id = sid
        self.max_step = max_step  # -1 while empty
        self.tail = tail  # (chunk id, points) of the trailing small chunks, in write order


class _Conn(Protocol):
    """What the writer's operations use of a connection (`sqlite3.Connection` or `_Batch`)."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor: ...

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor: ...


class _Batch:
    """The writer's connection during one batch: BEGIN IMMEDIATE before its first statement.

    A batch of fast-path appends alone (the common case under load) runs no
    statement before its one multi-row INSERT, which the writer then runs by
    itself in autocommit mode: a statement outside a transaction is its own
    transaction, as durable on return as a COMMIT. One statement, so one GIL
    hand-over, instead of BEGIN, INSERT and COMMIT.
    """

    __slots__ = ("begun", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.begun = False

    def begin(self) -> None:
        if not self.begun:
            self.conn.execute("BEGIN IMMEDIATE")
            self.begun = True

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        self.begin()
        return self.conn.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        self.begin()
        return self.conn.executemany(sql, parameters)


class _Op(Generic[T]):
    """One queued write: the writer method ``name`` runs with ``args`` inside the batch transaction.

    By name, not as a closure, so that a write can be handed to a writer process
    (`_writer`). The method (``SQLiteStore._w_*``) takes the connection, then
    ``args``, and returns (result, bumps): ``bumps`` says whether the run's data
    changed. ``future`` is None in the writer process (the parent holds it).
    """

    __slots__ = ("args", "future", "id", "name", "points", "run_id")

    def __init__(
        self,
        name: str,
        args: tuple[Any, ...],
        future: Future[T] | None,
        run_id: str,
        *,
        points: bool = False,
        id: int = 0,  # noqa: A002 - the writer process's name for it
    ) -> None:
        self.name = name
        self.args = args
        self.future = future
        self.run_id = run_id
        self.points = points  # a point chunk write: may defer its INSERT (see _append)
        self.id = id


# What one batch came to: the operations done (with result and bumps), those that
# failed, and the seconds from the batch's first statement to its commit.
_Done = list[tuple[_Op[Any], Any, bool]]
_Failed = list[tuple[_Op[Any], BaseException]]


# --------------------------------------------------------------------------- the store


class SQLiteStore:
    """The embedded ``Store``: a SQLite file, WAL, one group-committing writer.

    Args:
        path: The database file (created with its parent directory if missing).
        max_queue: Capacity of the write queue; beyond it writes are refused with
            StoreOverloaded.
        synchronous: SQLite's synchronous level: "FULL" (default: an ack survives
            power loss), "EXTRA", or "NORMAL" (survives a process crash only).
        readers: The most read connections open at once; a read finding all of
            them busy waits for one (up to ``_BUSY_TIMEOUT_MS``, then
            StoreOverloaded).
        writer: Where the writer runs: "thread" (default), or "process", a
            process of its own (see `_writer`: what the server uses, so that its
            event loop and the writer do not share a GIL).

    >>> import tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     store = SQLiteStore(Path(d) / "evalstream.db")
    ...     run = store.create_run(NewRun(project="p", name="baseline"))
    ...     chunk = PointChunk(run.id, "train", "loss", np.arange(3), np.array([3.0, 2.0, 1.5]))
    ...     first, again = store.write_points(chunk), store.write_points(chunk)
    ...     series = store.read_series(run.id)
    ...     store.close()
    >>> first, again
    (WriteResult(stored=3, duplicates=0, changed=0), WriteResult(stored=0, duplicates=3, changed=0))
    >>> series[0].name, series[0].values.tolist()
    ('loss', [3.0, 2.0, 1.5])
    """

    def __init__(
        self,
        path: Path,
        *,
        max_queue: int = 1024,
        synchronous: str = "FULL",
        on_commit: Callable[[float], None] | None = None,
        readers: int = _READERS,
        writer: str = "thread",
    ) -> None:
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise InvalidInput(f"max_queue must be >= 1, got {max_queue!r}", field="max_queue")
        if isinstance(readers, bool) or not isinstance(readers, int) or readers < 1:
            raise InvalidInput(f"readers must be >= 1, got {readers!r}", field="readers")
        level = synchronous.upper() if isinstance(synchronous, str) else ""
        if level not in SYNCHRONOUS_LEVELS:
            raise InvalidInput(
                f"synchronous {synchronous!r} is not one of {list(SYNCHRONOUS_LEVELS)}",
                field="synchronous",
            )
        if writer not in _WRITERS:
            raise InvalidInput(f"writer {writer!r} is not one of {list(_WRITERS)}", field="writer")
        self.path = Path(path)
        self.synchronous = level
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._wconn = self._connect(writer=True)
            schema.migrate(self._wconn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store at {str(self.path)!r}: {exc}") from exc

        self._on_commit = on_commit  # seconds from BEGIN to COMMIT of each transaction
        self._lock = threading.Lock()  # guards _closed, the write queue and the versions
        self._closed = False
        # The write queue: a deque under _lock, and the writer's wake-up, signalled only
        # when it waits for work (a queue.Queue takes two more locks per write).
        self._pending: deque[_Op[Any]] = deque()
        self._max_queue = max_queue
        self._writer_waits = False
        self._work = threading.Condition(self._lock)
        # Data versions: a run's is the value of one store-wide counter at its last
        # change; runs not in the dict (never changed, or dropped past the cap)
        # answer the floor, the counter's value when the dict was last emptied.
        self._versions: dict[str, int] = {}
        self._version_counter = 0
        self._version_floor = 0
        # The read pool: idle connections (guarded by _lock), every one opened (for
        # close), and a slot per connection that may exist. A thread already inside
        # a read (a nested _read) reuses its connection rather than taking a slot.
        self._idle: list[sqlite3.Connection] = []
        self._readers: list[sqlite3.Connection] = []
        self._reader_slots = threading.BoundedSemaphore(readers)
        self._local = threading.local()
        # Writer-thread state.
        self._series: OrderedDict[tuple[str, str, str], _SeriesState] = OrderedDict()
        self._known_runs: set[str] = set()
        # Shared by the writer and the checkpointer; plain ints, each written by one thread.
        self._commits = 0  # committed batches (writer)
        # Fast-path appends not inserted yet (None: insert at once), and the id the next
        # one gets: above every id in point_chunks (max(id) + 1 but for gaps), kept
        # from batch to batch: every insert into the table sets it, a compaction's
        # DELETE is followed by its INSERT, and a rollback forgets it. None: read
        # max(id) first. Writer thread only.
        self._deferred: list[tuple[Any, ...]] | None = None
        self._next_chunk_id: int | None = None
        self._wal_frames = 0  # frames in the log at the last checkpoint (both)
        self._stop_checkpoints = threading.Event()
        self.writer = writer
        self._link: WriterLink | None = None
        if writer == "process":
            # The writer process opens its own connection; this one only migrated.
            self._wconn.close()
            self._link = WriterLink(self, max_queue)
            try:
                self._submit("_w_ping", (), "").result(timeout=_START_TIMEOUT_S)
            except BaseException:
                self._closed = True
                self._link.close()
                raise
            return
        try:
            ckpt_conn = self._connect(writer=False, checkpointer=True)
        except sqlite3.Error as exc:
            self._wconn.close()
            raise StoreError(f"cannot open the store at {str(self.path)!r}: {exc}") from exc
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop,
            args=(ckpt_conn,),
            name="evalstream-store-checkpointer",
            daemon=True,
        )
        self._checkpointer.start()
        if writer == "thread":
            self._writer = threading.Thread(
                target=self._write_loop, name="evalstream-store-writer", daemon=True
            )
            self._writer.start()

    @classmethod
    def open(
        cls, data_dir: Path, *, max_queue: int = 1024, synchronous: str = "FULL"
    ) -> SQLiteStore:
        """Opens (creating it) ``<data_dir>/evalstream.db``.

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     store = SQLiteStore.open(Path(d))
        ...     store.path.name
        ...     store.close()
        'evalstream.db'
        """
        return cls(Path(data_dir) / "evalstream.db", max_queue=max_queue, synchronous=synchronous)

    # ------------------------------------------------------------------ connections

    def _connect(self, *, writer: bool, checkpointer: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path),
            isolation_level=None,
            check_same_thread=False,
            timeout=_BUSY_TIMEOUT_MS / 1000,
        )
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if writer:
            # page_size must precede the switch to WAL; it is a no-op on an existing database.
            conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot switch {str(self.path)!r} to WAL mode (got {mode!r})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer thread's job
            conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
        elif checkpointer:
            return conn  # reads only the log and writes only pages: needs no cache
        else:
            conn.execute("PRAGMA query_only = ON")
        conn.execute(f"PRAGMA cache_size = -{_WRITE_CACHE_KB if writer else _READ_CACHE_KB}")
        return conn

    def _borrow(self) -> sqlite3.Connection:
        """An idle read connection, or a new one while the pool has room; else waits."""
        if not self._reader_slots.acquire(timeout=_BUSY_TIMEOUT_MS / 1000):
            raise StoreOverloaded(
                f"all {len(self._readers)} read connections stayed busy for "
                f"{_BUSY_TIMEOUT_MS / 1000:.0f} s; retry later"
            )
        try:
            with self._lock:
                if self._closed:
                    raise StoreClosed("the store is closed")
                if self._idle:
                    return self._idle.pop()
            try:
                conn = self._connect(writer=False)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open a read connection: {exc}") from exc
            with self._lock:
                if self._closed:
                    conn.close()
                    raise StoreClosed("the store is closed")
                self._readers.append(conn)
            return conn
        except BaseException:
            self._reader_slots.release()
            raise

    def _give_back(self, conn: sqlite3.Connection) -> None:
        """Returns a connection to the pool; one left inside a transaction is dropped."""
        keep = True
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            keep = False
        with self._lock:
            if keep and not self._closed:
                self._idle.append(conn)
            elif conn in self._readers:
                self._readers.remove(conn)
                if not self._closed:
                    conn.close()
        self._reader_slots.release()

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``fn`` in one read transaction (one consistent snapshot)."""
        if self._closed:
            raise StoreClosed("the store is closed")
        nested: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if nested is not None:  # inside another read of this thread: same snapshot
            return fn(nested)
        conn = self._borrow()
        self._local.conn = conn
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.ProgrammingError as exc:
            if self._closed:
                raise StoreClosed("the store is closed") from exc
            raise StoreError(f"read failed: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc
        finally:
            self._local.conn = None
            self._give_back(conn)

    # ------------------------------------------------------------------ the writer

    def _enqueue(self, op: _Op[Any], *, wait: float) -> None:
        """Queues ``op``; StoreOverloaded after ``wait`` s of a full queue."""
        put = self._put if self._link is None else self._link.try_submit
        deadline = time.monotonic() + wait
        while not put(op):
            if time.monotonic() >= deadline:
                raise StoreOverloaded(
                    f"the store's write queue is full ({self._max_queue} writes waiting); "
                    "retry later"
                )
            time.sleep(0.002)

    def _put(self, op: _Op[Any]) -> bool:
        """Queues ``op`` for the writer thread; False when the queue is full."""
        with self._lock:
            if self._closed:
                raise StoreClosed("the store is closed")
            if len(self._pending) >= self._max_queue:
                return False
            self._pending.append(op)
            if self._writer_waits:
                self._writer_waits = False
                self._work.notify()
            return True

    def _submit(self, name: str, args: tuple[Any, ...], run_id: str) -> Future[Any]:
        future: Future[Any] = Future()
        self._enqueue(_Op(name, args, future, run_id), wait=_CONTROL_WAIT_S)
        return future

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            with self._lock:
                while not self._pending and not self._closed:
                    self._writer_waits = True
                    self._work.wait()
                pending = self._pending
                batch = [pending.popleft() for _ in range(min(len(pending), _MAX_BATCH))]
                # close() refuses new writes before waking the writer, so every write
                # accepted before is taken before the writer stops.
                stop = self._closed and not pending
            ops = [op for op in batch if op.future.set_running_or_notify_cancel()]  # type: ignore[union-attr]
            if ops:
                self._settle(*self._commit(ops))
                self._between_batches()
        self._close_writer()

    def _close_writer(self) -> None:
        """The writer's last step: stops the checkpointer and closes its connection."""
        self._stop_checkpoints.set()
        self._checkpointer.join()
        self._wconn.close()

    def _between_batches(self) -> None:
        if self._wal_frames > _WAL_RESET_FRAMES:
            self._finish_checkpoint()

    def _w_ping(self, conn: _Conn) -> tuple[None, bool]:
        """Nothing: a writer process answering it has opened the store."""
        return None, False

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Lets ``loop`` (the caller's running loop) talk to the writer process, if there is one.

        Writes submitted on the loop are then sent and settled on it, without a
        thread hand-over (see `_writer`). Call on the loop's thread.
        """
        if self._link is not None:
            self._link.attach_loop(loop)

    def _checkpoint_loop(self, conn: sqlite3.Connection) -> None:
        """The checkpointer thread: a PASSIVE checkpoint after new commits, at most every period."""
        seen = 0
        try:
            while not self._stop_checkpoints.wait(_CHECKPOINT_INTERVAL_S):
                commits = self._commits
                if commits == seen:
                    continue
                seen = commits
                try:
                    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    continue  # e.g. another process checkpointing: next period
                self._wal_frames = int(frames)
        finally:
            conn.close()

    def _finish_checkpoint(self) -> None:
        """In the writer, between batches: copies the rest of the log so that it can restart."""
        try:
            busy, _, _ = self._wconn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:
            return
        if not busy:
            self._wal_frames = 0

    @staticmethod
    def _failure(exc: Exception) -> StoreError:
        """What an operation's future gets for an exception raised by its ``fn``."""
        if isinstance(exc, StoreError):
            return exc
        wrapped = StoreError(f"write failed: {exc}")
        wrapped.__cause__ = exc
        return wrapped

    def _rollback(self) -> None:
        """Rolls the open transaction back and drops what the writer cached from it."""
        try:
            if self._wconn.in_transaction:
                self._wconn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        # The in-memory state may be ahead of the rolled-back rows.
        self._series.clear()
        self._known_runs.clear()
        self._deferred = None
        self._next_chunk_id = None

    def _flush(self, conn: _Conn) -> None:
        """Inserts the deferred fast-path appends (in id order), in as few statements as fit."""
        rows = self._deferred
        if not rows:
            return
        self._deferred = []
        for lo in range(0, len(rows), _FLUSH_ROWS):
            part = rows[lo : lo + _FLUSH_ROWS]
            conn.execute(
                "INSERT INTO point_chunks "
                "(id, series_id, min_step, max_step, n, steps, vals, wall_times) VALUES "
                + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(part)),
                [value for row in part for value in row],
            )

    def _commit(self, ops: list[_Op[Any]]) -> tuple[_Done, _Failed, float | None]:
        """Runs ``ops`` in one transaction: what was done, what failed, and the commit's seconds.

        The seconds are None when nothing was committed (the batch failed as a whole).
        """
        conn = self._wconn
        done: _Done = []
        failed: _Failed = []
        began = time.perf_counter()
        tx = _Batch(conn)
        try:
            # Optimistic: no savepoints, appends deferred (see "Group commit" above).
            first_failure: Exception | None = None
            self._deferred = []
            for op in ops:
                try:
                    if not op.points:
                        self._flush(tx)
                    result, bumps = getattr(self, op.name)(tx, *op.args)
                except Exception as exc:  # noqa: BLE001 - rerun below, isolated
                    first_failure = exc
                    break
                done.append((op, result, bumps))
            if first_failure is None:
                try:
                    # Nothing run yet and one statement to run: it commits by itself.
                    alone = not tx.begun and len(self._deferred) <= _FLUSH_ROWS
                    self._flush(conn if alone else tx)
                except Exception as exc:  # noqa: BLE001 - rerun below, isolated
                    first_failure = exc
            self._deferred = None
            if first_failure is not None:
                self._rollback()
                done = []
                if len(ops) == 1:
                    # Alone in its batch: the rollback was its savepoint; nothing to commit.
                    return [], [(ops[0], self._failure(first_failure))], None
                conn.execute("BEGIN IMMEDIATE")
                done, failed = self._run_isolated(conn, ops)
                conn.execute("COMMIT")
            elif tx.begun:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            error = StoreError(f"commit failed, nothing of this batch was stored: {exc}")
            return [], [(op, error) for op in ops], None
        self._commits += 1
        return done, failed, time.perf_counter() - began

    def _settle(self, done: _Done, failed: _Failed, seconds: float | None) -> None:
        """After a batch is durable (or has failed): bumps versions, then wakes the callers."""
        if seconds is not None and self._on_commit is not None:
            self._on_commit(seconds)
        with self._lock:
            for op, _, bumps in done:
                if bumps:
                    if len(self._versions) >= _MAX_VERSIONS and op.run_id not in self._versions:
                        # Every dropped run's version is <= the counter: answering the
                        # counter for them from now on never repeats an older answer
                        # for newer data.
                        self._version_floor = self._version_counter
                        self._versions.clear()
                    self._version_counter += 1
                    self._versions[op.run_id] = self._version_counter
        for op, result, _ in done:
            op.future.set_result(result)  # type: ignore[union-attr]
        for op, err in failed:
            if not op.future.done():  # type: ignore[union-attr]
                op.future.set_exception(err)  # type: ignore[union-attr]

    def _run_isolated(self, conn: _Conn, ops: list[_Op[Any]]) -> tuple[_Done, _Failed]:
        """Runs each operation in its own SAVEPOINT: a failing one is undone alone."""
        done: _Done = []
        failed: _Failed = []
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                result, bumps = getattr(self, op.name)(conn, *op.args)
            except Exception as exc:  # noqa: BLE001 - handed to the op's future
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                if not isinstance(exc, StoreError):
                    # The in-memory series state may be ahead of the rolled-back rows.
                    self._series.clear()
                failed.append((op, self._failure(exc)))
            else:
                conn.execute("RELEASE op")
                done.append((op, result, bumps))
        return done, failed

    def _require_run(self, conn: _Conn, run_id: str) -> None:
        if run_id in self._known_runs:
            return
        self._check_run_exists(conn, run_id)
        self._remember_run(run_id)

    def _remember_run(self, run_id: str) -> None:
        if len(self._known_runs) >= _MAX_KNOWN_RUNS:
            self._known_runs.clear()  # only costs a look-up per run written again
        self._known_runs.add(run_id)

    # ------------------------------------------------------------------ runs

    def create_run(self, new: NewRun) -> RunRecord:
        """Creates a run (status "running", id "r_" + 16 hex digits); durable on return.

        Raises:
            AlreadyExists: the project already has a run of that name.
            InvalidInput: an empty project or name, an unknown task, a bad hyperparameter.
        """
        if not isinstance(new, NewRun):
            raise InvalidInput(f"expected a NewRun, got {type(new).__name__}", field="run")
        for name in ("project", "name"):
            value = getattr(new, name)
            if not isinstance(value, str) or not value:
                raise InvalidInput(f"{name} must be a non-empty string, got {value!r}", field=name)
        if not isinstance(new.model, str):
            raise InvalidInput(f"model must be a string, got {new.model!r}", field="model")
        if new.task not in TASKS:
            raise InvalidInput(
                f"unknown task {new.task!r}; expected one of {list(TASKS)}", field="task"
            )
        hypers = _check_hypers(new.hyperparameters, field="hyperparameters")
        verdict = _check_hypers(new.verdict_config, field="verdict_config")
        return self._submit("_w_create_run", (new, hypers, verdict), "").result()

    def _w_create_run(
        self,
        conn: _Conn,
        new: NewRun,
        hypers: dict[str, HyperValue],
        verdict: dict[str, HyperValue],
    ) -> tuple[RunRecord, bool]:
        taken = conn.execute(
            "SELECT 1 FROM runs WHERE project = ? AND name = ?", (new.project, new.name)
        ).fetchone()
        if taken is not None:
            raise AlreadyExists(f"run named {new.name!r} already exists in project {new.project!r}")
        now = time.time()
        run = RunRecord(
            id=_new_run_id(),
            project=new.project,
            name=new.name,
            model=new.model,
            task=new.task,
            status="running",
            hyperparameters=hypers,
            verdict_config=verdict,
            created_at=now,
            updated_at=now,
        )
        conn.execute(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.id,
                run.project,
                run.name,
                run.model,
                run.task,
                run.status,
                json.dumps(hypers),
                json.dumps(verdict),
                now,
                now,
            ),
        )
        conn.executemany(
            "INSERT INTO run_hyperparameters (run_id, key, kind, num, text) VALUES (?, ?, ?, ?, ?)",
            [(run.id, k, *_hyper_key(v)) for k, v in hypers.items()],
        )
        self._remember_run(run.id)
        return run, True

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id.

        Raises:
            NotFound: no such run.
        """

        def fn(conn: sqlite3.Connection) -> RunRecord:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"run {run_id!r} not found")
            return _row_to_run(row)

        return self._read(fn)

    def find_run(self, project: str, name: str) -> RunRecord:
        """The run named ``name`` in ``project``.

        Raises:
            NotFound: no such run.
        """

        def fn(conn: sqlite3.Connection) -> RunRecord:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE project = ? AND name = ?", (project, name)
            ).fetchone()
            if row is None:
                raise NotFound(f"run named {name!r} not found in project {project!r}")
            return _row_to_run(row)

        return self._read(fn)

    def list_runs(
        self,
        *,
        project: str,
        statuses: Sequence[str] = (),
        model: str = "",
        hyperparameters: Mapping[str, HyperValue] = {},
        page_size: int = 100,
        page_token: str = "",
    ) -> tuple[list[RunRecord], str]:
        """One page of runs, ordered by (created_at, id), and the next page's token.

        ``project`` "" lists every project. Hyperparameter filters are equalities:
        numbers compare numerically (``1 == 1.0``), booleans only equal booleans
        (``True != 1``), strings exactly; a NaN filter matches nothing. The token is
        "" on the last page; a page token stays valid while runs are added (runs
        created later land on later pages).

        Raises:
            InvalidInput: unknown status, bad filter, page size < 1 or a bad page token.
        """
        for status in statuses:
            if status not in STATUSES:
                raise InvalidInput(
                    f"unknown status {status!r}; expected one of {list(STATUSES)}", field="statuses"
                )
        filters = _check_hypers(hyperparameters, field="hyperparameters")
        size = _check_page_size(page_size)
        where: list[str] = []
        args: list[Any] = []
        if project:
            where.append("project = ?")
            args.append(project)
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args.extend(statuses)
        if model:
            where.append("model = ?")
            args.append(model)
        for key, value in filters.items():
            kind, num, text = _hyper_key(value)
            column, operand = ("text", text) if kind == "str" else ("num", num)
            where.append(
                "EXISTS (SELECT 1 FROM run_hyperparameters h WHERE h.run_id = runs.id "
                f"AND h.key = ? AND h.kind = ? AND h.{column} = ?)"
            )
            args.extend((key, kind, operand))
        if page_token:
            created, last_id = _decode_token(page_token, "runs", (float, str))
            where.append("(created_at > ? OR (created_at = ? AND id > ?))")
            args.extend((created, created, last_id))
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, id LIMIT ?"
        args.append(size + 1)
        rows = self._read(lambda conn: conn.execute(sql, args).fetchall())
        runs = [_row_to_run(r) for r in rows[:size]]
        token = _encode_token("runs", runs[-1].created_at, runs[-1].id) if len(rows) > size else ""
        return runs, token

    def set_status(self, run_id: str, status: str) -> RunRecord:
        """Sets the run's status (any transition is allowed); durable on return.

        Raises:
            NotFound: no such run.
            InvalidInput: unknown status.
        """
        if status not in STATUSES:
            raise InvalidInput(
                f"unknown status {status!r}; expected one of {list(STATUSES)}", field="status"
            )
        return self._submit("_w_set_status", (run_id, status), run_id).result()

    def _w_set_status(self, conn: _Conn, run_id: str, status: str) -> tuple[RunRecord, bool]:
        cur = conn.execute(
            "UPDATE runs SET status = ?, updated_at = ? WHERE id = ?",
            (status, time.time(), run_id),
        )
        if cur.rowcount == 0:
            raise NotFound(f"run {run_id!r} not found")
        row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _row_to_run(row), True

    # ------------------------------------------------------------------ points

    @staticmethod
    def _validate_chunk(chunk: PointChunk) -> _ValidChunk:
        if not isinstance(chunk, PointChunk):
            raise InvalidInput(f"expected a PointChunk, got {type(chunk).__name__}", field="chunk")
        if not isinstance(chunk.run_id, str) or not chunk.run_id:
            raise InvalidInput(
                f"run id must be a non-empty string, got {chunk.run_id!r}", field="run_id"
            )
        _check_split(chunk.split)
        if not isinstance(chunk.series, str) or not 1 <= len(chunk.series) <= MAX_SERIES_NAME:
            raise InvalidInput(
                f"series name must have 1 to {MAX_SERIES_NAME} characters, "
                f"got {chunk.series!r:.160}",
                field="series",
            )
        steps = np.asarray(chunk.steps)
        values = np.asarray(chunk.values)
        if steps.ndim != 1:
            raise InvalidInput(
                f"steps must be one-dimensional, got shape {steps.shape}", field="steps"
            )
        if values.ndim != 1:
            raise InvalidInput(
                f"values must be one-dimensional, got shape {values.shape}", field="values"
            )
        n = len(steps)
        if len(values) != n:
            raise InvalidInput(f"{n} steps but {len(values)} values", field="values")
        if n and steps.dtype.kind not in "iu":
            raise InvalidInput(f"steps must be integers, got dtype {steps.dtype}", field="steps")
        if n and values.dtype.kind not in "fiu":
            raise InvalidInput(f"values must be numbers, got dtype {values.dtype}", field="values")
        if n and steps.dtype.kind == "u" and int(steps.max()) > _INT64_MAX:
            raise InvalidInput(f"step {int(steps.max())} does not fit in int64", field="steps")
        # tobytes() copies: later changes to the caller's arrays cannot reach the store.
        s = steps.astype(_I8, copy=False)
        # One point (a common chunk) needs no reduction, which costs microseconds.
        if n and int(s[0] if n == 1 else s.min()) < 0:
            bad = int(np.argmax(s < 0))
            raise InvalidInput(f"step {int(s[bad])} at index {bad} is negative", field="steps")
        walls: bytes | None = None
        if chunk.wall_times is not None:
            w = np.asarray(chunk.wall_times)
            if w.ndim != 1 or len(w) != n:
                raise InvalidInput(f"{n} steps but {w.size} wall times", field="wall_times")
            if n and w.dtype.kind not in "fiu":
                raise InvalidInput(
                    f"wall times must be numbers, got dtype {w.dtype}", field="wall_times"
                )
            walls = w.astype(_F8, copy=False).tobytes()
        increasing = n < 2 or bool((s[1:] > s[:-1]).all())
        return _ValidChunk(
            run_id=chunk.run_id,
            split=chunk.split,
            series=chunk.series,
            steps=s.tobytes(),
            values=values.astype(_F8, copy=False).tobytes(),
            wall_times=walls,
            n=n,
            increasing=increasing,
            implicit=increasing and _is_progression(s),
        )

    def submit_points(self, chunk: PointChunk) -> Future[WriteResult]:
        """Queues a chunk; the future resolves with its WriteResult once it is durable.

        Never raises: every failure arrives through the future (InvalidInput for a bad
        chunk, NotFound for an unknown run, StoreOverloaded when the queue is full,
        StoreClosed after close, StoreError when the commit failed), so that one bad
        chunk does not end a stream.
        """
        future: Future[WriteResult] = Future()
        try:
            valid = self._validate_chunk(chunk)
            self._enqueue(
                _Op("_w_write_chunk", tuple(valid), future, valid.run_id, points=True),
                wait=0,
            )
        except StoreError as exc:
            future.set_exception(exc)
        return future

    def write_points(self, chunk: PointChunk, *, timeout: float | None = None) -> WriteResult:
        """Writes a chunk and returns once it is durable (``submit_points(chunk).result(timeout)``).

        Raises:
            InvalidInput: a malformed chunk (``.field`` says which part).
            NotFound: unknown run.
            StoreOverloaded: the write queue is full.
            TimeoutError: not durable within ``timeout`` s (it may still become durable).
        """
        return self.submit_points(chunk).result(timeout)

    def _series_state(self, conn: _Conn, key: tuple[str, str, str]) -> _SeriesState:
        state = self._series.get(key)
        if state is not None:
            self._series.move_to_end(key)
            return state
        self._flush(conn)
        row = conn.execute(
            "SELECT id FROM series WHERE run_id = ? AND split = ? AND name = ?", key
        ).fetchone()
        if row is None:
            sid = _lastrowid(
                conn.execute("INSERT INTO series (run_id, split, name) VALUES (?, ?, ?)", key)
            )
            state = _SeriesState(sid, -1, [])
        else:
            sid = row[0]
            top = conn.execute(
                "SELECT max(max_step) FROM point_chunks WHERE series_id = ?", (sid,)
            ).fetchone()[0]
            recent = conn.execute(
                "SELECT id, n FROM point_chunks WHERE series_id = ? ORDER BY id DESC LIMIT ?",
                (sid, _MAX_TAIL),
            ).fetchall()
            tail: list[tuple[int, int]] = []
            for cid, n in recent:
                if n >= _SMALL_CHUNK:
                    break
                tail.append((cid, n))
            tail.reverse()
            state = _SeriesState(sid, -1 if top is None else int(top), tail)
        self._series[key] = state
        if len(self._series) > _MAX_SERIES_STATES:
            self._series.popitem(last=False)  # its rows are flushed (above): read back later
        return state

    def _append(
        self,
        conn: _Conn,
        state: _SeriesState,
        steps: bytes,
        values: bytes,
        walls: bytes | None,
        lo: int,
        hi: int,
        n: int,
    ) -> None:
        cid = self._insert_chunk(conn, (state.id, lo, hi, n, steps, values, walls))
        state.max_step = max(state.max_step, hi)
        if n >= _SMALL_CHUNK:
            state.tail = []
            return
        state.tail.append((cid, n))
        while (start := _compaction_start(state.tail)) is not None:
            self._compact_tail(conn, state, start)

    def _insert_chunk(self, conn: _Conn, row: tuple[Any, ...]) -> int:
        """Inserts a point_chunks row (series id, min and max step, n, blobs); its id.

        In a batch the row is deferred to `_flush` (its id given now); otherwise it
        is inserted at once.
        """
        if self._deferred is not None:
            cid = self._deferred_id(conn)
            self._deferred.append((cid, *row))
            return cid
        cid = _lastrowid(
            conn.execute(
                "INSERT INTO point_chunks "
                "(series_id, min_step, max_step, n, steps, vals, wall_times) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        )
        self._next_chunk_id = cid + 1  # SQLite gave it max + 1
        return cid

    def _deferred_id(self, conn: _Conn) -> int:
        """The id of a row deferred to `_flush`: the one SQLite would give (max + 1, in order).

        The writer holds the write lock, every other insert into point_chunks
        flushes first and sets the next id from its own, and nothing else writes
        the table (see ``_next_chunk_id``).
        """
        if self._next_chunk_id is None:
            top = conn.execute("SELECT max(id) FROM point_chunks").fetchone()[0]
            self._next_chunk_id = 1 if top is None else int(top) + 1
        cid = self._next_chunk_id
        self._next_chunk_id = cid + 1
        return cid

    def _compact_tail(self, conn: _Conn, state: _SeriesState, start: int) -> None:
        """Merges ``state.tail[start:]`` (a suffix of the series' write order) into one chunk.

        Tail chunks of this batch not inserted yet are merged from memory, and in a
        batch the merged chunk is deferred like an append: a compaction then costs
        a SELECT and a DELETE of the stored ones only (each statement hands the GIL
        away, see "Group commit").
        """
        ids = [cid for cid, _ in state.tail[start:]]
        pending: list[tuple[Any, ...]] = []
        if self._deferred:
            wanted = set(ids)
            pending = [row for row in self._deferred if row[0] in wanted]
            if pending:
                self._deferred = [row for row in self._deferred if row[0] not in wanted]
        merged_from_memory = {row[0] for row in pending}
        stored = [cid for cid in ids if cid not in merged_from_memory]
        rows: list[tuple[Any, ...]] = []
        if stored:
            marks = ", ".join("?" * len(stored))
            rows = conn.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM point_chunks WHERE id IN ({marks}) ORDER BY id",
                stored,
            ).fetchall()
            conn.execute(f"DELETE FROM point_chunks WHERE id IN ({marks})", stored)
        rows.extend((cid, *rest) for cid, _sid, *rest in pending)
        merged = _concat_points(rows) or _packed(*_merge([_decode_chunk(r) for r in rows]))
        n = merged[2]
        cid = self._insert_chunk(conn, (state.id, *merged))
        # A merged chunk grown big ends the tail: the small chunks before it are no
        # longer trailing (they stay as they are).
        state.tail = [*state.tail[:start], (cid, n)] if n < _SMALL_CHUNK else []

    def _w_write_chunk(self, conn: _Conn, *fields: Any) -> tuple[WriteResult, bool]:
        chunk = _ValidChunk(*fields)
        self._require_run(conn, chunk.run_id)
        state = self._series_state(conn, (chunk.run_id, chunk.split, chunk.series))
        n = chunk.n
        if n == 0:
            return WriteResult(0, 0, 0), False
        steps = np.frombuffer(chunk.steps, dtype=_I8)
        if chunk.increasing and int(steps[0]) > state.max_step:
            # Fast path: past everything stored, so every point is new.
            self._append(
                conn,
                state,
                b"" if chunk.implicit else chunk.steps,
                chunk.values,
                chunk.wall_times,
                int(steps[0]),
                int(steps[-1]),
                n,
            )
            return WriteResult(n, 0, 0), True
        values = np.frombuffer(chunk.values, dtype=_F8)
        walls = None if chunk.wall_times is None else np.frombuffer(chunk.wall_times, dtype=_F8)

        # Apply the chunk as if point by point: sort by step, keeping chunk order
        # among equal steps; each point compares with what precedes it (the stored
        # value for the first of its step, the previous point of the chunk otherwise).
        order = np.argsort(steps, kind="stable")
        s, v = steps[order], values[order]
        first = np.ones(n, dtype=bool)
        first[1:] = s[1:] != s[:-1]
        last = np.ones(n, dtype=bool)
        last[:-1] = first[1:]
        unique = s[first]
        lo, hi = int(unique[0]), int(unique[-1])
        self._flush(conn)  # the stored points it compares with may still be deferred
        rows = conn.execute(
            f"SELECT {_CHUNK_COLUMNS} FROM point_chunks "
            "WHERE series_id = ? AND max_step >= ? AND min_step <= ? ORDER BY id",
            (state.id, lo, hi),
        ).fetchall()
        old_steps, old_values, _ = _merge([_decode_chunk(r) for r in rows])
        pos = np.searchsorted(old_steps, unique)
        if len(old_steps):
            pos_c = np.minimum(pos, len(old_steps) - 1)
            found = (pos < len(old_steps)) & (old_steps[pos_c] == unique)
            stored_at = old_values[pos_c]
        else:
            found = np.zeros(len(unique), dtype=bool)
            stored_at = np.full(len(unique), np.nan)
        before = np.empty(n, dtype=np.float64)
        before[1:] = v[:-1]
        has_before = np.ones(n, dtype=bool)
        first_idx = np.flatnonzero(first)
        before[first_idx] = stored_at
        has_before[first_idx] = found
        same = has_before & _same_values(v, before)
        duplicates = int(same.sum())
        changed = int((has_before & ~same).sum())
        # What to store: the final value of each step where it differs from the stored one.
        final_values = v[last]
        write = ~found | ~_same_values(final_values, stored_at)
        if write.any():
            pick = order[last][write]
            out_steps = unique[write]
            self._append(
                conn,
                state,
                _steps_blob(out_steps),
                final_values[write].tobytes(),
                None if walls is None else walls[pick].tobytes(),
                int(out_steps[0]),
                int(out_steps[-1]),
                len(out_steps),
            )
        stored = n - duplicates
        return WriteResult(stored, duplicates, changed), bool(write.any())

    def read_series(
        self, run_id: str, *, splits: Sequence[str] = (), series: Sequence[str] = ()
    ) -> list[SeriesData]:
        """The run's series, each merged and sorted by step, one value per step.

        Ordered by split (train, validation, test), then name. Empty filters mean all.

        Raises:
            NotFound: no such run.
            InvalidInput: an unknown split.
        """
        for split in splits:
            _check_split(split, field="splits")
        return self._read(lambda conn: self._read_series(conn, run_id, splits, series, tail=0))

    def last_points(self, run_id: str, n: int = 1) -> list[SeriesData]:
        """The last ``n`` points (largest steps) of every series of the run.

        ``total_points`` is then the number returned (at most ``n``), not the length
        of the whole series.

        Raises:
            NotFound: no such run.
            InvalidInput: n < 1.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidInput(f"n must be >= 1, got {n!r}", field="n")
        return self._read(lambda conn: self._read_series(conn, run_id, (), (), tail=n))

    def _read_series(
        self,
        conn: sqlite3.Connection,
        run_id: str,
        splits: Sequence[str],
        names: Sequence[str],
        *,
        tail: int,
    ) -> list[SeriesData]:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise NotFound(f"run {run_id!r} not found")
        rows = conn.execute(
            "SELECT id, split, name FROM series WHERE run_id = ?", (run_id,)
        ).fetchall()
        wanted = [
            r for r in rows if (not splits or r[1] in splits) and (not names or r[2] in names)
        ]
        wanted.sort(key=lambda r: (SPLITS.index(r[1]), r[2]))
        out: list[SeriesData] = []
        for sid, split, name in wanted:
            if tail:
                steps, values, walls = self._tail(conn, sid, tail)
            else:
                chunks = conn.execute(
                    f"SELECT {_CHUNK_COLUMNS} FROM point_chunks WHERE series_id = ? ORDER BY id",
                    (sid,),
                ).fetchall()
                steps, values, walls = _merge([_decode_chunk(r) for r in chunks])
            out.append(SeriesData(split, name, steps, values, walls, len(steps)))
        return out

    @staticmethod
    def _tail(
        conn: sqlite3.Connection, sid: int, n: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The last n points of a series, reading only the chunks that can hold them.

        Taking chunks by decreasing max step until they hold n distinct steps gives a
        threshold T (the n-th largest of those steps): every point at or above T lives
        in a chunk whose max step is >= T, so merging just those chunks (in write
        order, for "latest wins") is exact.
        """
        metas = conn.execute(
            "SELECT id, max_step FROM point_chunks WHERE series_id = ? ORDER BY max_step DESC",
            (sid,),
        ).fetchall()
        loaded: dict[int, _Chunk] = {}

        def load(ids: list[int]) -> None:
            missing = [i for i in ids if i not in loaded]
            if missing:
                marks = ", ".join("?" * len(missing))
                for row in conn.execute(
                    f"SELECT {_CHUNK_COLUMNS} FROM point_chunks WHERE id IN ({marks})",
                    missing,
                ):
                    loaded[row[0]] = _decode_chunk(row)

        threshold = -1
        k = 1
        while k < 2 * len(metas):
            top = [m[0] for m in metas[:k]]
            load(top)
            distinct = np.unique(np.concatenate([loaded[i].steps for i in top]))
            if len(distinct) >= n:
                threshold = int(distinct[-n])
                break
            k *= 2
        ids = sorted(m[0] for m in metas if m[1] >= threshold)
        load(ids)
        steps, values, walls = _merge([loaded[i] for i in ids])
        keep = slice(max(0, len(steps) - n), None)
        return steps[keep], values[keep], None if walls is None else walls[keep]

    # ------------------------------------------------------------------ evaluations

    def log_checkpoint(
        self,
        run_id: str,
        split: str,
        step: int,
        metrics: Mapping[str, float],
        *,
        signatures: Mapping[str, str] = {},
    ) -> int:
        """Upserts metrics for (run, split, step); returns how many were stored. Durable on return.

        A metric logged again replaces its value and signature (last write wins).

        Raises:
            NotFound: no such run.
            InvalidInput: unknown split, negative step, a non-numeric metric, or a
                signature for a metric not in ``metrics``.
        """
        _check_split(split)
        step = _check_step(step)
        rows: list[tuple[Any, ...]] = []
        for name, value in metrics.items():
            if not isinstance(name, str) or not name:
                raise InvalidInput(
                    f"metric name {name!r} must be a non-empty string", field="metrics"
                )
            if isinstance(value, bool) or not isinstance(
                value, int | float | np.floating | np.integer
            ):
                raise InvalidInput(f"metric {name!r} = {value!r} is not a number", field="metrics")
            number = float(value)
            sig = signatures.get(name, "")
            if not isinstance(sig, str):
                raise InvalidInput(f"signature of {name!r} must be a string", field="signatures")
            # SQLite stores NaN as NULL; NULL reads back as NaN.
            rows.append((run_id, split, step, name, None if math.isnan(number) else number, sig))
        extra = set(signatures) - set(metrics)
        if extra:
            raise InvalidInput(
                f"signatures for metrics not logged: {sorted(extra)}", field="signatures"
            )

        return self._submit("_w_upsert", ("checkpoint_metrics", run_id, rows), run_id).result()

    def _w_upsert(
        self, conn: _Conn, table: str, run_id: str, rows: list[tuple[Any, ...]]
    ) -> tuple[int, bool]:
        """Upserts a run's ``rows`` into ``table`` (a key of `_UPSERTS`); returns how many."""
        self._require_run(conn, run_id)
        conn.executemany(_UPSERTS[table], rows)
        return len(rows), bool(rows)

    def checkpoints(self, run_id: str) -> list[CheckpointRow]:
        """The run's checkpoint metrics, one row per (split, step), sorted by split then step.

        Splits sort in SPLITS order (train, validation, test).

        Raises:
            NotFound: no such run.
        """

        def fn(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            self._check_run_exists(conn, run_id)
            return conn.execute(
                "SELECT split, step, metric, value, signature FROM checkpoint_metrics "
                "WHERE run_id = ?",
                (run_id,),
            ).fetchall()

        grouped: dict[tuple[str, int], tuple[dict[str, float], dict[str, str]]] = {}
        for split, step, metric, value, signature in self._read(fn):
            metrics, sigs = grouped.setdefault((split, step), ({}, {}))
            metrics[metric] = math.nan if value is None else value
            if signature:
                sigs[metric] = signature
        return [
            CheckpointRow(split, step, metrics, sigs)
            for (split, step), (metrics, sigs) in sorted(
                grouped.items(), key=lambda kv: (SPLITS.index(kv[0][0]), kv[0][1])
            )
        ]

    @staticmethod
    def _check_run_exists(conn: _Conn, run_id: str) -> None:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise NotFound(f"run {run_id!r} not found")

    def record_specimens(
        self, run_id: str, split: str, step: int, specimens: Sequence[SpecimenRecord]
    ) -> int:
        """Upserts specimens by id within (run, split, step); returns how many. Durable on return.

        A specimen recorded again replaces the stored record but keeps its place in
        the paging order (first insertion).

        Raises:
            NotFound: no such run.
            InvalidInput: unknown split, negative step, a record without an id or a bad box.
        """
        _check_split(split)
        step = _check_step(step)
        rows = [
            (run_id, split, step, rec.specimen_id, _specimen_to_json(_check_specimen(rec, i)))
            for i, rec in enumerate(specimens)
        ]

        return self._submit("_w_upsert", ("specimens", run_id, rows), run_id).result()

    def evaluation_steps(self, run_id: str, *, split: str = "") -> list[EvaluationStepRow]:
        """Steps with checkpoint metrics or specimens, sorted by split (SPLITS order) then step.

        Raises:
            NotFound: no such run.
            InvalidInput: an unknown split.
        """
        _check_split(split, allow_empty=True)
        cond = " AND split = ?" if split else ""
        args: tuple[Any, ...] = (run_id, split) if split else (run_id,)

        def fn(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            self._check_run_exists(conn, run_id)
            metrics = conn.execute(
                f"SELECT split, step, metric, value FROM checkpoint_metrics WHERE run_id = ?{cond}",
                args,
            ).fetchall()
            counts = conn.execute(
                f"SELECT split, step, count(*) FROM specimens WHERE run_id = ?{cond} "
                "GROUP BY split, step",
                args,
            ).fetchall()
            return metrics, counts

        metric_rows, count_rows = self._read(fn)
        steps: dict[tuple[str, int], tuple[int, dict[str, float]]] = {}
        for sp, st, metric, value in metric_rows:
            steps.setdefault((sp, st), (0, {}))[1][metric] = math.nan if value is None else value
        for sp, st, count in count_rows:
            steps[(sp, st)] = (count, steps.get((sp, st), (0, {}))[1])
        return [
            EvaluationStepRow(sp, st, count, metrics)
            for (sp, st), (count, metrics) in sorted(
                steps.items(), key=lambda kv: (SPLITS.index(kv[0][0]), kv[0][1])
            )
        ]

    def specimens(
        self, run_id: str, split: str, step: int, *, page_size: int = 100, page_token: str = ""
    ) -> tuple[list[SpecimenRecord], str]:
        """One page of an evaluation step's specimens (first-insertion order) and the next token.

        Raises:
            NotFound: no such run.
            InvalidInput: unknown split, page size < 1 or a bad page token.
        """
        _check_split(split)
        step = _check_step(step)
        size = _check_page_size(page_size)
        after = _decode_token(page_token, "specimens", (int,))[0] if page_token else 0

        def fn(conn: sqlite3.Connection) -> list[Any]:
            self._check_run_exists(conn, run_id)
            return conn.execute(
                "SELECT seq, specimen_id, body FROM specimens "
                "WHERE run_id = ? AND split = ? AND step = ? AND seq > ? ORDER BY seq LIMIT ?",
                (run_id, split, step, after, size + 1),
            ).fetchall()

        rows = self._read(fn)
        records = [_specimen_from_json(sid, body) for _, sid, body in rows[:size]]
        token = _encode_token("specimens", rows[size - 1][0]) if len(rows) > size else ""
        return records, token

    # ------------------------------------------------------------------ lifecycle

    def data_version(self, run_id: str) -> int:
        """A number that grows after every durable write that changed the run.

        In memory: 0 for every run when the store opens (and for an unknown run).
        Writes that change nothing (a resent chunk) do not move it. It only ever
        grows for a run, but not by one: it is a store-wide counter's value at the
        run's last change (past ``_MAX_VERSIONS`` runs, an unchanged run may move
        up once, which only costs a cache miss).
        """
        with self._lock:
            return self._versions.get(run_id, self._version_floor)

    def close(self) -> None:
        """Makes every accepted write durable, then closes; later calls raise StoreClosed.

        Closing twice is harmless.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True  # nothing can be enqueued any more
            self._work.notify()
        if self._link is not None:
            self._link.close()
        elif self.writer == "child":
            self._close_writer()
        else:
            self._writer.join()
        with self._lock:
            readers, self._readers, self._idle = self._readers, [], []
        for conn in readers:  # one still in a read fails it with StoreClosed
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def queue_depth(self) -> int:
        """Writes waiting for the writer (for metrics)."""
        return len(self._pending) if self._link is None else self._link.depth()

    def writer_restarts(self) -> int | None:
        """Writer processes started after the first (None with the writer thread; for metrics)."""
        return None if self._link is None else self._link.restarts

    @property
    def queue_capacity(self) -> int:
        """The most writes that may wait (`max_queue`)."""
        return self._max_queue

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
