"""One dynamic batcher in front of the BERTScore model, shared by every stream.

bert-score (Zhang et al. 2020; github.com/tiiiger/bert_score) embeds the
sentences of one ``score`` call in length-sorted batches. A server sees many
small calls from many streams instead, so their sentences meet here: callers
:meth:`~DynamicBatcher.submit` sentences and get futures of :class:`Embedding`;
one worker thread gathers them for at most ``max_delay``, drops those whose
callers cancelled, tokenises, packs length-sorted batches under a padded-token
budget, and halves a batch on CUDA out-of-memory. Repeated sentences are
embedded once (shared while waiting, then an LRU cache), and a full queue
raises :class:`BatcherOverloaded` rather than letting latency grow.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Protocol

from evalstream_server.runtime.models import ModelInfo, Tokenized

__all__ = [
    "BatcherClosed",
    "BatcherOverloaded",
    "BatcherStats",
    "DynamicBatcher",
    "Embedding",
    "Encoder",
]


class BatcherOverloaded(RuntimeError):
    """The queue is full, or a sentence does not fit in accelerator memory (RESOURCE_EXHAUSTED)."""

    def __init__(self, message: str, *, queue_full: bool = False) -> None:
        super().__init__(message)
        self.queue_full = queue_full  # the queue limit (--bertscore-max-queue), not memory


class BatcherClosed(RuntimeError):
    """The batcher was closed (server shutting down: UNAVAILABLE)."""


class Encoder(Protocol):
    """What the batcher needs of a model (a ``runtime.models.LoadedModel``)."""

    @property
    def info(self) -> ModelInfo:
        """Model name, layer, maximum length, special tokens, dtype and device."""
        ...

    def tokenize(self, texts: Sequence[str]) -> list[Tokenized]:
        """Token ids per sentence, truncated to the model's maximum length."""
        ...

    def forward(self, batch: Sequence[Sequence[int]]) -> list[Any]:
        """One embedding (tokens x hidden tensor) per token-id sequence."""
        ...


@dataclass(frozen=True, slots=True, eq=False)
class Embedding:
    """A sentence's token embeddings.

    Attributes:
        token_ids: Token ids, special tokens included.
        vectors: (len(token_ids), hidden) fp32 tensor of unit-norm rows, on CPU.
        truncated: The sentence was cut to the model's maximum length.
    """

    token_ids: tuple[int, ...]
    vectors: Any
    truncated: bool


def _weight(emb: Embedding) -> int:
    """Bytes an embedding holds in the cache: its vectors and token ids (8 bytes each).

    Tensors and arrays report ``nbytes``; a stand-in encoder's other objects are
    weighed by ``sys.getsizeof``.
    """
    nbytes = getattr(emb.vectors, "nbytes", None)
    if not isinstance(nbytes, int):
        nbytes = sys.getsizeof(emb.vectors)
    return nbytes + 8 * len(emb.token_ids)


@dataclass(frozen=True, slots=True)
class BatcherStats:
    """Counters for Prometheus (totals since start, except the two gauges).

    Attributes:
        queue_depth: Distinct sentences waiting for the worker (gauge).
        inflight: Distinct sentences the worker holds now (gauge).
        batches_run: Forward passes that succeeded.
        sentences_embedded: Sentences embedded by the model.
        padded_tokens: Sum over batches of batch size x longest sentence.
        truncated: Sentences cut to the model's maximum length.
        oom_retries: Batches halved after an out-of-memory error.
        dedup_hits: Sentences that joined one already waiting or running.
        cache_hits: Sentences answered from the LRU cache.
        cancelled_dropped: Sentences dropped because every caller had cancelled.
        rejected: Sentences refused because the queue was full.
        failed: Sentences whose embedding failed with an error.
    """

    queue_depth: int
    inflight: int
    batches_run: int
    sentences_embedded: int
    padded_tokens: int
    truncated: int
    oom_retries: int
    dedup_hits: int
    cache_hits: int
    cancelled_dropped: int
    rejected: int
    failed: int


@dataclass(slots=True)
class _Waiter:
    future: Future[Embedding]
    cancelled: Callable[[], bool] | None

    def gone(self) -> bool:
        if self.future.cancelled():
            return True
        if self.cancelled is not None and self.cancelled():
            self.future.cancel()
            return True
        return False


