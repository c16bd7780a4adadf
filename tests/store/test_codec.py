"""The chunk codec (store/_codec.py): decode, merge and pack, and the one-point fast path."""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest
from evalstream_server.store import InvalidInput, PointChunk
from evalstream_server.store._codec import (
    _concat_points,
    _decode_chunk,
    _merge,
    _packed,
    _validate_chunk,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def row(cid: int, steps: list[int], values: list[float]) -> tuple:
    """A stored row (``_CHUNK_COLUMNS``) of sorted unique steps, packed as a writer would."""
    lo, hi, n, blob, vals, walls = _packed(np.array(steps), np.array(values), None)
    return (cid, lo, hi, n, blob, vals, walls)


def test_merge_latest_chunk_wins_a_step() -> None:
    steps, values, walls = _merge(
        [_decode_chunk(row(1, [0, 1, 2], [1.0, 1.0, 1.0])), _decode_chunk(row(2, [1], [5.0]))]
    )
    assert steps.tolist() == [0, 1, 2] and values.tolist() == [1.0, 5.0, 1.0] and walls is None


def test_packed_row_decodes_to_its_points() -> None:
    for steps in ([3, 4, 5], [0, 500, 1000], [0, 1, 7]):
        chunk = _decode_chunk(row(1, steps, [0.5] * len(steps)))
        assert chunk.steps.tolist() == steps and chunk.values.tolist() == [0.5] * len(steps)


def test_validate_chunk_marks_evenly_spaced_steps_implicit() -> None:
    valid = _validate_chunk(PointChunk("r_1", "train", "loss", np.arange(0, 30, 10), np.ones(3)))
    assert valid.n == 3 and valid.increasing and valid.implicit
    with pytest.raises(InvalidInput) as bad:
        _validate_chunk(PointChunk("r_1", "train", "loss", np.array([-1]), np.ones(1)))
    assert bad.value.field == "steps"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 60), min_size=1, max_size=40),
    st.booleans(),
    st.sampled_from(["none", "all", "some"]),
)
def test_one_point_rows_concatenate_as_merge_would(
    steps: list[int], implicit: bool, walls: str
) -> None:
    """The compaction's no-numpy path (_concat_points) gives the row _merge would, or defers."""
    rows = [
        (
            cid,
            step,
            step,
            1,
            b"" if implicit else struct.pack("<q", step),
            struct.pack("<d", step / 4),
            None
            if walls == "none" or (walls == "some" and cid % 2)
            else struct.pack("<d", step + 0.5),
        )
        for cid, step in enumerate(steps, start=1)
    ]
    fast = _concat_points(rows)
    general = _packed(*_merge([_decode_chunk(r) for r in rows]))
    increasing = all(b > a for a, b in itertools.pairwise(steps))
    if increasing and (walls != "some" or len(steps) == 1):
        assert fast == general
    else:
        assert fast is None
