"""The scale-out run store: PostgreSQL through psycopg 3, a read pool and writer connections.

Writes go through bounded queues to ``writers`` threads, each with its own
connection; a run's writes always go to the same thread (by a hash of its id),
so that a stream's chunks apply in the order sent. A thread runs what is queued
for it, up to ``_MAX_BATCH`` writes, in one transaction and acks each write only
once its COMMIT returned (``synchronous_commit = on`` for these connections: an
ack survives a crash of the database server). Should one write of a batch fail,
the batch is rolled back and run again with a SAVEPOINT per write, so that the
failure stays that write's own. Reads run in REPEATABLE READ, read-only
snapshots on pooled connections (psycopg_pool). The schema is migrated on open
(`schema.migrate`, under an advisory lock). Reference:
https://www.psycopg.org/psycopg3/docs/advanced/pool.html.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from evalstream_server.store import _url
from evalstream_server.store._codec import _ValidChunk
from evalstream_server.store._front import StoreFront
from evalstream_server.store._types import (
    InvalidInput,
    StoreClosed,
    StoreError,
    StoreOverloaded,
    StoreUnavailable,
    WriteResult,
)
from evalstream_server.store.postgres import _reads, schema
from evalstream_server.store.postgres._writes import OPERATIONS

T = TypeVar("T")

_MAX_BATCH = 64
_MAX_VERSIONS = 65536
_CONTROL_WAIT_S = 10.0
# Tries of a batch that PostgreSQL rolled back for a deadlock or a serialization
# failure (two replicas writing the same runs); the writes are safe to run again.
_RETRIES = 3
_CONNECT_TIMEOUT_S = 10


class _Op:
    """One queued write: ``OPERATIONS[name](conn, *args)``, settled through ``future``."""

    __slots__ = ("args", "future", "name", "run_id")

    def __init__(self, name: str, args: tuple[Any, ...], future: Future[Any], run_id: str) -> None:
        self.name = name
        self.args = args
        self.future = future
        self.run_id = run_id


class PostgresStore(StoreFront):
    """The scale-out ``Store``: PostgreSQL, shared by any number of server replicas.

    Args:
        url: A libpq URI, ``postgresql://user:password@host:port/database?options``
            (``postgres://`` too). Its password is never shown: messages and the
            store's repr carry it as ``***``.
        writers: Writer threads (and connections). Each commits batches of the
            writes of the runs that hash to it.
        readers: The most read connections open at once; a read finding all busy
            waits up to ``read_timeout`` s, then StoreOverloaded.
        max_queue: Writes that may wait, over all writers; beyond it a chunk is
            refused with StoreOverloaded.
        on_commit: Called with the seconds from a batch's first statement to its COMMIT.

    Raises:
        StoreError: the database cannot be reached or migrated (its message names
            the URL without its password).
    """

    _queries = _reads

    def __init__(
        self,
        url: str,
        *,
        writers: int = 4,
        readers: int = 8,
        max_queue: int = 1024,
        read_timeout: float = 10.0,
        on_commit: Callable[[float], None] | None = None,
    ) -> None:
        for name, value in (("writers", writers), ("readers", readers), ("max_queue", max_queue)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be >= 1, got {value!r}", field=name)
        try:
            parsed = _url.parse(url)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="store") from None
        if parsed.backend != "postgresql":
            raise InvalidInput(
                f"{parsed} is not a PostgreSQL URL (postgresql://...)", field="store"
            )
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self._shown = _url.redact(url)
        self._on_commit = on_commit
        self._read_timeout = read_timeout
        self._lock = threading.Lock()
        self._closed = False
        self._queues: list[deque[_Op]] = [deque() for _ in range(writers)]
        self._wake = [threading.Condition(self._lock) for _ in range(writers)]
        self._queued = 0
        self._max_queue = max_queue
        self._versions: dict[str, int] = {}
        self._version_counter = 0
        self._version_floor = 0
        try:
            with psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT_S) as conn:
                schema.migrate(conn)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open the store at {self._shown}: {self._hide(exc)}") from None
        except StoreError as exc:
            raise StoreError(f"cannot open the store at {self._shown}: {exc}") from None

        def configure(conn: psycopg.Connection[Any]) -> None:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True

        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=readers,
            kwargs={"connect_timeout": _CONNECT_TIMEOUT_S},
            configure=configure,
            open=False,
            name="evalstream-readers",
        )
        self._pool.open(wait=False)
        self._threads = [
            threading.Thread(
                target=self._write_loop, args=(i,), name=f"evalstream-pg-writer-{i}", daemon=True
            )
            for i in range(writers)
        ]
        for thread in self._threads:
            thread.start()

    def __repr__(self) -> str:
        return f"PostgresStore({self._shown!r})"

    def _hide(self, exc: BaseException) -> str:
        """An error's message, with the URL's password (should libpq echo it) hidden."""
        text = str(exc).strip()
        password = _url.password(self.url)
        return text.replace(password, "***") if password else text

    # ------------------------------------------------------------------ reads

    def _read(self, fn: Callable[[Any], T]) -> T:
        import psycopg
        from psycopg_pool import PoolClosed, PoolTimeout

        if self._closed:
            raise StoreClosed("the store is closed")
        try:
            try:
                with self._pool.connection(timeout=self._read_timeout) as conn:
                    return fn(_reads.Qmark(conn))
            except psycopg.OperationalError:
                # A pooled connection the database dropped (it restarted): the pool
                # discards it; a read is safe to run again, once, on another.
                with self._pool.connection(timeout=self._read_timeout) as conn:
                    return fn(_reads.Qmark(conn))
        except PoolTimeout:
            raise StoreOverloaded(
                f"no database connection free within {self._read_timeout:g} s; retry later"
            ) from None
        except PoolClosed:
            raise StoreClosed("the store is closed") from None
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"the database is unavailable: {self._hide(exc)}") from None
        except psycopg.Error as exc:
            raise StoreError(f"read failed: {self._hide(exc)}") from None

    # ------------------------------------------------------------------ writes

    def _put(self, op: _Op) -> bool:
        with self._lock:
            if self._closed:
                raise StoreClosed("the store is closed")
            if self._queued >= self._max_queue:
                return False
            slot = zlib.crc32(op.run_id.encode()) % len(self._queues)
            self._queues[slot].append(op)
            self._queued += 1
            self._wake[slot].notify()
            return True

    def _enqueue(self, op: _Op, *, wait: float) -> None:
        deadline = time.monotonic() + wait
        while not self._put(op):
            if time.monotonic() >= deadline:
                raise StoreOverloaded(
                    f"the store's write queue is full ({self._max_queue} writes waiting); "
                    "retry later"
                )
            time.sleep(0.002)

    def _submit(self, name: str, args: tuple[Any, ...], run_id: str) -> Future[Any]:
        future: Future[Any] = Future()
        self._enqueue(_Op(name, args, future, run_id), wait=_CONTROL_WAIT_S)
        return future

    def _enqueue_chunk(self, valid: _ValidChunk, future: Future[WriteResult]) -> None:
        self._enqueue(_Op("_w_write_chunk", tuple(valid), future, valid.run_id), wait=0)

    def _write_loop(self, slot: int) -> None:
        queue, wake = self._queues[slot], self._wake[slot]
        conn: Any = None
        stop = False
        while not stop:
            with self._lock:
                while not queue and not self._closed:
                    wake.wait()
                batch = [queue.popleft() for _ in range(min(len(queue), _MAX_BATCH))]
                self._queued -= len(batch)
                stop = self._closed and not queue
            ops = [op for op in batch if op.future.set_running_or_notify_cancel()]
            if ops:
                conn = self._commit(conn, ops)
        if conn is not None:
            conn.close()

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self.url, connect_timeout=_CONNECT_TIMEOUT_S)
        conn.execute("SET synchronous_commit = on")
        conn.commit()
        return conn

    def _commit(self, conn: Any, ops: list[_Op]) -> Any:
        """Runs ``ops`` in one transaction and settles them; returns the connection to keep."""
        import psycopg

        for attempt in range(_RETRIES):
            began = time.perf_counter()
            committing = False
            try:
                if conn is None or conn.closed:
                    conn = self._connect()
                done, failed = self._run(conn, ops)
                committing = True
                conn.commit()
            except psycopg.errors.TransactionRollback:
                _rollback(conn)
                if attempt + 1 < _RETRIES:
                    continue
                error: StoreError = StoreUnavailable(
                    "the database kept rolling the write back (deadlock or serialization "
                    "failure); retry"
                )
                self._settle([], [(op, error) for op in ops], None)
                return conn
            except psycopg.Error as exc:
                what = (
                    "the database connection failed during COMMIT: the write may or may not be "
                    "stored; resend it"
                    if committing
                    else "the database refused the write, nothing was stored"
                )
                error = StoreUnavailable(f"{what} ({self._hide(exc)})")
                if conn is not None and not conn.closed:
                    conn.close()
                self._settle([], [(op, error) for op in ops], None)
                return None
            self._settle(done, failed, time.perf_counter() - began)
            return conn
        return conn

    def _run(
        self, conn: Any, ops: list[_Op]
    ) -> tuple[list[tuple[_Op, Any, bool]], list[tuple[_Op, BaseException]]]:
        """Runs ``ops`` in the open transaction: without savepoints first, then isolated."""
        import psycopg

        done: list[tuple[_Op, Any, bool]] = []
        try:
            for op in ops:
                result, bumps = OPERATIONS[op.name](conn, *op.args)
                done.append((op, result, bumps))
            return done, []
        except (psycopg.OperationalError, psycopg.errors.TransactionRollback):
            raise  # the connection or the transaction as a whole: `_commit` decides
        except Exception as exc:  # noqa: BLE001 - one write failed: rerun isolated
            conn.rollback()
            if len(ops) == 1:
                return [], [(ops[0], self._failure(exc))]
        done = []
        failed: list[tuple[_Op, BaseException]] = []
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                result, bumps = OPERATIONS[op.name](conn, *op.args)
            except (psycopg.OperationalError, psycopg.errors.TransactionRollback):
                raise
            except Exception as exc:  # noqa: BLE001 - handed to the op's future
                conn.execute("ROLLBACK TO SAVEPOINT op")
                failed.append((op, self._failure(exc)))
            else:
                conn.execute("RELEASE SAVEPOINT op")
                done.append((op, result, bumps))
        return done, failed

    def _failure(self, exc: Exception) -> StoreError:
        """What a write's future gets for an exception its operation raised."""
        import psycopg

        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, psycopg.DataError):
            # e.g. a NUL character, which PostgreSQL text cannot hold.
            return InvalidInput(f"the database refused a value: {self._hide(exc)}")
        wrapped = StoreError(f"write failed: {self._hide(exc)}")
        wrapped.__cause__ = exc
        return wrapped

    def _settle(
        self,
        done: list[tuple[_Op, Any, bool]],
        failed: list[tuple[_Op, BaseException]],
        seconds: float | None,
    ) -> None:
        """After a batch is durable (or has failed): bumps versions, then wakes the callers."""
        if seconds is not None and self._on_commit is not None:
            self._on_commit(seconds)
        with self._lock:
            for op, _, bumps in done:
                if bumps:
                    if len(self._versions) >= _MAX_VERSIONS and op.run_id not in self._versions:
                        self._version_floor = self._version_counter
                        self._versions.clear()
                    self._version_counter += 1
                    self._versions[op.run_id] = self._version_counter
        for op, result, _ in done:
            op.future.set_result(result)
        for op, err in failed:
            if not op.future.done():
                op.future.set_exception(err)

    # ------------------------------------------------------------------ lifecycle

    def data_version(self, run_id: str) -> int:
        """A number that grows after every durable write through THIS store that changed the run.

        In memory, as SQLiteStore's (see there). Writes through another replica do
        not move it.
        """
        with self._lock:
            return self._versions.get(run_id, self._version_floor)

    def close(self) -> None:
        """Makes every accepted write durable, then closes; later calls raise StoreClosed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for wake in self._wake:
                wake.notify()
        for thread in self._threads:
            thread.join()
        self._pool.close()

    def queue_depth(self) -> int:
        """Writes waiting for a writer (for metrics)."""
        return self._queued

    @property
    def queue_capacity(self) -> int:
        """The most writes that may wait (`max_queue`)."""
        return self._max_queue

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rollback(conn: Any) -> None:
    import psycopg

    try:
        conn.rollback()
    except psycopg.Error:
        pass
