"""The writer process: ``python -c "...child_main(...)"``, started by `_link.WriterLink`.

It gathers every frame that has arrived into its next batch, so that a group
commit still takes the writes of many streams, and answers one frame per batch
once it is committed. A SIGKILLed server's child sees the socket close and exits
once its current batch is committed.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from evalstream_server.logs import configure_logging
from evalstream_server.store.sqlite._ops import _MAX_BATCH, _Op
from evalstream_server.store.sqlite._wire import _RECV, _frame, _Frames, _plain, _portable
from evalstream_server.store.sqlite._writes import Writer

log = logging.getLogger("evalstream.store")


def child_main(path: str, synchronous: str, fd: int, log_level: str = "WARNING") -> None:
    """The writer process: commits the operations it is sent until told to stop or orphaned.

    Logs the server's JSON lines at the server's level; a failure of its own is
    logged and ends it with status 1 (the server fails the writes in flight and
    starts another on the next write).
    """
    # Ctrl-C and SIGTERM reach the whole process group: the server drains, then
    # tells this process to stop; it must not leave first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(log_level)
    try:
        _serve(Path(path), synchronous, socket.socket(fileno=fd))
    except Exception:
        log.exception(
            "store writer process failed", extra={"fields": {"pid": os.getpid(), "path": path}}
        )
        sys.exit(1)


def _serve(path: Path, synchronous: str, sock: socket.socket) -> None:
    try:
        writer = Writer(path, synchronous)
    except BaseException:
        sock.close()
        raise
    frames = _Frames()
    try:
        ended = False
        while not ended:
            data = sock.recv(_RECV)
            if not data:
                break  # the server is gone: nothing more can be acked
            got = frames.feed(data)
            while True:  # everything else already here joins this batch
                try:
                    more = sock.recv(_RECV, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                if not more:
                    ended = True
                    break
                got += frames.feed(more)
            ops: list[_Op[Any]] = []
            for frame in got:
                if frame is None:
                    ended = True
                    continue
                for op_id, name, args, run_id, points in frame:
                    ops.append(_Op(name, args, None, run_id, points=points, id=op_id))
            for lo in range(0, len(ops), _MAX_BATCH):
                done, failed, seconds = writer.commit(ops[lo : lo + _MAX_BATCH])
                reply = (
                    seconds,
                    # A chunk's WriteResult as a plain tuple: see `WriterLink._settle`.
                    [
                        (op.id, _plain(result) if op.points else result, bumps)
                        for op, result, bumps in done
                    ],
                    [(op.id, _portable(exc)) for op, exc in failed],
                )
                sock.sendall(_frame(reply))
                writer.between_batches()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server is gone
    finally:
        writer.close()
        sock.close()
