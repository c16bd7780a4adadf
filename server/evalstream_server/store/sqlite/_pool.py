"""Connections to the SQLite file: how each kind is opened, and the bounded read pool.

Readers borrow a connection from a pool of at most ``readers`` (opened on
demand): in WAL mode each reads a consistent snapshot beside the writer and never
takes its lock. The pool, not the handler threads, bounds how many connections,
and so how many page caches, exist.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from evalstream_server.store._types import StoreClosed, StoreError, StoreOverloaded

T = TypeVar("T")

SYNCHRONOUS_LEVELS = ("EXTRA", "FULL", "NORMAL")
# Large pages: point chunks are blobs of tens to hundreds of kB, and fewer, larger
# pages cut the per-page overhead of both the WAL and the overflow chains. Only
# applies to a new database (SQLite fixes the page size at creation in WAL mode).
_PAGE_SIZE = 65536
_JOURNAL_SIZE_LIMIT = 256 * 1024 * 1024
_BUSY_TIMEOUT_MS = 30_000
# Read connections: how many by default, and each one's page cache (KiB). The
# writer's cache is _WRITE_CACHE_KB. Memory for caches is thus bounded by
# readers * _READ_CACHE_KB + _WRITE_CACHE_KB whatever the number of threads.
_READERS = 8
_READ_CACHE_KB = 8 * 1024
_WRITE_CACHE_KB = 16 * 1024


def connect(
    path: Path, *, synchronous: str, writer: bool, checkpointer: bool = False
) -> sqlite3.Connection:
    """A connection in autocommit mode: the writer's (WAL, ``synchronous``, no automatic
    checkpoints), the checkpointer's (no cache), or a read-only one.
    """
    conn = sqlite3.connect(
        str(path),
        isolation_level=None,
        check_same_thread=False,
        timeout=_BUSY_TIMEOUT_MS / 1000,
    )
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    if writer:
        # page_size must precede the switch to WAL; it is a no-op on an existing database.
        conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot switch {str(path)!r} to WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer thread's job
        conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
    elif checkpointer:
        return conn  # reads only the log and writes only pages: needs no cache
    else:
        conn.execute("PRAGMA query_only = ON")
    conn.execute(f"PRAGMA cache_size = -{_WRITE_CACHE_KB if writer else _READ_CACHE_KB}")
    return conn


class ReadPool:
    """At most ``readers`` read connections, opened on demand; ``read`` runs a snapshot in one.

    A read finding every connection busy waits for one (up to ``_BUSY_TIMEOUT_MS``,
    then StoreOverloaded). A thread already inside a read (a nested ``read``)
    reuses its connection rather than taking a slot.
    """

    def __init__(self, path: Path, readers: int) -> None:
        self.path = path
        self._lock = threading.Lock()  # guards closed, _idle and _readers
        self.closed = False
        # Idle connections, every one opened (for close), and a slot per connection
        # that may exist.
        self._idle: list[sqlite3.Connection] = []
        self._readers: list[sqlite3.Connection] = []
        self._reader_slots = threading.BoundedSemaphore(readers)
        self._local = threading.local()

    def _borrow(self) -> sqlite3.Connection:
        """An idle read connection, or a new one while the pool has room; else waits."""
        if not self._reader_slots.acquire(timeout=_BUSY_TIMEOUT_MS / 1000):
            raise StoreOverloaded(
                f"all {len(self._readers)} read connections stayed busy for "
                f"{_BUSY_TIMEOUT_MS / 1000:.0f} s; retry later"
            )
        try:
            with self._lock:
                if self.closed:
                    raise StoreClosed("the store is closed")
                if self._idle:
                    return self._idle.pop()
            try:
                conn = connect(self.path, synchronous="", writer=False)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open a read connection: {exc}") from exc
            with self._lock:
                if self.closed:
                    conn.close()
                    raise StoreClosed("the store is closed")
                self._readers.append(conn)
            return conn
        except BaseException:
            self._reader_slots.release()
            raise

    def _give_back(self, conn: sqlite3.Connection) -> None:
        """Returns a connection to the pool; one left inside a transaction is dropped."""
        keep = True
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            keep = False
        with self._lock:
            if keep and not self.closed:
                self._idle.append(conn)
            elif conn in self._readers:
                self._readers.remove(conn)
                if not self.closed:
                    conn.close()
        self._reader_slots.release()

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Runs ``fn`` in one read transaction (one consistent snapshot)."""
        if self.closed:
            raise StoreClosed("the store is closed")
        nested: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if nested is not None:  # inside another read of this thread: same snapshot
            return fn(nested)
        conn = self._borrow()
        self._local.conn = conn
        try:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.ProgrammingError as exc:
            if self.closed:
                raise StoreClosed("the store is closed") from exc
            raise StoreError(f"read failed: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}") from exc
        finally:
            self._local.conn = None
            self._give_back(conn)

    def refuse(self) -> None:
        """Refuses every read from now on (StoreClosed); connections stay open until `close`."""
        with self._lock:
            self.closed = True

    def close(self) -> None:
        """Refuses reads and closes every connection (a read still running fails, StoreClosed)."""
        with self._lock:
            self.closed = True
            readers, self._readers, self._idle = self._readers, [], []
        for conn in readers:
            try:
                conn.close()
            except sqlite3.Error:
                pass
