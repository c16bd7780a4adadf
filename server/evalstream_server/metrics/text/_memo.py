"""The text metrics' memo: one cache per process, bounded by bytes, not entries.

BLEU, ROUGE and METEOR memoise text-level work (tokens, n-gram counts, pair scores)
because references repeat over a stream. Entries are weighed in approximate bytes and
their total stays within ``--text-cache-mb`` per process. Eviction is CLOCK (Corbato
1968); once full, a newcomer is stored with probability 1/8 (bimodal insertion: Qureshi
et al. 2007, "Adaptive Insertion Policies for High Performance Caching"), so the cyclic
scan of a run's checkpoints keeps hitting. Word-level caches stay bounded
``functools.lru_cache`` (`word_cache`). Process-wide state on purpose: it serves pure
functions, and the server hands the budget in once (`set_budget`).
"""

from __future__ import annotations

import functools
import random
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar, cast

__all__ = [
    "DEFAULT_BUDGET",
    "DICT_BYTES",
    "DICT_SLOT_BYTES",
    "ADMIT_WHEN_FULL",
    "ENTRY_BYTES",
    "MAX_CACHED_WORD",
    "OVERSIZE_FRACTION",
    "STR_BYTES",
    "TOKEN_BYTES",
    "TUPLE_BYTES",
    "WORD_CACHE_SIZE",
    "WordCache",
    "clear",
    "memo",
    "set_budget",
    "stats",
    "weigh_tokens",
    "word_cache",
]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: Default budget of the text memo, in bytes (``--text-cache-mb 64``).
DEFAULT_BUDGET = 64 << 20

#: An entry heavier than budget / OVERSIZE_FRACTION is computed but not stored.
OVERSIZE_FRACTION = 16

#: Probability that a new entry is stored when the memo is full.
ADMIT_WHEN_FULL = 1 / 8

#: Bytes of one entry beyond its arguments and its value: the args tuple, the
#: [value, weight, used] list, its table slot and its place in the queue.
ENTRY_BYTES = 256

#: A str beyond its characters (CPython's compact ASCII string).
STR_BYTES = 49

#: A tuple beyond its 8-byte slots.
TUPLE_BYTES = 40

#: One token string in a tuple: its slot and its str, beyond its characters.
TOKEN_BYTES = 8 + STR_BYTES

#: A dict or Counter beyond its keys and values, and its table per key (hash
#: table, index and spare room, averaged over the power-of-two sizes: 30-48).
DICT_BYTES = 232
DICT_SLOT_BYTES = 40

#: Most words each word-level cache holds.
WORD_CACHE_SIZE = 1 << 15

#: Longer words are computed, never cached.
MAX_CACHED_WORD = 32

#: Weigher: (the call's positional arguments, its value) -> approximate bytes of
#: the entry, key included.
Weigher = Callable[[tuple[Any, ...], Any], int]


class _Memo:
    """Entries of every memoised function, whose weights sum to at most ``budget``.

    Each function has its own table (args tuple -> entry), so that a look-up
    hashes the call's own arguments and allocates nothing. An entry is a list
    ``[value, weight, used, table, args]``; one queue holds every entry once,
    oldest first. Eviction is CLOCK (second chance), the usual approximation
    of LRU: an entry used since it was queued goes to the back, unused,
    instead of out. A hit only sets ``used``, so hits take no lock; inserting
    and evicting do. When full, a new entry is stored with probability ``admit``.
    """

    def __init__(self, budget: int) -> None:
        self.lock = threading.Lock()
        self.tables: list[dict[tuple[Any, ...], list[Any]]] = []
        self.queue: deque[list[Any]] = deque()
        self.budget = budget
        self.largest = budget // OVERSIZE_FRACTION
        self.bytes = 0
        self.admit = ADMIT_WHEN_FULL
        self.rng = random.Random(0)  # used with the lock held
        # Counted without the lock: under contention an increment may be lost.
        self.hits = 0
        self.misses = 0

    def evict(self) -> None:
        """Drops entries, oldest unused first, down to the budget (with the lock held)."""
        queue = self.queue
        chances = len(queue)  # one pass of second chances at most, even if hits race
        while self.bytes > self.budget:
            entry = queue.popleft()
            if entry[2] and chances > 0:
                chances -= 1
                entry[2] = False
                queue.append(entry)
            else:
                del entry[3][entry[4]]
                self.bytes -= entry[1]

    def set_budget(self, nbytes: int) -> None:
        with self.lock:
            self.budget = nbytes
            self.largest = nbytes // OVERSIZE_FRACTION
            self.evict()

    def clear(self) -> None:
        with self.lock:
            for table in self.tables:
                table.clear()
            self.queue.clear()
            self.bytes = 0
            self.hits = 0
            self.misses = 0
            self.rng.seed(0)


_MEMO = _Memo(DEFAULT_BUDGET)


