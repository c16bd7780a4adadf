"""The embedded backend: one SQLite file, WAL, one group-committing writer.

Split by responsibility: `schema` (tables and migrations), `_writes` (the write
path and compaction), `_reads` (the read path), `_pool` (connections and the read
pool), `_link` and `_child` (the writer process, and `_wire`, what crosses to
it), `_store` (``SQLiteStore``, the ``Store`` these make up). What does not
depend on SQLite (the chunk codec, the compaction policy, input checks, row
layouts) lives one level up, in ``store``.
"""

from __future__ import annotations

from evalstream_server.store.sqlite._store import SQLiteStore

__all__ = ["SQLiteStore"]
