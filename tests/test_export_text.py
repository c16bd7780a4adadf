"""The export's CSV and JSON Lines rows read back bit for bit with Python's csv and json.

The vectorised formatter (api/_export_text.py) is checked against the reference
readers on random bit patterns of doubles (NaN payloads, infinities, -0.0,
subnormals), wall times of today (written as fixed-width fields), steps up to
2**63 - 1 and series names that need quoting.
"""

from __future__ import annotations

import csv
import io
import json
import math
import struct

import numpy as np
import pytest
from evalstream_server.api import _export_text
from evalstream_server.api._export_text import csv_rows, jsonl_rows
from evalstream_server.api.export import plan_windows
from hypothesis import given, settings
from hypothesis import strategies as st


def _bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _same(read: float, want: float) -> bool:
    """Bit for bit, except that every NaN reads back as the one NaN."""
    return math.isnan(want) and math.isnan(read) or _bits(read) == _bits(want)


doubles = st.one_of(
    st.integers(0, 2**64 - 1).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0]),
    st.sampled_from(
        [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -5e-324, 1e16, 12.0, 0.1]
        + list(_export_text._CANDIDATES[:3])  # the sentinels themselves, as data
    ),
)
# Wall times of 2004-2038 (doubles in [2**30, 2**31)), the edges and the last ulp
# before a whole second included: the CSV writes them as fixed-width fields.
epochs = st.floats(2.0**30, 2.0**31, exclude_max=True) | st.sampled_from(
    [2.0**30, math.nextafter(2.0**31, 0.0), math.nextafter(1733318401.0, 0.0), 1733318400.5]
)
names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20
) | st.sampled_from(["a,b", 'say "hi"', "two\nlines", "cr\rlf", "1e300", "-1e-300"])


@st.composite
def blocks(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(1, 40))
    big = draw(st.booleans())
    top = 2**63 - 1 if big else 10**6
    steps = sorted(draw(st.sets(st.integers(0, top), min_size=n, max_size=n)))
    values = draw(st.lists(doubles, min_size=n, max_size=n))
    walls = draw(
        st.none()
        | st.lists(doubles, min_size=n, max_size=n)
        | st.lists(epochs, min_size=n, max_size=n)  # formatted in place, fixed width
    )
    return steps, values, walls


@settings(max_examples=300, deadline=None)
@given(block=blocks(), name=names, split=st.sampled_from(["train", "validation", "test"]))
def test_csv_rows_read_back_bit_for_bit(block, name, split) -> None:
    steps, values, walls = block
    text = csv_rows(
        split,
        name,
        np.array(steps, dtype=np.int64),
        np.array(values, dtype=np.float64),
        None if walls is None else np.array(walls, dtype=np.float64),
    )
    assert text.endswith(b"\n")
    rows = list(csv.reader(io.StringIO(text.decode("utf-8"), newline="")))
    assert len(rows) == len(steps)
    for i, row in enumerate(rows):
        assert row[:3] == [split, name, str(steps[i])]
        assert _same(float(row[4]), values[i])
        wall = math.nan if walls is None else walls[i]
        if math.isnan(wall):
            assert row[3] == ""
        else:
            assert _same(float(row[3]), wall)


@settings(max_examples=300, deadline=None)
@given(block=blocks(), name=names)
def test_jsonl_rows_read_back_bit_for_bit(block, name) -> None:
    steps, values, walls = block
    text = jsonl_rows(
        "train",
        name,
        np.array(steps, dtype=np.int64),
        np.array(values, dtype=np.float64),
        None if walls is None else np.array(walls, dtype=np.float64),
    )
    lines = text.decode("utf-8").split("\n")
    assert lines[-1] == ""
    assert len(lines) - 1 == len(steps)
    for i, line in enumerate(lines[:-1]):
        row = json.loads(line)
        assert list(row) == ["split", "series", "step", "wall_time", "value"]
        assert (row["split"], row["series"], row["step"]) == ("train", name, steps[i])
        value = row["value"]
        assert _same(float(value), values[i])
        assert isinstance(value, str) == (not math.isfinite(values[i]))
        wall = math.nan if walls is None else walls[i]
        if math.isnan(wall):
            assert row["wall_time"] is None
        else:
            assert _same(float(row["wall_time"]), wall)


def test_csv_rows_hand_worked() -> None:
    text = csv_rows(
        "train",
        'a "b",c',
        np.array([7, 10, 123]),
        np.array([0.5, -np.inf, 1e-7]),
        np.array([np.nan, 1.5, np.inf]),
    )
    assert text == (
        b'train,"a ""b"",c",7,,0.5\ntrain,"a ""b"",c",10,1.5,-inf\ntrain,"a ""b"",c",123,inf,1e-7\n'
    )


def test_csv_rows_when_every_sentinel_is_taken(monkeypatch) -> None:
    """A block holding the sentinel candidates still renders: it picks free ones."""
    taken = list(_export_text._CANDIDATES[:3])
    values = np.array([*taken, np.nan, np.inf, -np.inf])
    text = csv_rows("train", "x", np.arange(6), values, None)
    read = [float(r[4]) for r in csv.reader(io.StringIO(text.decode()))]
    assert [_bits(v) for v in read[:3]] == [_bits(v) for v in taken]
    assert math.isnan(read[3]) and read[4:] == [math.inf, -math.inf]
    monkeypatch.setattr(_export_text, "_CANDIDATES", tuple(taken))
    with pytest.raises(ValueError, match="no sentinel"):
        csv_rows("train", "x", np.arange(6), values, None)


@settings(max_examples=200, deadline=None)
@given(
    spans=st.lists(
        st.tuples(st.integers(0, 1000), st.integers(0, 50), st.integers(1, 300)),
        min_size=1,
        max_size=30,
    ),
    target=st.integers(1, 400),
    lo=st.integers(0, 200),
)
def test_plan_windows_cover_the_range_once(spans, target, lo) -> None:
    hi = lo + 2000
    chunks = np.array(sorted((a, a + w, n) for a, w, n in spans), dtype=np.int64)
    windows = plan_windows(chunks, lo, hi, target)
    assert windows[0][0] == lo and windows[-1][1] == hi
    for (a, b), (c, _) in zip(windows, windows[1:], strict=False):
        assert a <= b and c == b + 1
    # A heavy chunk (>= target / 16 points) lies within one window.
    for mn, mx, n in chunks.tolist():
        if n >= max(1, target // 16):
            inside = [w for w in windows if w[0] <= max(mn, lo) and min(mx, hi) <= w[1]]
            assert inside or mx < lo
