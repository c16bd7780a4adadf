"""Points as CSV or JSON Lines bytes, vectorised: what ExportCurves sends as ``text``.

Python's float repr runs at about a million values a second, far from an export's
millions of points a second, so a block of points is formatted in a few passes of C:

1. ``orjson.dumps`` of the values (with the wall times: an (n, 2) array) gives
   ``[0.5,0.25]``: shortest round-trip floats, as ``repr`` would. It writes NaN and
   the infinities as ``null``, so those are first swapped for sentinel doubles absent
   from the block (negative, so that no other number's text ends with a sentinel's),
   whose text is then replaced by ``nan``, ``inf``, ``-inf`` (or an empty field).
2. ``bytes.replace`` turns each separator between points into the end of one row and
   the start of the next (``\\ntrain,loss,########,,``), with the step left as a
   placeholder of the right width: steps are split into runs of equal digit count.
3. numpy writes each step's digits (orjson's, exact for every int64) over its
   placeholder, through a view of the buffer as overlapping records of that width.

The result is checked against Python's csv and json modules, bit for bit, in
tests/test_export_text.py and tests/e2e/test_export.py.
"""

from __future__ import annotations

import numpy as np
import orjson

_OPT = orjson.OPT_SERIALIZE_NUMPY
# Candidates for the sentinels: negative, tiny, unlikely in a metric; a block holding
# one of them picks the next.
_CANDIDATES = tuple(-(1.0 + k / 997.0) * 1e-300 for k in range(16))
_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)
_PLACEHOLDER = ord("#")


def csv_field(name: str) -> str:
    """A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.

    >>> csv_field("loss"), csv_field("a,b"), csv_field('a"b')
    ('loss', '"a,b"', '"a""b"')
    """
    if any(c in name for c in ',"\r\n'):
        return '"' + name.replace('"', '""') + '"'
    return name


def csv_rows(
    split: str, name: str, steps: np.ndarray, values: np.ndarray, walls: np.ndarray | None
) -> bytes:
    """CSV lines ``split,series,step,wall_time,value`` of sorted steps (no header).

    A missing (NaN) wall time is an empty field; non-finite numbers are ``nan``,
    ``inf`` and ``-inf``.

    >>> csv_rows("train", "loss", np.array([9, 10]), np.array([0.5, np.nan]), None)
    b'train,loss,9,,0.5\\ntrain,loss,10,,nan\\n'
    >>> csv_rows("test", "a,b", np.array([3]), np.array([-np.inf]), np.array([12.5]))
    b'test,"a,b",3,12.5,-inf\\n'
    """
    head = f"{split},{csv_field(name)},".encode()
    if walls is None:
        return _rows(steps, values, None, b"\n", head, b",,", {}, _CSV_VALUE)
    epochs = _epoch_digits(walls)
    if epochs is not None:  # the usual wall times: a fixed-width field, like the steps
        mid = b"," + b"#" * _EPOCH_WIDTH + b","
        return _rows(steps, values, None, b"\n", head, mid, {}, _CSV_VALUE, epochs)
    return _rows(steps, values, walls, b"\n", head, b",", _CSV_WALL, _CSV_VALUE)


def jsonl_rows(
    split: str, name: str, steps: np.ndarray, values: np.ndarray, walls: np.ndarray | None
) -> bytes:
    """JSON Lines ``{"split", "series", "step", "wall_time", "value"}`` of sorted steps.

    A missing (NaN) wall time is ``null``; non-finite numbers are the strings
    ``"nan"``, ``"inf"`` and ``"-inf"`` (JSON has no such numbers).

    >>> jsonl_rows("train", "loss", np.array([7]), np.array([np.nan]), None)
    b'{"split":"train","series":"loss","step":7,"wall_time":null,"value":"nan"}\\n'
    """
    head = b'{"split":' + orjson.dumps(split) + b',"series":' + orjson.dumps(name) + b',"step":'
    if walls is None:
        return _rows(
            steps, values, None, b"}\n", head, b',"wall_time":null,"value":', {}, _JSON_VALUE
        )
    return _rows(steps, values, walls, b"}\n", head, b',"wall_time":', _JSON_WALL, _JSON_VALUE)


# What each non-finite number becomes: by kind ("nan", "inf", "-inf").
_CSV_VALUE = {"nan": b"nan", "inf": b"inf", "-inf": b"-inf"}
_CSV_WALL = {"nan": b"", "inf": b"inf", "-inf": b"-inf"}
_JSON_VALUE = {"nan": b'"nan"', "inf": b'"inf"', "-inf": b'"-inf"'}
_JSON_WALL = {"inf": b'"inf"', "-inf": b'"-inf"'}  # NaN: orjson's own null


