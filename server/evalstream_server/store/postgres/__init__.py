"""The scale-out backend: PostgreSQL, shared by several server replicas.

Split by responsibility: `schema` (tables and migrations, under an advisory
lock), `_writes` (each write operation, in the writer's transaction), `_reads`
(SQLite's read queries through a placeholder adapter, and the two that differ),
`_store` (``PostgresStore``: writer threads, the read pool, commits and acks).
The chunk codec, compaction policy, input checks and row layouts are the
backend-neutral modules one level up, shared with ``store.sqlite``.

psycopg (``pip install 'evalstream-server[server]'``) is imported when a
PostgresStore opens, so the embedded SQLite server never needs it.
"""

from __future__ import annotations

from evalstream_server.store.postgres._store import PostgresStore

__all__ = ["PostgresStore"]
