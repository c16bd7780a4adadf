"""The chunk codec: loss points as packed little-endian arrays, validated, merged, packed.

A chunk is (min step, max step, n, steps, values, wall times): sorted unique int64
steps, float64 values and optional float64 wall times as blobs. Evenly spaced
steps are stored as an EMPTY steps blob and rebuilt from (min step, max step, n).
A series is the merge of its chunks in write order, the latest chunk winning for
a step. Nothing here knows the database: any backend storing these blobs shares it.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from evalstream_server.store._checks import _INT64_MAX, _check_split
from evalstream_server.store._types import MAX_SERIES_NAME, InvalidInput, PointChunk, WriteResult

_I8 = np.dtype("<i8")
_F8 = np.dtype("<f8")


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


def _validate_chunk(chunk: PointChunk) -> _ValidChunk:
    """Checks a chunk and packs a private copy of it (in the caller's thread, not the writer's).

    Raises:
        InvalidInput: a malformed chunk (``.field`` says which part).
    """
    if not isinstance(chunk, PointChunk):
        raise InvalidInput(f"expected a PointChunk, got {type(chunk).__name__}", field="chunk")
    if not isinstance(chunk.run_id, str) or not chunk.run_id:
        raise InvalidInput(
            f"run id must be a non-empty string, got {chunk.run_id!r}", field="run_id"
        )
    _check_split(chunk.split)
    if not isinstance(chunk.series, str) or not 1 <= len(chunk.series) <= MAX_SERIES_NAME:
        raise InvalidInput(
            f"series name must have 1 to {MAX_SERIES_NAME} characters, got {chunk.series!r:.160}",
            field="series",
        )
    steps = np.asarray(chunk.steps)
    values = np.asarray(chunk.values)
    if steps.ndim != 1:
        raise InvalidInput(f"steps must be one-dimensional, got shape {steps.shape}", field="steps")
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


def _overlay(
    steps: np.ndarray,
    values: np.ndarray,
    walls: np.ndarray | None,
    old_steps: np.ndarray,
    old_values: np.ndarray,
) -> tuple[WriteResult, tuple[np.ndarray, np.ndarray, np.ndarray | None] | None]:
    """A chunk applied as if point by point over the stored points of its step range.

    ``old_steps``/``old_values`` are the merged stored points (sorted unique steps)
    of at least the chunk's step range. Returns the chunk's WriteResult and the
    points to store (sorted unique steps, the last value of each step where it
    differs from the stored one), or None when nothing changes.

    Each point compares with what precedes it: the stored value for the first of
    its step, the previous point of the chunk for the others (a stable sort by
    step keeps chunk order among equal steps).

    >>> result, out = _overlay(np.array([1, 2, 2]), np.array([0.5, 1.0, 2.0]), None,
    ...                        np.array([1]), np.array([0.5]))
    >>> result, out[0].tolist(), out[1].tolist()
    (WriteResult(stored=2, duplicates=1, changed=1), [2], [2.0])
    """
    n = len(steps)
    order = np.argsort(steps, kind="stable")
    s, v = steps[order], values[order]
    first = np.ones(n, dtype=bool)
    first[1:] = s[1:] != s[:-1]
    last = np.ones(n, dtype=bool)
    last[:-1] = first[1:]
    unique = s[first]
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
    result = WriteResult(n - duplicates, duplicates, changed)
    final_values = v[last]
    write = ~found | ~_same_values(final_values, stored_at)
    if not write.any():
        return result, None
    pick = order[last][write]
    return result, (unique[write], final_values[write], None if walls is None else walls[pick])
