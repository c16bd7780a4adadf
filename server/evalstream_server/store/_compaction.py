"""Tiered compaction of a series' trailing small chunks (the policy, not the SQL).

As in a log-structured merge tree: small chunks merge into bigger ones a level at
a time, so that a point is rewritten about three times on its way into a chunk of
``_SMALL_CHUNK`` points, and a series of n points stays at about
n / ``_SMALL_CHUNK`` + 3 * ``_COMPACT_AFTER`` chunks.
"""

from __future__ import annotations

from collections.abc import Sequence

_SMALL_CHUNK = 4096
_COMPACT_AFTER = 32
# Tail levels: chunks of under 32 points, under 32 * 32, under _SMALL_CHUNK. A tail
# holds at most _COMPACT_AFTER - 1 chunks of each level, plus the one being added.
_MAX_TAIL = 3 * _COMPACT_AFTER


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