def _weigh_strings(args: tuple[Any, ...], value: Any) -> int:
    # The generic weigher: the arguments' strings and a small value.
    total = ENTRY_BYTES + 64
    for arg in args:
        if isinstance(arg, str):
            total += STR_BYTES + len(arg)
    return total


def weigh_tokens(args: tuple[Any, ...], value: tuple[str, ...]) -> int:
    """Weigher of text (first argument) -> token tuple: the text, the tuple and its strings."""
    chars = len(args[0])
    return ENTRY_BYTES + STR_BYTES + chars + TUPLE_BYTES + TOKEN_BYTES * len(value) + chars


def memo(weigh: Weigher = _weigh_strings) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Memoises a pure function of hashable positional arguments in the shared text memo.

    Args:
        weigh: ``(args, value) -> bytes`` of one entry, key included; cheap
            (arithmetic on ``len``). The default counts the arguments' strings
            and a small value.

    Example:
        >>> @memo()
        ... def shout(text: str) -> str:
        ...     return text.upper()
        >>> shout("hi"), shout("hi"), shout.__wrapped__("ho")
        ('HI', 'HI', 'HO')
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        # The hit path is what every call pays, so it allocates nothing (the
        # args tuple is the key), takes no lock, and looks nothing up twice;
        # no **kwargs parameter either (it would build a dict per call).
        memo_ = _MEMO
        table: dict[tuple[Any, ...], list[Any]] = {}
        with memo_.lock:
            memo_.tables.append(table)
        get, setdefault = table.get, table.setdefault
        acquire, release = memo_.lock.acquire, memo_.lock.release
        queue = memo_.queue  # cleared in place, never replaced
        call: Callable[..., R] = fn

        @functools.wraps(fn)
        def cached(*args: Any) -> Any:
            entry = get(args)
            if entry is not None:
                entry[2] = True
                memo_.hits += 1
                return entry[0]
            memo_.misses += 1
            value = call(*args)  # no lock held: it may call other memoised functions
            weight = weigh(args, value)
            if weight <= memo_.largest:  # never true with a budget of 0
                entry = [value, weight, False, table, args]
                acquire()
                try:
                    if memo_.bytes + weight > memo_.budget and memo_.rng.random() >= memo_.admit:
                        return value  # full: stored with probability `admit` only
                    # Another thread may have stored the same value meanwhile: keep it.
                    if setdefault(args, entry) is entry:
                        queue.append(entry)
                        memo_.bytes += weight
                        if memo_.bytes > memo_.budget:
                            memo_.evict()
                finally:
                    release()
            return value

        return cast("Callable[P, R]", cached)

    return decorate


def set_budget(nbytes: int) -> None:
    """Sets the memo's budget in bytes (0: cache nothing) and evicts down to it.

    Raises:
        ValueError: ``nbytes`` is negative.

    Example:
        >>> set_budget(1 << 20)
        >>> stats()["budget"]
        1048576
        >>> set_budget(DEFAULT_BUDGET)
    """
    if nbytes < 0:
        raise ValueError(f"the text cache budget must be >= 0 bytes, got {nbytes}")
    _MEMO.set_budget(nbytes)


def stats() -> dict[str, int]:
    """``entries``, ``bytes`` (estimated), ``budget``, ``hits`` and ``misses`` of the memo.

    Example:
        >>> sorted(stats())
        ['budget', 'bytes', 'entries', 'hits', 'misses']
    """
    m = _MEMO
    with m.lock:
        return {
            "entries": len(m.queue),
            "bytes": m.bytes,
            "budget": m.budget,
            "hits": m.hits,
            "misses": m.misses,
        }


def clear() -> None:
    """Empties the memo and zeroes its hit and miss counts (the budget stays)."""
    _MEMO.clear()


class WordCache(Protocol[R_co]):
    """A word -> value function with ``functools.lru_cache``'s cache controls."""

    def __call__(self, word: str, /) -> R_co: ...

    def cache_clear(self) -> None: ...

    def cache_info(self) -> Any: ...


def word_cache(fn: Callable[[str], R]) -> WordCache[R]:
    """``functools.lru_cache`` of a word -> value function: at most `WORD_CACHE_SIZE`
    words, and words longer than `MAX_CACHED_WORD` characters computed, not cached.

    Example:
        >>> upper = word_cache(str.upper)
        >>> upper("cat"), upper("x" * 40) == "X" * 40, upper.cache_info().currsize
        ('CAT', True, 1)
    """
    cached = functools.lru_cache(maxsize=WORD_CACHE_SIZE)(fn)

    def lookup(word: str, /) -> R:
        return cached(word) if len(word) <= MAX_CACHED_WORD else fn(word)

    functools.update_wrapper(lookup, fn)
    lookup.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    lookup.cache_info = cached.cache_info  # type: ignore[attr-defined]
    return cast("WordCache[R]", lookup)
