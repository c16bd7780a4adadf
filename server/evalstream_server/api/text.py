"""ScoreText's streams: the text metrics' accumulators of one stream, and the CPU workers.

BERTScore runs on the shared dynamic batcher while BLEU, ROUGE and METEOR are computed on
the handler thread and, with more than one core, in spawned worker processes
(`CpuWorkers`) that compute per-pair statistics; the accumulators fold them in pair
order, so the numbers are those of one thread. Each process has its own text memo.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
from evalstream.v1 import scoring_pb2

from evalstream_server.api._convert import families_from_pb, text_options_from_pb
from evalstream_server.api._status import name_limit_flags
from evalstream_server.config import raise_hint
from evalstream_server.errors import FieldViolation
from evalstream_server.metrics.text import _memo
from evalstream_server.metrics.text._types import Score, TextAccumulator, TextBatchScores, TextPair
from evalstream_server.metrics.text.registry import (
    make_accumulator,
    validate_options,
    validate_pairs,
)
from evalstream_server.runtime.batcher import BatcherClosed, BatcherOverloaded
from evalstream_server.runtime.bertscore import BertScoreRuntime
from evalstream_server.runtime.models import ModelNotReady
from evalstream_server.status import abort, invalid

#: Smallest batch whose CPU metrics are shared with worker processes (below it,
#: the round trip costs more than it saves).
MIN_PAIRS_TO_SHARE = 32

#: Most worker processes (one core stays with the gRPC threads).
MAX_CPU_WORKERS = 4


class _Folding(Protocol):
    def fold(self, pairs: Sequence[TextPair], values: Sequence[Any]) -> TextBatchScores: ...


def _pair_values(family: str) -> Callable[..., list[Any]]:
    # bleu, rouge and meteor each export pair_values(pairs, *, options), a
    # module-level function: it pickles by name, so workers import only metrics.
    module = importlib.import_module(f"evalstream_server.metrics.text.{family}")
    return module.pair_values  # type: ignore[no-any-return]


def _exit_with_parent(parent: int) -> None:
    # Worker initializer: a server killed outright (SIGKILL, OOM) cannot shut its
    # pool down, and a worker blocked on its queue would then live on.
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _start_worker(parent: int, cache_bytes: int) -> None:
    # Worker initializer: the server's text memo budget, and exit with the server.
    _memo.set_budget(cache_bytes)
    _exit_with_parent(parent)


def _warm_worker() -> bool:
    # Imports and WordNet, before the worker is given pairs.
    from evalstream_server.metrics.text import bleu, meteor, rouge  # noqa: F401

    return meteor.wordnet_available()


class CpuWorkers:
    """Worker processes computing BLEU, ROUGE and METEOR per-pair statistics.

    Spawned (never forked: the server has gRPC threads) on first use; until they
    have imported the metrics and loaded WordNet, `share` declines and batches
    are scored on the handler thread alone. A broken pool is never retried.
    Each worker's text memo gets ``cache_bytes`` (the server's own budget).
    """

    def __init__(self, workers: int, *, cache_bytes: int = _memo.DEFAULT_BUDGET) -> None:
        self.workers = workers
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(os.getpid(), cache_bytes),
        )
        self._ready = threading.Event()
        self._broken = False
        warm = [self._pool.submit(_warm_worker) for _ in range(workers)]

        def settle() -> None:
            try:
                for future in warm:
                    future.result()
            except Exception:  # noqa: BLE001 - a pool that cannot warm up is not used
                self._broken = True
            self._ready.set()

        threading.Thread(target=settle, name="cpu-workers-warm", daemon=True).start()

    def close(self) -> None:
        """Stops the worker processes (queued shares are cancelled)."""
        self._broken = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def usable(self) -> bool:
        return self._ready.is_set() and not self._broken

    def share(
        self, family: str, options: object, pairs: Sequence[TextPair]
    ) -> tuple[Sequence[TextPair], list[concurrent.futures.Future[list[Any]]]]:
        """Submits all but this thread's share of ``pairs``; returns (that share, futures)."""
        if not self.usable or len(pairs) < MIN_PAIRS_TO_SHARE:
            return pairs, []
        size = -(-len(pairs) // (self.workers + 1))
        try:
            futures = [
                self._pool.submit(
                    _pair_values(family), list(pairs[start : start + size]), options=options
                )
                for start in range(size, len(pairs), size)
            ]
        except (RuntimeError, concurrent.futures.BrokenExecutor):  # shut down or broken
            self._broken = True
            return pairs, []
        return pairs[:size], futures

    def gather(
        self,
        family: str,
        options: object,
        pairs: Sequence[TextPair],
        local: list[Any],
        futures: list[concurrent.futures.Future[list[Any]]],
    ) -> list[Any]:
        """This thread's values followed by the workers', in pair order."""
        values = list(local)
        for future in futures:
            try:
                values.extend(future.result())
            except concurrent.futures.BrokenExecutor:
                # A dead worker: compute its share here (same function, same numbers).
                self._broken = True
                values.extend(_pair_values(family)(pairs[len(values) :], options=options))
                return values
        return values


def default_workers() -> int:
    """Worker processes for the CPU text metrics: one per core beyond the first, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(MAX_CPU_WORKERS, (cores or 1) - 1)


#: Fields whose size limits a flag raises (field pattern -> Config field), for the refusals.
_TEXT_LIMITS = {
    "pairs": "max_pairs_per_batch",
    r"pairs\[\d+\]\.references": "max_references_per_pair",
    r"pairs\[\d+\]\.(prediction|references\[\d+\])": "max_chars_per_text",
}


@dataclass(frozen=True, slots=True)
class TextLimits:
    """Per-message limits of ScoreText (configured by flags)."""

    max_pairs_per_batch: int = 1_000
    max_references: int = 16
    max_chars: int = 10_000
    bertscore_timeout_seconds: float = 300.0
    warm_up_timeout_seconds: float = 120.0


class TextStream:
    """One ScoreText stream: its options, accumulators and the batches so far."""

    def __init__(
        self,
        *,
        limits: TextLimits,
        bertscore: BertScoreRuntime,
        pool: concurrent.futures.Executor,
        context: grpc.ServicerContext,
        workers: CpuWorkers | None = None,
    ) -> None:
        self._limits = limits
        self._bertscore = bertscore
        self._pool = pool
        self._context = context
        self._options_pb: scoring_pb2.TextOptions | None = None
        self._accumulators: dict[str, TextAccumulator] = {}
        self._family_options: dict[str, object] = {}
        self._workers: CpuWorkers | None = None
        self._shared_workers = workers
        self.pairs_total = 0

    def start(self, pb: scoring_pb2.TextOptions) -> None:
        """Fixes the stream's options and builds its accumulators (first batch)."""
        context = self._context
        families, violations = families_from_pb(pb)
        options = text_options_from_pb(pb)
        for family in families:
            if family in options:
                violations += validate_options(family, options[family])
        if violations:
            invalid(context, violations)
        for family in families:
            if family == "bertscore":
                self._accumulators[family] = self._bertscore_accumulator(pb.bertscore)
                continue
            try:
                self._accumulators[family] = make_accumulator(family, options[family])
            except RuntimeError as exc:  # WordNetMissing: never a silently different number
                abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"{family}: {exc}")
            self._family_options[family] = options[family]
        if self._family_options:
            self._workers = self._shared_workers
        self._options_pb = pb

    def _bertscore_accumulator(self, pb: scoring_pb2.BertScoreOptions) -> TextAccumulator:
        from evalstream_server.metrics.text.bertscore import BaselineNotFound, BertScoreAccumulator

        context = self._context
        try:
            batcher = self._bertscore.batcher()
        except ModelNotReady as exc:
            state = self._bertscore.state
            code = (
                grpc.StatusCode.UNAVAILABLE
                if state == "loading"
                else grpc.StatusCode.FAILED_PRECONDITION
            )
            abort(context, code, f"bertscore: {exc}")
        try:
            return BertScoreAccumulator(
                batcher,
                idf=pb.idf,
                rescale_with_baseline=pb.rescale_with_baseline,
                timeout=self._limits.bertscore_timeout_seconds,
                cancelled=lambda: not context.is_active(),
            )
        except BaselineNotFound as exc:
            abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"options.bertscore.rescale_with_baseline: {exc}",
                [FieldViolation("options.bertscore.rescale_with_baseline", str(exc))],
            )

    def same_options(self, pb: scoring_pb2.TextOptions) -> bool:
        return self._options_pb == pb

    def score(self, pairs: Sequence[TextPair]) -> dict[str, TextBatchScores]:
        """Scores a batch with every family; BERTScore overlaps the CPU metrics."""
        context = self._context
        violations = validate_pairs(
            pairs,
            max_pairs=self._limits.max_pairs_per_batch,
            max_references=self._limits.max_references,
            max_chars=self._limits.max_chars,
            reference_count=None,
        )
        if violations:
            invalid(context, name_limit_flags(violations, _TEXT_LIMITS))
        pending = None
        if "bertscore" in self._accumulators:
            pending = self._pool.submit(self._accumulators["bertscore"].update, pairs)
        results = self._score_cpu(pairs)
        if pending is not None:
            try:
                results["bertscore"] = pending.result()
            except BatcherOverloaded as exc:
                hint = f", or {raise_hint('bertscore_max_queue')}" if exc.queue_full else ""
                abort(
                    context,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"bertscore: {exc}; retry later{hint}",
                )
            except (BatcherClosed, ModelNotReady) as exc:
                abort(context, grpc.StatusCode.UNAVAILABLE, f"bertscore: {exc}")
            except TimeoutError as exc:
                abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, f"bertscore: {exc}")
            except concurrent.futures.CancelledError:
                abort(context, grpc.StatusCode.CANCELLED, "bertscore: the call was cancelled")
        self.pairs_total += len(pairs)
        return {f: results[f] for f in self._accumulators}

    def _score_cpu(self, pairs: Sequence[TextPair]) -> dict[str, TextBatchScores]:
        # BLEU, ROUGE, METEOR: shares go to the workers first, then this thread
        # computes its own, then every family folds its values in pair order.
        workers = self._workers
        if workers is None:
            return {f: self._accumulators[f].update(pairs) for f in self._family_options}
        shared = {f: workers.share(f, o, pairs) for f, o in self._family_options.items()}
        results = {}
        for family, options in self._family_options.items():
            mine, futures = shared[family]
            local = _pair_values(family)(mine, options=options)
            values = workers.gather(family, options, pairs, local, futures)
            accumulator: _Folding = self._accumulators[family]  # type: ignore[assignment]
            results[family] = accumulator.fold(pairs, values)
        return results

    def running(self) -> list[Score]:
        return [s for acc in self._accumulators.values() for s in acc.running]
