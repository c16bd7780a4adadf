"""GetCurves page tokens: opaque, bound to the request they page through.

A token carries the position of the next page (split, series name, step) and a
digest of that position together with the request's fingerprint (run, splits,
series, step range, page size). A token answered to another request, or garbled
on the way, fails the digest and is refused naming ``page_token``. The digest
guards against mistakes, not forgery: the project check of the scoped store
still stands behind every read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence

from evalstream_server.store import InvalidInput

#: The most points one GetCurves answer holds (24 bytes each: ~24 MB, below gRPC's 64 MB).
MAX_PAGE_POINTS = 1_000_000

#: The most bytes one point takes in an answer: a 10-byte varint step, a value, a wall time.
POINT_BYTES = 26

Position = tuple[str, str, int]


def points_per_answer(max_message_bytes: int) -> int:
    """The most points one answer holds under the server's message limit.

    Half of the limit goes to points at their largest, half is left for series
    names and checkpoint metrics; at the default 64 MiB, `MAX_PAGE_POINTS` fits.

    >>> points_per_answer(64 * 1024 * 1024), points_per_answer(1024 * 1024)
    (1000000, 20164)
    """
    return max(1, min(MAX_PAGE_POINTS, max_message_bytes // 2 // POINT_BYTES))


def fingerprint(
    run_id: str,
    splits: Sequence[str],
    series: Sequence[str],
    start_step: int | None,
    end_step: int | None,
    page_size: int,
) -> str:
    """What a token is bound to; the same request (filters in any order) gives the same.

    >>> a = fingerprint("r1", ["train", "test"], [], None, 9, 10)
    >>> a == fingerprint("r1", ["test", "train"], [], None, 9, 10)
    True
    >>> a == fingerprint("r1", ["train", "test"], [], 0, 9, 10)
    False
    """
    raw = json.dumps(
        [run_id, sorted(set(splits)), sorted(set(series)), start_step, end_step, page_size]
    )
    return hashlib.sha256(raw.encode()).hexdigest()


def _digest(request: str, position: Position) -> str:
    return hashlib.sha256(json.dumps([request, *position]).encode()).hexdigest()[:24]


def encode(request: str, position: Position) -> str:
    """The token of the page starting at ``position`` of the request ``request`` fingerprints.

    >>> key = fingerprint("r1", [], [], None, None, 2)
    >>> decode(encode(key, ("train", "loss", 42)), key)
    ('train', 'loss', 42)
    """
    raw = json.dumps([*position, _digest(request, position)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii")


def decode(token: str, request: str) -> Position:
    """The position a token of this request points at.

    Raises:
        InvalidInput: (field ``page_token``) the token is garbled or from another request.

    >>> key = fingerprint("r1", [], [], None, None, 2)
    >>> try:
    ...     decode(encode(key, ("train", "loss", 42)), fingerprint("r2", [], [], None, None, 2))
    ... except InvalidInput as exc:
    ...     print(exc.field, "|", str(exc).split(": ")[0])
    page_token | page token 'WyJ0cmFpbiIsImxvc3MiLDQyLCJh...' is garbled or from another request
    """
    bad = InvalidInput(
        f"page token {token[:28] + '...' if len(token) > 28 else token!r} is garbled or from "
        "another request: pass the next_page_token of the previous page of this same request "
        "(run, splits, series, range, page size), or none for the first page",
        field="page_token",
    )
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise bad from exc
    if not isinstance(decoded, list) or len(decoded) != 4:
        raise bad
    split, name, step, digest = decoded
    if not (
        isinstance(split, str)
        and isinstance(name, str)
        and isinstance(step, int)
        and not isinstance(step, bool)
        and isinstance(digest, str)
    ):
        raise bad
    position = (split, name, step)
    if digest != _digest(request, position):
        raise bad
    return position