def _rows(
    steps: np.ndarray,
    values: np.ndarray,
    walls: np.ndarray | None,
    end: bytes,
    head: bytes,
    mid: bytes,
    wall_marks: dict[str, bytes],
    value_marks: dict[str, bytes],
    epochs: np.ndarray | None = None,
) -> bytes:
    """Rows ``head + step + mid + [wall + ","] + value + end``, one run of digit counts at a time.

    In JSON the comma between wall time and value is ``,"value":``. ``epochs``
    (`_epoch_digits` of the wall times) are written over the placeholder that
    `mid` then holds right after the step's comma.
    """
    steps = np.asarray(steps, dtype=np.int64)
    n = len(steps)
    if n == 0:
        return b""
    bounds = [0, *np.searchsorted(steps, _POW10[1:]).tolist(), n]
    parts = []
    for digits in range(1, 20):
        lo, hi = bounds[digits - 1], bounds[digits]
        if hi > lo:
            w = None if walls is None else walls[lo:hi]
            marks = (wall_marks, value_marks)
            e = None if epochs is None else epochs[lo:hi]
            parts.append(_run(steps[lo:hi], values[lo:hi], w, digits, end, head, mid, *marks, e))
    return b"".join(parts)


def _run(
    steps: np.ndarray,
    values: np.ndarray,
    walls: np.ndarray | None,
    digits: int,
    end: bytes,
    head: bytes,
    mid: bytes,
    wall_marks: dict[str, bytes],
    value_marks: dict[str, bytes],
    epochs: np.ndarray | None = None,
) -> bytes:
    """`_rows` of steps that all have `digits` digits."""
    n = len(steps)
    sep = end + head + b"#" * digits + mid
    prefix = sep  # what comes before the first row's wall time or value
    if walls is None:
        raw = _dump_marked(np.ascontiguousarray(values, dtype=np.float64), value_marks, b",", b"]")
        body = raw[1:-1]
        delim = b","
    else:
        pair = np.empty((n, 2), dtype=np.float64)
        pair[:, 0] = walls
        pair[:, 1] = values
        raw = _dump_pairs(pair, wall_marks, value_marks)
        body = raw[2:-2]
        if end == b"}\n":  # JSON: the comma inside a row becomes ',"value":'
            body = body.replace(b"],[", b"\x00").replace(b",", b',"value":')
            delim = b"\x00"
        else:
            # "w0,v0],[w1,v1" less its "[" is "w0,v0],w1,v1": each "]" ends a row and
            # the "," after it is the next row's, so "]" alone becomes the separator
            # (bytes.replace of one byte is several times faster than of "],[", and
            # faster than bytes.translate).
            body = body.replace(b"[", b"")
            delim = b"]"
            sep = end + head + b"#" * digits
    # Where each separator lands: the k-th delimiter at body position p[k] becomes the
    # separator of row k + 1, starting at p[k] + len(prefix) + k * (len(sep) - len(delim)).
    at = _positions(body, delim)
    starts = np.empty(n, dtype=np.int64)
    starts[0] = 0
    starts[1:] = at + len(prefix) + np.arange(n - 1, dtype=np.int64) * (len(sep) - len(delim))
    buf = bytearray(prefix)
    buf += body.replace(delim, sep) if n > 1 else body
    buf += end
    # The buffer as overlapping `digits`-byte records, one starting at each byte: one
    # fancy assignment writes every step's digits at once.
    field = np.dtype((np.void, digits))
    records = np.ndarray((len(buf) - digits + 1,), dtype=field, buffer=buf, strides=(1,))
    records[starts + (len(end) + len(head))] = _digits(steps, digits).view(field).ravel()
    if epochs is not None:
        field = np.dtype((np.void, _EPOCH_WIDTH))
        records = np.ndarray((len(buf) - _EPOCH_WIDTH + 1,), dtype=field, buffer=buf, strides=(1,))
        records[starts + (len(end) + len(head) + digits + 1)] = epochs.view(field).ravel()
    return bytes(memoryview(buf)[len(end) :])


def _positions(body: bytes, delim: bytes) -> np.ndarray:
    """Start offsets of every `delim` in `body`: its first byte is in no number's text
    (for "],[", "]" only ends a row)."""
    return np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == delim[0])


def _digits(steps: np.ndarray, digits: int) -> np.ndarray:
    """ASCII digits of non-negative steps that all have `digits` digits, (n, digits) uint8.

    orjson writes int64 exactly and fast; with every step `digits` long, its
    ``[s0,s1,...]`` is a grid of `digits` + 1 columns, the last one the commas.

    >>> _digits(np.array([1234567890123, 9999999999999]), 13).tobytes()
    b'12345678901239999999999999'
    """
    text = orjson.dumps(np.ascontiguousarray(steps, dtype=np.int64), option=_OPT)
    grid = np.frombuffer(text, dtype=np.uint8, offset=1, count=len(text) - 2)
    # `text` minus its brackets has n * (digits + 1) - 1 bytes: the last row has no comma.
    n = len(steps)
    out = np.empty((n, digits), dtype=np.uint8)
    if n > 1:
        out[:-1] = grid[: (n - 1) * (digits + 1)].reshape(n - 1, digits + 1)[:, :digits]
    out[-1] = grid[(n - 1) * (digits + 1) :]
    return out