@dataclass(slots=True)
class _Entry:
    text: str
    arrived: float
    waiters: list[_Waiter] = field(default_factory=list)
    tokens: Tokenized | None = None


def _oom_errors() -> tuple[type[BaseException], ...]:
    try:
        import torch
    except ImportError:  # pragma: no cover - the model needs torch anyway
        return ()
    return (torch.cuda.OutOfMemoryError,)


def _free_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


class DynamicBatcher:
    """Groups sentences from every caller into length-bucketed batches for one model.

    Example:
        >>> class Echo:  # a stand-in model: the "embedding" is the token count
        ...     info = None
        ...     def tokenize(self, texts):
        ...         from evalstream_server.runtime.models import Tokenized
        ...         return [Tokenized(tuple(range(len(t.split()))), False) for t in texts]
        ...     def forward(self, batch):
        ...         return [len(ids) for ids in batch]
        >>> with DynamicBatcher(Echo(), max_delay=0.001) as batcher:
        ...     [e.vectors for e in batcher.embed(["a b", "c", "a b"])]
        [2, 1, 2]
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        max_tokens_per_batch: int = 16_384,
        max_batch_size: int = 128,
        max_delay: float = 0.005,
        max_queue: int = 4_096,
        cache_size: int = 4_096,
        cache_bytes: int = 256 << 20,
    ) -> None:
        """Starts the worker thread.

        Args:
            encoder: The model (a loaded :class:`~evalstream_server.runtime.models.LoadedModel`).
            max_tokens_per_batch: Cap on padded tokens per forward pass
                (batch size x longest sentence); a single longer sentence
                still runs alone.
            max_batch_size: Cap on sentences per forward pass.
            max_delay: Seconds the worker waits after the oldest waiting
                sentence to gather more (unless ``max_batch_size`` already wait).
            max_queue: Distinct sentences allowed to wait; beyond it ``submit``
                raises :class:`BatcherOverloaded`.
            cache_size: Embeddings kept in the LRU cache (0 disables it).
            cache_bytes: Bytes of vectors and token ids the cache may hold; the
                least recently used go first past it, and an embedding larger
                than a sixteenth of it is not cached. (A count alone does not
                bound memory: a 512-token sentence's vectors take 0.8 MB with a
                384-wide model, 4,096 of them 3 GB.)

        Raises:
            ValueError: a limit is not positive.
        """
        if max_tokens_per_batch < 1 or max_batch_size < 1 or max_queue < 1:
            raise ValueError(
                f"batcher limits must be positive: max_tokens_per_batch={max_tokens_per_batch}, "
                f"max_batch_size={max_batch_size}, max_queue={max_queue}"
            )
        if max_delay < 0 or cache_size < 0 or cache_bytes < 0:
            raise ValueError(
                f"max_delay ({max_delay}), cache_size ({cache_size}) and cache_bytes "
                f"({cache_bytes}) must not be negative"
            )
        self.encoder = encoder
        self._max_tokens = max_tokens_per_batch
        self._max_batch = max_batch_size
        self._max_delay = max_delay
        self._max_queue = max_queue
        self._cache_size = cache_size
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0  # what the cache's entries weigh (_weight), under _cond
        self._oom = _oom_errors()
        self._cond = threading.Condition()
        self._pending: dict[str, _Entry] = {}
        self._inflight: dict[str, _Entry] = {}
        self._cache: OrderedDict[str, Embedding] = OrderedDict()
        self._closed = False
        self._counts = dict.fromkeys(
            (
                "batches_run",
                "sentences_embedded",
                "padded_tokens",
                "truncated",
                "oom_retries",
                "dedup_hits",
                "cache_hits",
                "cancelled_dropped",
                "rejected",
                "failed",
            ),
            0,
        )
        self._worker = threading.Thread(target=self._run, name="bertscore-batcher", daemon=True)
        self._worker.start()

    # -- callers -------------------------------------------------------------

    def submit(
        self, texts: Sequence[str], *, cancelled: Callable[[], bool] | None = None
    ) -> list[Future[Embedding]]:
        """Queues sentences; returns one future per sentence, in order.

        Args:
            texts: Sentences (repeats are embedded once).
            cancelled: Polled by the worker before it runs the sentences: once
                it returns True they are dropped (their futures cancelled)
                unless another caller still wants them. Cancelling a future
                has the same effect for that sentence.

        Raises:
            BatcherOverloaded: the sentences would overfill the queue (none is queued).
            BatcherClosed: the batcher is closed.
        """
        futures: list[Future[Embedding]] = []
        with self._cond:
            if self._closed:
                raise BatcherClosed("the BERTScore batcher is closed (server shutting down)")
            fresh = {t for t in texts if t not in self._cache}
            fresh -= self._pending.keys() | self._inflight.keys()
            if len(self._pending) + len(fresh) > self._max_queue:
                self._counts["rejected"] += len(fresh)
                raise BatcherOverloaded(
                    f"BERTScore queue is full: {len(self._pending)} sentences waiting, "
                    f"{len(fresh)} more asked, limit {self._max_queue}",
                    queue_full=True,
                )
            now = time.monotonic()
            for text in texts:
                future: Future[Embedding] = Future()
                futures.append(future)
                cached = self._cache.get(text)
                if cached is not None:
                    self._cache.move_to_end(text)
                    self._counts["cache_hits"] += 1
                    future.set_running_or_notify_cancel()
                    future.set_result(cached)
                    continue
                entry = self._pending.get(text) or self._inflight.get(text)
                if entry is None:
                    entry = _Entry(text, now)
                    self._pending[text] = entry
                else:
                    self._counts["dedup_hits"] += 1
                entry.waiters.append(_Waiter(future, cancelled))
            self._cond.notify()
        return futures

    def embed(
        self,
        texts: Sequence[str],
        *,
        cancelled: Callable[[], bool] | None = None,
        timeout: float | None = None,
        poll: float = 0.05,
    ) -> list[Embedding]:
        """Submits and waits: the blocking call a gRPC handler thread makes.

        Args:
            texts: Sentences.
            cancelled: As for :meth:`submit`; also ends the wait early.
            timeout: Seconds to wait in all (None: no limit).
            poll: Seconds between checks of ``cancelled`` while waiting.

        Raises:
            BatcherOverloaded: the queue is full, or a sentence does not fit in memory.
            TimeoutError: ``timeout`` passed (the sentences are cancelled).
            concurrent.futures.CancelledError: ``cancelled`` returned True.
            BatcherClosed: the batcher is closed.
        """
        futures = self.submit(texts, cancelled=cancelled)
        deadline = None if timeout is None else time.monotonic() + timeout
        out: list[Embedding] = []
        try:
            for future in futures:
                while True:
                    wait = poll if cancelled is not None else None
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise TimeoutError(
                                f"BERTScore embeddings not ready within {timeout} s "
                                f"({len(texts)} sentences)"
                            )
                        wait = left if wait is None else min(wait, left)
                    try:
                        out.append(future.result(timeout=wait))
                        break
                    except FutureTimeout:
                        if cancelled is not None and cancelled():
                            raise CancelledError("the caller cancelled") from None
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return out

    def stats(self) -> BatcherStats:
        """A snapshot of the counters."""
        with self._cond:
            return BatcherStats(
                queue_depth=len(self._pending), inflight=len(self._inflight), **self._counts
            )

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def close(self, *, timeout: float | None = None) -> None:
        """Refuses new work, lets the worker finish what is queued, and joins it.

        Args:
            timeout: Seconds to wait for the worker (None: until it is done).
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._worker:
            self._worker.join(timeout)

    def __enter__(self) -> DynamicBatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the worker ----------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                oldest = next(iter(self._pending.values())).arrived
                deadline = oldest + self._max_delay
                while not self._closed and len(self._pending) < self._max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                entries = list(self._pending.values())
                self._pending = {}
                self._inflight.update((e.text, e) for e in entries)
            try:
                self._process(entries)
            except BaseException as exc:  # noqa: BLE001 - never leave a caller hanging
                self._fail(entries, exc)

    def _wanted(self, entries: list[_Entry]) -> list[_Entry]:
        """Drops cancelled callers, and sentences no caller wants any more."""
        kept: list[_Entry] = []
        with self._cond:
            for entry in entries:
                entry.waiters = [w for w in entry.waiters if not w.gone()]
                if entry.waiters:
                    kept.append(entry)
                else:
                    self._inflight.pop(entry.text, None)
                    self._counts["cancelled_dropped"] += 1
        return kept

    def _process(self, entries: list[_Entry]) -> None:
        entries = self._wanted(entries)
        if not entries:
            return
        try:
            tokenized = self.encoder.tokenize([e.text for e in entries])
        except Exception as exc:  # noqa: BLE001 - reported to the callers
            self._fail(entries, exc)
            return
        for entry, tokens in zip(entries, tokenized, strict=True):
            entry.tokens = tokens
        entries.sort(key=lambda e: len(e.tokens.ids) if e.tokens else 0)
        for batch in self._pack(entries):
            batch = self._wanted(batch)
            if batch:
                self._run_batch(batch)

    def _pack(self, entries: list[_Entry]) -> list[list[_Entry]]:
        """Length-sorted entries into batches under the padded-token and size caps."""
        batches: list[list[_Entry]] = []
        current: list[_Entry] = []
        for entry in entries:
            length = len(entry.tokens.ids) if entry.tokens else 0
            # Sorted by length, so the newcomer is the longest of the batch.
            if current and (
                (len(current) + 1) * length > self._max_tokens or len(current) >= self._max_batch
            ):
                batches.append(current)
                current = []
            current.append(entry)
        if current:
            batches.append(current)
        return batches

    def _run_batch(self, batch: list[_Entry]) -> None:
        stack = [batch]
        while stack:
            part = stack.pop()
            ids = [e.tokens.ids if e.tokens else () for e in part]
            try:
                vectors = self.encoder.forward(ids)
            except self._oom as exc:
                _free_accelerator_memory()
                with self._cond:
                    self._counts["oom_retries"] += 1
                if len(part) == 1:
                    self._fail(
                        part,
                        BatcherOverloaded(
                            f"out of accelerator memory embedding one sentence of "
                            f"{len(ids[0])} tokens"
                        ),
                        cause=exc,
                    )
                    continue
                middle = len(part) // 2
                stack.append(part[middle:])
                stack.append(part[:middle])  # shorter half first
                continue
            except Exception as exc:  # noqa: BLE001 - reported to the callers
                self._fail(part, exc)
                continue
            self._deliver(part, vectors, padded=len(part) * max(len(i) for i in ids))

    def _deliver(self, part: list[_Entry], vectors: Sequence[Any], *, padded: int) -> None:
        done: list[tuple[list[_Waiter], Embedding]] = []
        with self._cond:
            self._counts["batches_run"] += 1
            self._counts["sentences_embedded"] += len(part)
            self._counts["padded_tokens"] += padded
            for entry, vec in zip(part, vectors, strict=True):
                tokens = entry.tokens or Tokenized((), False)
                emb = Embedding(tokens.ids, vec, tokens.truncated)
                self._counts["truncated"] += int(tokens.truncated)
                self._inflight.pop(entry.text, None)
                weight = _weight(emb)
                if self._cache_size and weight <= self._cache_bytes // 16:
                    old = self._cache.pop(entry.text, None)
                    if old is not None:
                        self._cached_bytes -= _weight(old)
                    self._cache[entry.text] = emb
                    self._cached_bytes += weight
                    while (
                        len(self._cache) > self._cache_size
                        or self._cached_bytes > self._cache_bytes
                    ):
                        self._cached_bytes -= _weight(self._cache.popitem(last=False)[1])
                done.append((list(entry.waiters), emb))
        for waiters, emb in done:
            for waiter in waiters:
                if waiter.future.set_running_or_notify_cancel():
                    waiter.future.set_result(emb)

    def _fail(
        self, entries: list[_Entry], exc: BaseException, *, cause: BaseException | None = None
    ) -> None:
        if cause is not None:
            exc.__cause__ = cause
        with self._cond:
            waiters: list[_Waiter] = []
            for entry in entries:
                if self._inflight.pop(entry.text, None) is not None:
                    self._counts["failed"] += 1
                    waiters.extend(entry.waiters)
        for waiter in waiters:
            if not waiter.future.done() and waiter.future.set_running_or_notify_cancel():
                waiter.future.set_exception(exc)
