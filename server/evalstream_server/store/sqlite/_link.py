"""The store's end of its writer process: ``SQLiteStore(path, writer="process")``.

The writer runs in a process of its own so that the server's event loop and the
writer do not share a GIL: its SQL and fsyncs run beside the loop rather than
between the loop's turns. Once the server attaches its event loop
(`WriterLink.attach_loop`), the loop sends the queued writes, one frame per loop
iteration, and settles their futures when the answer is readable, with no thread
hand-over in between; without a loop (tests, tools) the submitting thread sends
and a receiver thread settles. A future resolves only after the child's COMMIT
returned. Should the child die, every write in flight fails with WriterLost and
the next write starts a new child (after a back-off if it died before answering).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalstream_server.store._types import StoreClosed, StoreError, WriteResult, WriterLost
from evalstream_server.store.sqlite._ops import _Done, _Failed, _Op
from evalstream_server.store.sqlite._wire import _RECV, _frame, _Frames, _tune

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("evalstream.store")

_START_TIMEOUT_S = 120.0
_EXIT_TIMEOUT_S = 120.0
# A writer that exits before it answered a batch (it could not open the database, say,
# or each batch it takes kills it): the next start waits, twice as long per such exit
# in a row, so that a broken store is not a process started per write.
_BACKOFF_FIRST_S = 0.1
_BACKOFF_MAX_S = 5.0


class WriterLink:
    """The server's end of the writer process: sends queued writes, settles their futures."""

    def __init__(
        self,
        path: Path,
        synchronous: str,
        max_queue: int,
        settle: Callable[[_Done, _Failed, float | None], None],
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._max_queue = max_queue
        self._store_settle = settle  # the store's: bumps versions, wakes the callers
        self._lock = threading.Lock()  # the fields below but the buffers and frames
        self._outbox: list[tuple[Any, ...]] = []
        self._outstanding: dict[int, _Op[Any]] = {}
        self._next_id = 0
        self._closing = False
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawns = 0
        # Writers started in a row that have not answered a batch (the current one
        # included): when one exits, the next start waits for a back-off this sets.
        self._unanswered = 0
        self._restart_at = 0.0  # no writer starts before this (monotonic)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._watched: socket.socket | None = None  # the socket the loop reads
        # Sending: the loop's unsent bytes, or one blocking sender at a time.
        self._wbuf = bytearray()
        self._writing = False
        self._send_lock = threading.Lock()
        # Receiving: one reader at a time, on the loop or the receiver thread.
        self._recv_lock = threading.Lock()
        self._frames = _Frames()
        self._stop_receiver = threading.Event()
        self._receiver_wake = threading.Event()  # a new writer to read, or stop
        with self._lock:
            self._spawn()
        self._receiver = threading.Thread(
            target=self._receive_loop, name="evalstream-store-link", daemon=True
        )
        self._receiver.start()

    # ------------------------------------------------------------------ the process

    def _spawn(self) -> None:
        """Starts a writer process (``_lock`` held)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        _tune(ours)
        _tune(theirs)
        root = str(Path(__file__).resolve().parents[3])  # server/
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        try:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-c",
                    "import sys; from evalstream_server.store.sqlite._child import child_main; "
                    "child_main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])",
                    str(self._path),
                    self._synchronous,
                    str(theirs.fileno()),
                    logging.getLevelName(log.getEffectiveLevel()),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except OSError as exc:  # e.g. out of processes or file descriptors
            ours.close()
            raise StoreError(f"cannot start the store's writer process: {exc}") from exc
        finally:
            theirs.close()
        self._spawns += 1
        self._unanswered += 1
        self._proc = proc
        self._sock = ours
        self._frames = _Frames()
        self._receiver_wake.set()  # without a loop, the receiver reads it from now on

    def _child_exited(self, sock: socket.socket) -> None:
        """The child closed its end: fails the writes in flight (the next write starts another)."""
        with self._lock:
            if sock is not self._sock:
                return
            lost = list(self._outstanding.values())
            self._outstanding.clear()
            self._outbox.clear()
            self._sock = None
            proc, self._proc = self._proc, None
            closing = self._closing
            if self._unanswered:
                backoff = _BACKOFF_FIRST_S * 2 ** (self._unanswered - 1)
                self._restart_at = time.monotonic() + min(backoff, _BACKOFF_MAX_S)
        self._unwatch(sock)
        sock.close()
        with self._send_lock:  # a partial frame for the dead one: not for the next
            self._wbuf.clear()
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        if lost and not closing:
            log.error(
                "store writer process exited",
                extra={"fields": {"status": code, "writes_failed": len(lost)}},
            )
        error: StoreError = (
            StoreClosed("the store closed before the write was stored")
            if closing
            else WriterLost(
                f"the store's writer process exited (status {code}); writes in flight "
                "are not known to be stored: send them again"
            )
        )
        for op in lost:
            future: Future[Any] = op.future  # type: ignore[assignment]
            if not future.done():
                future.set_exception(error)

    # ------------------------------------------------------------------ submitting

    def try_submit(self, op: _Op[Any]) -> bool:
        """Queues ``op`` for the writer process; False when the queue is full.

        Its future is running from here on (as the writer thread marks the writes it
        takes): once sent, a write cannot be called back, and a future cancelled
        meanwhile would refuse its result and stop the settling of its batch.
        """
        with self._lock:
            if self._closing:
                raise StoreClosed("the store is closed")
            if len(self._outstanding) >= self._max_queue:
                return False
            if self._sock is None and (wait := self._restart_at - time.monotonic()) > 0:
                raise WriterLost(
                    f"the store's writer process exited {self._unanswered} time(s) in a "
                    f"row before answering a write (its log says why); it starts again in "
                    f"{wait:.2f} s: send the write again then"
                )
            if not op.future.set_running_or_notify_cancel():  # type: ignore[union-attr]
                return True  # cancelled before it was queued: nothing to write
            spawned = self._sock is None
            if spawned:
                self._spawn()
            self._next_id += 1
            op.id = self._next_id
            self._outstanding[op.id] = op
            self._outbox.append((op.id, op.name, op.args, op.run_id, op.points))
            first = len(self._outbox) == 1
            loop = self._loop
        if loop is None:
            if first:
                self._send_blocking()
            return True
        on_loop = threading.get_ident() == self._loop_thread
        try:
            if on_loop:
                if spawned:
                    self._watch()
                if first:
                    loop.call_soon(self._send_on_loop)
            else:
                if spawned:
                    loop.call_soon_threadsafe(self._watch)
                if first:
                    loop.call_soon_threadsafe(self._send_on_loop)
        except RuntimeError:  # the loop closed under us: send from here
            self._detach()
            self._send_blocking()
        return True

    def depth(self) -> int:
        return len(self._outstanding)

    @property
    def restarts(self) -> int:
        """Writers started after the first (for metrics)."""
        return max(0, self._spawns - 1)

    # ------------------------------------------------------------------ without a loop

    def _take_unsent(self) -> tuple[socket.socket | None, bytes]:
        """The current socket, and the unsent bytes with the queued writes framed after them.

        Call with ``_send_lock`` held; the bytes are the caller's to send.
        """
        with self._lock:
            items, self._outbox = self._outbox, []
            sock = self._sock
        data = bytes(self._wbuf) + (_frame(items) if items else b"")
        self._wbuf.clear()
        return sock, data

    def _send_blocking(self) -> None:
        with self._send_lock:
            sock, data = self._take_unsent()
            if sock is None or not data:
                return
            with contextlib.suppress(OSError):  # a dead child: its reader fails the writes
                sock.sendall(data)

    def _receive_loop(self) -> None:
        while not self._stop_receiver.is_set():
            with self._lock:
                sock = None if self._loop is not None else self._sock
            if sock is None:  # the loop reads (or no writer yet)
                self._receiver_wake.wait(0.5)
                self._receiver_wake.clear()
                continue
            try:
                readable, _, _ = select.select([sock], [], [], 0.2)
            except (OSError, ValueError):  # closed meanwhile
                continue
            if readable:
                self._receive(sock)

    # ------------------------------------------------------------------ on the loop

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on ``loop`` sends and receives (call on ``loop``'s thread)."""
        with self._send_lock, self._lock:
            self._loop = loop
            self._loop_thread = threading.get_ident()
        self._watch()
        self._send_on_loop()

    def _watch(self) -> None:
        """Reads the current socket on the loop (loop thread)."""
        loop = self._loop
        sock = self._sock
        if loop is None or sock is None or sock is self._watched:
            return
        loop.add_reader(sock.fileno(), self._receive, sock)
        self._watched = sock

    def _unwatch(self, sock: socket.socket) -> None:
        """Stops the loop reading (and writing) ``sock``, from any thread."""
        loop = self._loop
        if self._watched is not sock:
            return
        self._watched = None
        if loop is None or loop.is_closed():
            return
        fd = sock.fileno()

        def unwatch() -> None:
            loop.remove_reader(fd)
            loop.remove_writer(fd)
            self._writing = False

        if threading.get_ident() == self._loop_thread or not loop.is_running():
            unwatch()
        else:
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                loop.call_soon_threadsafe(unwatch)

    def _send_on_loop(self) -> None:
        with self._send_lock:
            with self._lock:
                items, self._outbox = self._outbox, []
            if items:
                self._wbuf += _frame(items)
            self._write_some()

    def _write_when_writable(self) -> None:
        with self._send_lock:
            self._write_some()

    def _write_some(self) -> None:
        """Sends what the socket takes now; the rest when it is writable (``_send_lock`` held)."""
        sock = self._sock
        loop = self._loop
        if sock is None or loop is None:
            return
        while self._wbuf:
            try:
                sent = sock.send(self._wbuf, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if not self._writing:
                    loop.add_writer(sock.fileno(), self._write_when_writable)
                    self._writing = True
                return
            except OSError:
                return  # a dead child: its reader fails the writes
            del self._wbuf[:sent]
        if self._writing:
            loop.remove_writer(sock.fileno())
            self._writing = False

    def _detach(self) -> None:
        """Stops using the loop (on its thread, or with the loop stopped or closed)."""
        with self._lock:
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(Exception):
                self._unwatch(sock)
        with self._lock:
            self._loop = None
            self._loop_thread = 0

    # ------------------------------------------------------------------ results

    def _receive(self, sock: socket.socket) -> None:
        """Settles every result that has arrived on ``sock``; notices the child's exit."""
        ended = False
        with self._recv_lock:
            if sock is not self._sock:
                return
            got: list[Any] = []
            while True:
                try:
                    data = sock.recv(_RECV, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    ended = True
                    break
                got += self._frames.feed(data)
            for frame in got:
                self._settle(frame)
        if ended:
            self._child_exited(sock)

    def _settle(self, frame: tuple[float | None, list[Any], list[Any]]) -> None:
        seconds, done_ids, failed_ids = frame
        with self._lock:
            self._unanswered = 0
            pop = self._outstanding.pop
            done = [(pop(i), result, bumps) for i, result, bumps in done_ids]
            failed = [(pop(i), exc) for i, exc in failed_ids]
        # Built here: unpickling a dataclass runs Python code per chunk, this less.
        done = [
            (op, WriteResult(*result) if op.points else result, bumps) for op, result, bumps in done
        ]
        self._store_settle(done, failed, seconds)

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Sends what is queued, has the child commit it and exit, and settles every write."""
        with self._lock:
            self._closing = True  # nothing new is queued; the loop, if any, may still settle
        self._stop_receiver.set()  # it may still settle a frame meanwhile, one reader at a time
        self._receiver_wake.set()
        try:
            self._drain()
        finally:
            self._receiver.join()

    def _drain(self) -> None:
        with self._send_lock:
            sock, data = self._take_unsent()
            if sock is None:
                return
            with contextlib.suppress(OSError):
                sock.sendall(data + _frame(None))
        # Everything it was sent, committed: read until it closes its end.
        while True:
            try:
                readable, _, _ = select.select([sock], [], [], _EXIT_TIMEOUT_S)
            except (OSError, ValueError):
                break
            if not readable:
                break
            with self._lock:
                if sock is not self._sock:
                    return
            self._receive(sock)
        self._child_exited(sock)
