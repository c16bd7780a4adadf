"""The text metrics' memo: one LRU cache per process, bounded by bytes, not entries.

BLEU, ROUGE and METEOR memoise their text-level work (tokens, n-gram counts,
the score of a pair) because references repeat over a stream: every checkpoint
of a run is scored against the same references. An entry-counted cache
(``functools.lru_cache(maxsize=65536)``) does not bound memory when an entry is
the n-gram Counter of a 10,000-character text (about 1 MB): a stream of unique
texts grew the server without limit. Here every text-level memoised function of
bleu, rouge and meteor shares one LRU whose entries are weighed in approximate
bytes, key included (the cache keeps the key's strings alive), and whose total
stays within one budget: ``--text-cache-mb``, 64 MiB by default, per process
(the server and each text worker process hold their own). A budget of 0 caches
nothing. An entry heavier than 1/16 of the budget is computed but never stored,
so that one huge text cannot flush everything else.

Weights are estimates from ``len()`` and ``sys.getsizeof`` of the containers
(never a walk over their contents), within a small factor of what tracemalloc
measures (tests/metrics/text/test_memo.py).

Word-level caches (a Porter stem, WordNet synonyms of one word) stay
``functools.lru_cache``, the cheapest look-up there is, on the hottest path:
`word_cache` bounds them to 32,768 words each and does not cache words longer
than 32 characters, so a hostile long "word" cannot pin memory either.

This module holds process-wide state on purpose (STYLE.md 6 otherwise): the
cache serves pure functions, like the ``lru_cache`` it replaces, and the budget
is handed in once by the server's wiring (`set_budget`).
"""

from __future__ import annotations

import functools
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, ParamSpec, Protocol, TypeVar, cast

__all__ = [
    "DEFAULT_BUDGET",
    "ENTRY_OVERHEAD",
    "MAX_CACHED_WORD",
    "OVERSIZE_FRACTION",
    "WORD_CACHE_SIZE",
    "WordCache",
    "clear",
    "memo",
    "set_budget",
    "stats",
    "tokens_bytes",
    "word_cache",
]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: Default budget of the text memo, in bytes (``--text-cache-mb 64``).
DEFAULT_BUDGET = 64 << 20

#: An entry heavier than budget / OVERSIZE_FRACTION is computed but not stored.
OVERSIZE_FRACTION = 16

#: Bytes of one entry beyond its arguments and its value: the key tuple, the
#: (value, weight) pair and the OrderedDict's slot and link.
ENTRY_OVERHEAD = 256

#: Most words each word-level cache holds.
WORD_CACHE_SIZE = 1 << 15

#: Longer words are computed, never cached.
MAX_CACHED_WORD = 32

# A str object beyond its characters: CPython's compact ASCII header and NUL.
_STR_HEADER = 49

#: Weigher: (the call's positional arguments, its value) -> approximate bytes of
#: the entry, key included.
Weigher = Callable[[tuple[Any, ...], Any], int]


class _Memo:
    """An LRU of (value, weight) entries whose weights sum to at most ``budget``."""

    def __init__(self, budget: int) -> None:
        # `memo` reads and writes these directly, with the lock held.
        self.lock = threading.Lock()
        self.entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self.budget = budget
        self.largest = budget // OVERSIZE_FRACTION
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def evict(self) -> None:
        """Drops least recently used entries down to the budget (with the lock held)."""
        entries = self.entries
        while self.bytes > self.budget:
            _, (_, weight) = entries.popitem(last=False)
            self.bytes -= weight

    def set_budget(self, nbytes: int) -> None:
        with self.lock:
            self.budget = nbytes
            self.largest = nbytes // OVERSIZE_FRACTION
            self.evict()

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.bytes = 0
            self.hits = 0
            self.misses = 0


_MEMO = _Memo(DEFAULT_BUDGET)


def _weigh_strings(args: tuple[Any, ...], value: Any) -> int:
    # The generic weigher: the arguments' strings and a small value.
    total = ENTRY_OVERHEAD + 64
    for arg in args:
        if isinstance(arg, str):
            total += sys.getsizeof(arg)
    return total


def memo(weigh: Weigher = _weigh_strings) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Memoises a pure function of hashable positional arguments in the shared text memo.

    Args:
        weigh: ``(args, value) -> bytes`` of one entry, key included; cheap
            (from ``len`` and ``sys.getsizeof``). The default counts the
            arguments' strings and a small value.

    Example:
        >>> @memo()
        ... def shout(text: str) -> str:
        ...     return text.upper()
        >>> shout("hi"), shout("hi"), shout.__wrapped__("ho")
        ('HI', 'HI', 'HO')
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        # Every call pays for the look-up: bound methods are looked up once,
        # acquire/release costs half of `with` here, and there is no **kwargs
        # parameter (it would build a dict per call).
        memo_ = _MEMO
        acquire, release = memo_.lock.acquire, memo_.lock.release
        entries = memo_.entries  # cleared in place, never replaced
        get, move_to_end = entries.get, entries.move_to_end
        tag = (fn,)  # in every key: functions share the dict, not entries
        call: Callable[..., R] = fn

        @functools.wraps(fn)
        def cached(*args: Any) -> Any:
            key = tag + args
            acquire()
            try:
                entry = get(key)
                if entry is not None:
                    move_to_end(key)
                    memo_.hits += 1
                    return entry[0]
                memo_.misses += 1
            finally:
                release()
            value = call(*args)  # outside the lock: it may call other memoised functions
            weight = weigh(args, value)
            if weight <= memo_.largest:  # never true with a budget of 0
                acquire()
                try:
                    # Another thread may have stored the same value meanwhile: replace it.
                    old = get(key)
                    entries[key] = (value, weight)
                    memo_.bytes += weight if old is None else weight - old[1]
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
            "entries": len(m.entries),
            "bytes": m.bytes,
            "budget": m.budget,
            "hits": m.hits,
            "misses": m.misses,
        }


def clear() -> None:
    """Empties the memo and zeroes its hit and miss counts (the budget stays)."""
    _MEMO.clear()


def tokens_bytes(count: int, chars: int) -> int:
    """Estimated bytes of a tuple of ``count`` token strings of ``chars`` characters in all.

    Example:
        >>> tokens_bytes(2, 6)  # ("the", "cat")
        160
    """
    # The tuple (40 + 8 per item) and each string (header + characters, ASCII).
    return 40 + count * (8 + _STR_HEADER) + chars


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
