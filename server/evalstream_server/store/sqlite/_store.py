"""The embedded run store: one SQLite file in the data directory, WAL, group commit.

Every write goes through a bounded queue to ONE writer (`_writes.Writer`), on a
thread of this process or in a process of its own (`_link`), which runs all that
is queued in one transaction and acks each write only once its COMMIT returned
(``synchronous=FULL``: an ack survives a power loss). Reads run in snapshots on
pooled connections (`_pool`) beside the writer. Reference: SQLite's write-ahead
log, https://www.sqlite.org/wal.html.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from evalstream_server.store._codec import _ValidChunk
from evalstream_server.store._front import DataVersions, StoreFront
from evalstream_server.store._types import (
    InvalidInput,
    StoreClosed,
    StoreOverloaded,
    WriteResult,
)
from evalstream_server.store.sqlite import _reads
from evalstream_server.store.sqlite._link import _START_TIMEOUT_S, WriterLink
from evalstream_server.store.sqlite._ops import _MAX_BATCH, _Op
from evalstream_server.store.sqlite._pool import _READERS, SYNCHRONOUS_LEVELS, ReadPool
from evalstream_server.store.sqlite._writes import Writer, open_writer_connection

if TYPE_CHECKING:
    import asyncio

# Runs past this many in the data-version dict start it over (see `data_version`).
_CONTROL_WAIT_S = 10.0
_WRITERS = ("thread", "process")

T = TypeVar("T")


class SQLiteStore(StoreFront):
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
        on_commit: Called with the seconds from BEGIN to COMMIT of each transaction.
        writer: Where the writer runs: "thread" (default), or "process", a
            process of its own (see `_link`: what the server uses, so that its
            event loop and the writer do not share a GIL).

    >>> import tempfile, numpy as np
    >>> from evalstream_server.store import NewRun, PointChunk
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
        self._versions = DataVersions()
        self._pool = ReadPool(self.path, readers)
        self.writer = writer
        self._link: WriterLink | None = None
        if writer == "process":
            # The writer process opens its own connection; this one only migrates.
            open_writer_connection(self.path, level).close()
            self._link = WriterLink(self.path, level, max_queue, self._settle)
            try:
                self._submit("_w_ping", (), "").result(timeout=_START_TIMEOUT_S)
            except BaseException:
                self._closed = True
                self._link.close()
                raise
            return
        self._writer = Writer(self.path, level)
        self._writer_thread = threading.Thread(
            target=self._write_loop, name="evalstream-store-writer", daemon=True
        )
        self._writer_thread.start()

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

    _queries = _reads

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self._pool.read(fn)

    def _enqueue_chunk(self, valid: _ValidChunk, future: Future[WriteResult]) -> None:
        self._enqueue(
            _Op("_w_write_chunk", tuple(valid), future, valid.run_id, points=True), wait=0
        )

    def _submit(self, name: str, args: tuple[Any, ...], run_id: str) -> Future[Any]:
        future: Future[Any] = Future()
        self._enqueue(_Op(name, args, future, run_id), wait=_CONTROL_WAIT_S)
        return future

    def _write_loop(self) -> None:
        """The writer thread: takes what is queued, up to ``_MAX_BATCH``, as one batch."""
        writer = self._writer
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
                self._settle(*writer.commit(ops))
                writer.between_batches()
        writer.close()

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Lets ``loop`` (the caller's running loop) talk to the writer process, if there is one.

        Writes submitted on the loop are then sent and settled on it, without a
        thread hand-over (see `_link`). Call on the loop's thread.
        """
        if self._link is not None:
            self._link.attach_loop(loop)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Makes every accepted write durable, then closes; later calls raise StoreClosed.

        Closing twice is harmless.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True  # nothing can be enqueued any more
            self._work.notify()
        self._pool.refuse()
        if self._link is not None:
            self._link.close()
        else:
            self._writer_thread.join()
        self._pool.close()  # one still in a read fails it with StoreClosed

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