#: ``dddddddddd.ddddddd``: an epoch time in [2**30, 2**31) seconds (2004 to 2038).
_EPOCH_WIDTH = 18


def _epoch_digits(walls: np.ndarray) -> np.ndarray | None:
    """Wall times as (n, 18) ASCII ``dddddddddd.ddddddd``, or None unless all are in
    [2**30, 2**31) seconds (the years 2004 to 2038).

    There a double is an integer multiple of 2**-22 s (2.4e-7), so the integer
    seconds have ten digits and the fraction, rounded to seven decimals in int64
    arithmetic, is within 0.5e-7 of it: 17 significant digits, which read back to
    the same double (not always the shortest such text, but exact, and fixed in
    width, so written in place as the steps are).

    >>> _epoch_digits(np.array([1733318400.25, 2.0**30])).tobytes()
    b'1733318400.25000001073741824.0000000'
    >>> _epoch_digits(np.array([12.5])) is None
    True
    """
    walls = np.asarray(walls, dtype=np.float64)
    if not len(walls) or not bool(((walls >= 2.0**30) & (walls < 2.0**31)).all()):  # NaN fails
        return None
    ticks = (walls * 2.0**22).astype(np.int64)  # exact: the double's own integer
    fraction = ((ticks & (2**22 - 1)) * 10**7 + 2**21) >> 22  # at most 9,999,998: no carry
    # Seconds and seven decimals as one 17-digit integer (< 2**31 * 10**7 < 2**63).
    digits = _digits((ticks >> 22) * 10**7 + fraction, 17)
    out = np.empty((len(walls), _EPOCH_WIDTH), dtype=np.uint8)
    out[:, :10] = digits[:, :10]
    out[:, 10] = ord(".")
    out[:, 11:] = digits[:, 10:]
    return out


def _sentinels(arr: np.ndarray, kinds: list[str], avoid: set[float]) -> dict[str, float]:
    """A distinct candidate double for each kind, absent from `arr` (and from `avoid`)."""
    chosen: dict[str, float] = {}
    for c in _CANDIDATES:
        if len(chosen) == len(kinds):
            break
        if c in avoid or bool((arr == c).any()):
            continue
        chosen[kinds[len(chosen)]] = c
    if len(chosen) < len(kinds):  # 16 candidates all in one block: vanishingly unlikely
        raise ValueError("no sentinel value is free in this block")
    return chosen


def _swap(arr: np.ndarray, marks: dict[str, bytes], avoid: set[float]) -> dict[bytes, bytes]:
    """Replaces the non-finite entries of `arr` (in place) that `marks` renders by
    sentinels; returns {sentinel text: rendering}."""
    finite = np.isfinite(arr)
    if finite.all():
        return {}
    masks = {
        "nan": np.isnan(arr),
        "inf": arr == np.inf,
        "-inf": arr == -np.inf,
    }
    kinds: list[str] = [k for k in ("nan", "inf", "-inf") if k in marks and masks[k].any()]
    if not kinds:
        return {}
    picks = _sentinels(arr, kinds, avoid)
    out: dict[bytes, bytes] = {}
    for kind, value in picks.items():
        arr[masks[kind]] = value
        avoid.add(value)
        out[orjson.dumps(value)] = marks[kind]
    return out


def _dump_marked(values: np.ndarray, marks: dict[str, bytes], *after: bytes) -> bytes:
    """orjson's dump of 1-D values, non-finite ones rendered by `marks`."""
    if np.isfinite(values).all():
        return orjson.dumps(values, option=_OPT)
    values = values.copy()
    swaps = _swap(values, marks, set())
    raw = orjson.dumps(values, option=_OPT)
    for text, rendering in swaps.items():
        for a in after:  # a sentinel's text is never the tail of another number's
            raw = raw.replace(text + a, rendering + a)
    return raw


def _dump_pairs(
    pair: np.ndarray, wall_marks: dict[str, bytes], value_marks: dict[str, bytes]
) -> bytes:
    """orjson's dump of (n, 2) [wall, value] rows, non-finite ones rendered by the marks."""
    avoid: set[float] = set()
    wall_swaps = _swap(pair[:, 0], wall_marks, avoid) if wall_marks else {}
    value_swaps = _swap(pair[:, 1], value_marks, avoid)
    # _swap wrote into the column views: `pair` holds the sentinels now.
    raw = orjson.dumps(pair, option=_OPT)
    for text, rendering in wall_swaps.items():  # a wall time is followed by ","
        raw = raw.replace(b"[" + text + b",", b"[" + rendering + b",")
    for text, rendering in value_swaps.items():  # a value by "]"
        raw = raw.replace(b"," + text + b"]", b"," + rendering + b"]")
    return raw
