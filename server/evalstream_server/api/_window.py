"""StreamLoss flow control on the event loop: waking waiters a burst at a time, and the window.

The store's writer thread settles a commit's futures; `settled` and `Waker` bring
that back to the loop with one wake-up per burst, and `Window` bounds how many
chunks a stream reads ahead of its acks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from typing import Any, Generic, TypeVar

__all__ = ["Waker", "Window", "settled"]


class Waker:
    """Resolves asyncio waiters of one event loop from other threads, a burst at a time.

    The store's writer resolves a commit's futures one after another. Waking the loop
    for each (``call_soon_threadsafe``: a write to its self-pipe, a loop turn) costs
    the loop more than the waking does; here the first waiter of a burst schedules
    one drain, and the others join it while it is pending.
    """

    __slots__ = ("_lock", "_pending", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: list[asyncio.Future[None]] = []

    def wake(self, waiter: asyncio.Future[None]) -> None:
        """Any thread: resolve ``waiter`` on the loop soon."""
        with self._lock:
            self._pending.append(waiter)
            first = len(self._pending) == 1
        if first:
            try:
                self.loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop closed: its streams are long gone
                pass

    def _drain(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for waiter in pending:
            if not waiter.done():  # a cancelled stream's waiter
                waiter.set_result(None)


async def settled(future: concurrent.futures.Future[Any], waker: Waker) -> None:
    """Waits, on the event loop, until the store's `future` (set by its writer thread) is done.

    Lighter than ``asyncio.wrap_future``: no second future to copy the result into,
    only for the chunks a stream actually has to wait for, and one loop wake-up per
    burst of commits (see `Waker`; ``waker`` belongs to the running loop).
    """
    waiter = waker.loop.create_future()
    future.add_done_callback(lambda _: waker.wake(waiter))
    await waiter


T = TypeVar("T")


class Window(Generic[T]):
    """A bounded FIFO from one task to one other on the same loop (a StreamLoss window).

    ``asyncio.Queue`` for one producer and one consumer, minus its costs per item:
    on Python 3.11 each ``put``/``get`` looks the running loop up, and that look-up
    is a ``getpid`` system call (several percent of a busy server's loop thread).
    """

    __slots__ = ("_getter", "_items", "_loop", "_putter", "_size")

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self._loop = loop
        self._size = size
        self._items: deque[T] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None

    async def put(self, item: T) -> None:
        while len(self._items) >= self._size:
            self._putter = self._loop.create_future()
            await self._putter
        self._items.append(item)
        _wake(self._getter)

    async def get(self) -> T:
        while not self._items:
            self._getter = self._loop.create_future()
            await self._getter
        item = self._items.popleft()
        _wake(self._putter)
        return item


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
