"""What crosses between the store and its writer process: length-prefixed pickles.

Each frame is an 8-byte little-endian length, then a pickle. Parent to child: a
list of operations ``(id, name, args, run_id, points)`` (see `_ops._Op`), or None
(drain and exit). Child to parent: one frame per committed batch,
``(seconds, done, failed)``: ``done`` holds ``(id, result, bumps)``, ``failed``
holds ``(id, exception)``; ``seconds`` is None when nothing was committed.
"""

from __future__ import annotations

import contextlib
import pickle
import socket
import struct
from typing import Any

from evalstream_server.store._types import StoreError, WriteResult

_HEADER = struct.Struct("<Q")
_SOCKET_BUFFER = 4 << 20
_RECV = 1 << 20


def _frame(obj: Any) -> bytes:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


class _Frames:
    """Cuts a byte stream into the objects of its frames.

    >>> frames = _Frames()
    >>> data = _frame([1, 2]) + _frame(None) + _frame("three")
    >>> frames.feed(data[:5]), frames.feed(data[5:-3]), frames.feed(data[-3:])
    ([], [[1, 2], None], ['three'])
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf
        buf += data
        out = []
        pos = 0
        while len(buf) - pos >= _HEADER.size:
            (n,) = _HEADER.unpack_from(buf, pos)
            end = pos + _HEADER.size + n
            if len(buf) < end:
                break
            out.append(pickle.loads(buf[pos + _HEADER.size : end]))
            pos = end
        del buf[:pos]
        return out


def _plain(result: WriteResult) -> tuple[int, int, int]:
    return result.stored, result.duplicates, result.changed


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives a pickle, else a StoreError with its message."""
    try:
        pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - any pickling failure
        return StoreError(str(exc))
    return exc


def _tune(sock: socket.socket) -> None:
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER)
