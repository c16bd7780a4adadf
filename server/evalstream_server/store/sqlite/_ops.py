"""A queued write and what a batch of them came to: what the store, its writer thread,
the writer process and its link all pass around.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")

# The most operations one batch (one transaction, one commit) takes.
_MAX_BATCH = 256


class _Conn(Protocol):
    """What the writer's operations use of a connection (`sqlite3.Connection` or `_Batch`)."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor: ...

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor: ...


class _Op(Generic[T]):
    """One queued write: the writer method ``name`` runs with ``args`` inside the batch transaction.

    By name, not as a closure, so that a write can be handed to a writer process
    (`_link`). The method (``Writer._w_*``, see `_writes`) takes the connection, then
    ``args``, and returns (result, bumps): ``bumps`` says whether the run's data
    changed. ``future`` is None in the writer process (the parent holds it).
    """

    __slots__ = ("args", "future", "id", "name", "points", "run_id")

    def __init__(
        self,
        name: str,
        args: tuple[Any, ...],
        future: Future[T] | None,
        run_id: str,
        *,
        points: bool = False,
        id: int = 0,  # noqa: A002 - the writer process's name for it
    ) -> None:
        self.name = name
        self.args = args
        self.future = future
        self.run_id = run_id
        self.points = points  # a point chunk write: may defer its INSERT (see _append)
        self.id = id


# What one batch came to: the operations done (with result and bumps), those that
# failed, and the seconds from the batch's first statement to its commit.
_Done = list[tuple[_Op[Any], Any, bool]]
_Failed = list[tuple[_Op[Any], BaseException]]
