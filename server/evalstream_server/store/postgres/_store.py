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

import logging
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from evalstream_server.store import _url
from evalstream_server.store._codec import _ValidChunk
from evalstream_server.store._front import DataVersions, StoreFront
from evalstream_server.store._types import (
    ChangeMark,
    InvalidInput,
    NotFound,
    StoreClosed,
    StoreError,
    StoreOverloaded,
    StoreUnavailable,
    WriteResult,
)
from evalstream_server.store.postgres import _reads, schema
from evalstream_server.store.postgres._writes import (
    CHANNEL,
    OPERATIONS,
    UNCHANGED,
    mark_runs,
)

T = TypeVar("T")

log = logging.getLogger("evalstream.store")

_MAX_BATCH = 64
_CONTROL_WAIT_S = 10.0
# Tries of a batch that PostgreSQL rolled back for a deadlock or a serialization
# failure (two replicas writing the same runs); the writes are safe to run again.
_RETRIES = 3
_CONNECT_TIMEOUT_S = 10
# The listener's longest wait for a notification before it looks up (stop, the
# exporter lock), and how often a replica that is not the exporter tries the lock.
_LISTEN_POLL_S = 0.2
_EXPORTER_RETRY_S = 1.0
#: The listener connection's application_name (pg_stat_activity shows it).
LISTENER_NAME = "evalstream-listener"
#: The session advisory lock the replica exporting per-run gauges holds ("evalsexp").
EXPORTER_LOCK = int.from_bytes(b"evalsexp", "big")


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
        self._versions = DataVersions()
        # This replica's name in ``runs.written_by``, and its writer connections'
        # backend pids (by id(conn)): notifications they sent are our own writes.
        self.replica = uuid.uuid4().hex
        self._writer_pids: dict[int, int] = {}
        self._followers: list[tuple[Callable[[Sequence[str]], None], Callable[[], None]]] = []
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()  # set while LISTEN is in place
        self._stop = threading.Event()
        self._exporter = False
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
            self._disconnect(conn)

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self.url, connect_timeout=_CONNECT_TIMEOUT_S)
        conn.execute("SET synchronous_commit = on")
        conn.commit()
        with self._lock:
            self._writer_pids[id(conn)] = conn.info.backend_pid
        return conn

    def _disconnect(self, conn: Any) -> None:
        """Closes a writer connection; its backend's pid no longer marks our own notifications
        (PostgreSQL may give it to another replica's connection)."""
        with self._lock:
            self._writer_pids.pop(id(conn), None)
        conn.close()

    def _commit(self, conn: Any, ops: list[_Op]) -> Any:
        """Runs ``ops`` in one transaction and settles them; returns the connection to keep."""
        import psycopg

        for attempt in range(_RETRIES):
            began = time.perf_counter()
            committing = False
            try:
                if conn is None or conn.closed:
                    if conn is not None:
                        self._disconnect(conn)
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
                    self._disconnect(conn)
                self._settle([], [(op, error) for op in ops], None)
                return None
            self._settle(done, failed, time.perf_counter() - began)
            return conn
        return conn

    def _run(
        self, conn: Any, ops: list[_Op]
    ) -> tuple[list[tuple[_Op, Any, int]], list[tuple[_Op, BaseException]]]:
        """Runs ``ops`` in the open transaction: without savepoints first, then isolated."""
        import psycopg

        done: list[tuple[_Op, Any, int]] = []
        try:
            for op in ops:
                result, bumps = OPERATIONS[op.name](conn, *op.args)
                done.append((op, result, bumps))
            self._mark(conn, done)
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
        self._mark(conn, done)
        return done, failed

    def _mark(self, conn: Any, done: list[tuple[_Op, Any, int]]) -> None:
        """Bumps the changed runs' marks and notifies the other replicas (`mark_runs`)."""
        marks: dict[str, int] = {}
        for op, _, bumps in done:
            if bumps and op.run_id:  # a created run (no id yet) is nobody's news
                marks[op.run_id] = max(bumps, marks.get(op.run_id, UNCHANGED))
        if marks:
            mark_runs(conn, marks, self.replica)

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

    # ------------------------------------------------------------------ replicas

    def change_mark(self, run_id: str) -> ChangeMark | None:
        """The run's mark in the database now (one primary-key read).

        Raises:
            NotFound: unknown run.
        """

        def read(conn: Any) -> ChangeMark:
            row = conn.execute(
                "SELECT data_version, rewritten_at, written_by FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"run {run_id!r} not found")
            return ChangeMark(int(row[0]), int(row[1]), row[2] == self.replica)

        return self._read(read)

    def follow(self, changed: Callable[[Sequence[str]], None], missed: Callable[[], None]) -> None:
        """Tells ``changed`` of other replicas' writes, and ``missed`` after a reconnect.

        The first call starts the listener: a thread with its own connection that
        LISTENs on the writes' channel (each committed write transaction notifies the
        ids of the runs it changed, `_writes.mark_runs`), skips the notifications of
        this store's own writer connections, bumps the other runs' `data_version` and
        calls the followers. When its connection fails it reconnects with back-off,
        then bumps every run's version and calls ``missed``: notifications sent in
        between are lost. The same connection holds the exporter lock (`is_exporter`).
        Returns once the listener listens (or after the connect timeout, should the
        database be unreachable: it keeps trying).
        """
        with self._lock:
            self._followers.append((changed, missed))
        self._start_listener()
        # From here on, no write committed is missed (or ``missed`` is called).
        self._listening.wait(_CONNECT_TIMEOUT_S)

    def is_exporter(self) -> bool:
        """Whether this replica holds the exporter lock, a session advisory lock on the
        listener's connection: one replica of the database at a time; when it stops
        or loses its connection, another takes the lock within about a second."""
        self._start_listener()
        return self._exporter

    def _start_listener(self) -> None:
        with self._lock:
            if self._listener is not None or self._closed:
                return
            self._listener = threading.Thread(
                target=self._listen_loop, name="evalstream-pg-listener", daemon=True
            )
        self._listener.start()

    def _listen_loop(self) -> None:
        import psycopg

        backoff = 0.05
        first = True
        while not self._stop.is_set():
            try:
                conn = psycopg.connect(
                    self.url,
                    autocommit=True,
                    connect_timeout=_CONNECT_TIMEOUT_S,
                    application_name=LISTENER_NAME,
                )
            except psycopg.Error as exc:
                log.warning("store: cannot listen for other replicas' writes: %s", self._hide(exc))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            try:
                conn.execute(f"LISTEN {CHANNEL}")
                self._listening.set()
                if not first:
                    self._missed()
                first = False
                backoff = 0.05
                self._listen(conn)
            except psycopg.Error as exc:
                if not self._stop.is_set():
                    log.warning(
                        "store: lost the connection listening for other replicas' writes "
                        "(%s); reconnecting",
                        self._hide(exc),
                    )
            finally:
                self._listening.clear()
                self._exporter = False
                conn.close()

    def _listen(self, conn: Any) -> None:
        tried = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if not self._exporter and now - tried >= _EXPORTER_RETRY_S:
                tried = now
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (EXPORTER_LOCK,)).fetchone()
                if row[0]:
                    self._exporter = True
                    log.info("store: this replica exports the per-run gauges")
            for note in conn.notifies(timeout=_LISTEN_POLL_S):
                with self._lock:
                    own = note.pid in self._writer_pids.values()
                    followers = list(self._followers)
                if own:
                    continue
                runs = [note.payload]
                self._versions.bump(runs)
                for changed, _ in followers:
                    changed(runs)

    def _missed(self) -> None:
        self._versions.bump_all()
        with self._lock:
            followers = list(self._followers)
        for _, missed in followers:
            missed()

    # ------------------------------------------------------------------ lifecycle

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
        self._stop.set()
        if self._listener is not None:
            self._listener.join()
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
