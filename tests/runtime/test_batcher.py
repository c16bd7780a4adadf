"""The dynamic batcher: bounds, cancellation, OOM halving, de-duplication, delay, packing.

Most tests drive it with a fake encoder whose forward pass can be held on an
event, so that they assert on counts and behaviour rather than on timings.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, field

import pytest
import torch
from evalstream_server.runtime.batcher import (
    BatcherClosed,
    BatcherOverloaded,
    DynamicBatcher,
)
from evalstream_server.runtime.models import LoadedModel, ModelInfo, Tokenized

WAIT = 10.0  # seconds; only a ceiling for a hung test, never a timing assert

INFO = ModelInfo(
    name="fake",
    source="fake",
    layer=1,
    num_layers=1,
    max_length=16,
    tokenizer="Fake",
    special_ids=frozenset(),
    num_special=0,
    dtype="fp32",
    device="cpu",
)


@dataclass
class FakeEncoder:
    """Token count = word count; embedding = the text's word count as a tensor."""

    info: ModelInfo = INFO
    hold: threading.Event | None = None  # forward waits on it when set
    started: threading.Event = field(default_factory=threading.Event)
    oom_above: int | None = None  # forward raises OOM for larger batches
    tokenized: list[str] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)

    def tokenize(self, texts: Sequence[str]) -> list[Tokenized]:
        self.threads.add(threading.current_thread().name)
        self.tokenized.extend(texts)
        return [Tokenized(tuple(range(max(1, len(t.split())))), False) for t in texts]

    def forward(self, batch: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        self.started.set()
        if self.hold is not None:
            self.hold.wait(WAIT)
        if self.oom_above is not None and len(batch) > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        self.batches.append(len(batch))
        return [torch.full((len(ids), 2), float(len(ids))) for ids in batch]


@pytest.fixture
def held() -> Iterator[tuple[FakeEncoder, threading.Event]]:
    """A fake encoder whose forward pass blocks until the event is set."""
    release = threading.Event()
    encoder = FakeEncoder(hold=release)
    yield encoder, release
    release.set()


def _block_worker(batcher: DynamicBatcher, encoder: FakeEncoder) -> None:
    """Submits one sentence and waits until the worker is stuck in its forward pass."""
    batcher.submit(["blocker"])
    assert encoder.started.wait(WAIT)


def test_batcher_embeds_in_input_order() -> None:
    with DynamicBatcher(FakeEncoder(), max_delay=0.001) as batcher:
        out = batcher.embed(["a b c", "a", "a b"])
    assert [e.vectors[0, 0].item() for e in out] == [3.0, 1.0, 2.0]
    assert [len(e.token_ids) for e in out] == [3, 1, 2]


def test_batcher_overload_raises(held: tuple[FakeEncoder, threading.Event]) -> None:
    encoder, release = held
    batcher = DynamicBatcher(encoder, max_queue=3, max_delay=0.0)
    _block_worker(batcher, encoder)
    batcher.submit(["b", "c", "d"])
    with pytest.raises(BatcherOverloaded, match="3 sentences waiting, 1 more asked, limit 3"):
        batcher.submit(["e"])
    batcher.submit(["b", "c"])  # already queued: shares, takes no room
    stats = batcher.stats()
    assert (stats.queue_depth, stats.rejected, stats.dedup_hits) == (3, 1, 2)
    release.set()
    batcher.close()


def test_batcher_cancelled_callable_drops_work(held: tuple[FakeEncoder, threading.Event]) -> None:
    encoder, release = held
    batcher = DynamicBatcher(encoder, max_delay=0.0)
    _block_worker(batcher, encoder)
    gone = threading.Event()
    futures = batcher.submit(["dropped one", "dropped two"], cancelled=gone.is_set)
    kept = batcher.submit(["kept"])
    gone.set()
    release.set()
    assert kept[0].result(WAIT).vectors[0, 0].item() == 1.0
    batcher.close()
    assert all(f.cancelled() for f in futures)
    assert "dropped one" not in encoder.tokenized and "dropped two" not in encoder.tokenized
    assert batcher.stats().cancelled_dropped == 2


def test_batcher_cancelled_future_drops_work(held: tuple[FakeEncoder, threading.Event]) -> None:
    encoder, release = held
    batcher = DynamicBatcher(encoder, max_delay=0.0)
    _block_worker(batcher, encoder)
    (future,) = batcher.submit(["never run"])
    assert future.cancel()
    release.set()
    batcher.close()
    assert "never run" not in encoder.tokenized
    assert batcher.stats().cancelled_dropped == 1


def test_batcher_shared_sentence_runs_while_one_caller_remains(
    held: tuple[FakeEncoder, threading.Event],
) -> None:
    encoder, release = held
    batcher = DynamicBatcher(encoder, max_delay=0.0)
    _block_worker(batcher, encoder)
    (cancelled,) = batcher.submit(["shared"])
    (wanted,) = batcher.submit(["shared"])
    cancelled.cancel()
    release.set()
    assert wanted.result(WAIT).vectors[0, 0].item() == 1.0
    batcher.close()
    assert encoder.tokenized.count("shared") == 1


def test_batcher_embed_cancelled_raises() -> None:
    encoder = FakeEncoder(hold=threading.Event())
    batcher = DynamicBatcher(encoder, max_delay=0.0)
    with pytest.raises(CancelledError):
        batcher.embed(["x"], cancelled=lambda: True, poll=0.01)
    encoder.hold.set()  # type: ignore[union-attr]
    batcher.close()


def test_batcher_embed_timeout_raises() -> None:
    encoder = FakeEncoder(hold=threading.Event())
    batcher = DynamicBatcher(encoder, max_delay=0.0)
    with pytest.raises(TimeoutError, match="within 0.05 s"):
        batcher.embed(["x"], timeout=0.05)
    encoder.hold.set()  # type: ignore[union-attr]
    batcher.close()


def test_batcher_oom_halves_and_retries() -> None:
    encoder = FakeEncoder(oom_above=2)
    texts = [" ".join(["w"] * n) for n in range(1, 9)]
    with DynamicBatcher(encoder, max_delay=1.0, max_batch_size=8) as batcher:
        out = batcher.embed(texts)
        stats = batcher.stats()
    assert [e.vectors[0, 0].item() for e in out] == [float(n) for n in range(1, 9)]
    # 8 -> OOM -> 4 + 4 -> OOM each -> 2 + 2 + 2 + 2
    assert stats.oom_retries == 3
    assert stats.batches_run == 4
    assert encoder.batches == [2, 2, 2, 2]


def test_batcher_oom_on_one_sentence_fails_it() -> None:
    encoder = FakeEncoder(oom_above=0)
    with DynamicBatcher(encoder, max_delay=0.0) as batcher:
        (future,) = batcher.submit(["too big"])
        with pytest.raises(BatcherOverloaded, match="one sentence of 2 tokens"):
            future.result(WAIT)
        assert batcher.stats().failed == 1


def test_batcher_dedup_within_queue_and_cache(held: tuple[FakeEncoder, threading.Event]) -> None:
    encoder, release = held
    batcher = DynamicBatcher(encoder, max_delay=0.0)
    _block_worker(batcher, encoder)
    first = batcher.submit(["y", "y"])
    second = batcher.submit(["y", "z"])
    release.set()
    for f in first + second:
        f.result(WAIT)
    assert encoder.tokenized.count("y") == 1
    (again,) = batcher.submit(["y"])
    assert again.done() and again.result() is first[0].result()
    batcher.close()
    stats = batcher.stats()
    assert (stats.dedup_hits, stats.cache_hits) == (2, 1)


def test_batcher_lru_cache_evicts_oldest() -> None:
    encoder = FakeEncoder()
    with DynamicBatcher(encoder, max_delay=0.0, cache_size=2) as batcher:
        for text in ("a", "b", "c", "a"):
            batcher.embed([text])
    assert encoder.tokenized == ["a", "b", "c", "a"]  # "a" was evicted by "c"


def test_batcher_full_batch_does_not_wait_for_delay() -> None:
    # max_delay is far longer than the test ceiling: only a full batch can run.
    encoder = FakeEncoder()
    batcher = DynamicBatcher(encoder, max_delay=3600.0, max_batch_size=4)
    futures = [batcher.submit([f"s{i}"])[0] for i in range(4)]
    assert all(f.result(WAIT) is not None for f in futures)
    assert batcher.stats().batches_run == 1
    batcher.close()


def test_batcher_gathers_within_delay() -> None:
    encoder = FakeEncoder()
    batcher = DynamicBatcher(encoder, max_delay=0.5, max_batch_size=64)
    futures = [batcher.submit([f"s{i}"])[0] for i in range(5)]
    for f in futures:
        f.result(WAIT)
    assert batcher.stats().batches_run == 1
    assert encoder.batches == [5]
    batcher.close()


def test_batcher_close_flushes_queue_without_waiting_for_delay() -> None:
    encoder = FakeEncoder()
    batcher = DynamicBatcher(encoder, max_delay=3600.0)
    (future,) = batcher.submit(["late"])
    batcher.close(timeout=WAIT)
    assert future.result(0).vectors[0, 0].item() == 1.0
    with pytest.raises(BatcherClosed):
        batcher.submit(["after"])


def test_batcher_packs_under_padded_token_cap() -> None:
    encoder = FakeEncoder()
    texts = ["a b", "c d", "e f", "g h", "1 2 3 4 5", "6 7 8 9 0"]
    with DynamicBatcher(encoder, max_delay=1.0, max_tokens_per_batch=10) as batcher:
        batcher.embed(texts)
        stats = batcher.stats()
    assert encoder.batches == [4, 2]  # 4 x 2 = 8 padded tokens, then 2 x 5 = 10
    assert stats.padded_tokens == 18


def test_batcher_tokenizes_only_in_worker_thread() -> None:
    encoder = FakeEncoder()
    with DynamicBatcher(encoder, max_delay=0.0) as batcher:
        threads = [
            threading.Thread(target=batcher.embed, args=([f"t{i} x", "common"],)) for i in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
    assert encoder.threads == {"bertscore-batcher"}


def test_batcher_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="max_queue=0"):
        DynamicBatcher(FakeEncoder(), max_queue=0)


# ------------------------------------------------------------ with a real model


def test_batcher_truncates_and_flags(tiny_model: LoadedModel) -> None:
    with DynamicBatcher(tiny_model, max_delay=0.0) as batcher:
        long, short = batcher.embed([" ".join(["cat"] * 100), "the cat"])
        assert batcher.stats().truncated == 1
    assert long.truncated and len(long.token_ids) == tiny_model.max_length
    assert not short.truncated and len(short.token_ids) == 4
    assert long.vectors.shape == (tiny_model.max_length, 32)


def test_batcher_embedding_independent_of_batch(tiny_model: LoadedModel) -> None:
    text = "the quick brown fox"
    with DynamicBatcher(tiny_model, max_delay=0.0, cache_size=0) as batcher:
        (alone,) = batcher.embed([text])
    others = [" ".join(["dog"] * n) for n in range(1, 25)]
    with DynamicBatcher(tiny_model, max_delay=1.0, cache_size=0) as batcher:
        crowded = batcher.embed([*others, text])[-1]
    assert torch.allclose(alone.vectors, crowded.vectors, atol=1e-5)
    assert torch.allclose(alone.vectors.norm(dim=-1), torch.ones(6), atol=1e-5)


def test_batcher_cache_is_bounded_by_bytes() -> None:
    """A 768-byte budget: a one-word embedding weighs 16 bytes (2 fp32 + one 8-byte id)."""
    encoder = FakeEncoder()
    with DynamicBatcher(encoder, max_delay=0.0, cache_size=100, cache_bytes=48 * 16) as batcher:
        # a sixteenth of the budget (48 bytes) is the largest embedding cached: 3 words
        for text in ("a", "b", "c", "d"):
            batcher.embed([text])
        assert batcher._cached_bytes == 4 * 16
        batcher.embed(["x y z " * 10])  # 30 words: 30 * 16 = 480 bytes > 48: never cached
        batcher.embed(["x y z " * 10])
        assert encoder.tokenized.count("x y z " * 10) == 2
        for i in range(100):  # fill past the byte budget with distinct sentences
            batcher.embed([f"w{i} v{i}"])  # 2 words: 2 * 8 + 2 * 8 = 32 bytes
        assert batcher._cached_bytes <= 48 * 16
        assert len(batcher._cache) == (48 * 16) // 32
        batcher.embed(["w99 v99"])  # the most recent is still there
        assert encoder.tokenized.count("w99 v99") == 1


def test_batcher_cache_bytes_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="cache_bytes"):
        DynamicBatcher(FakeEncoder(), cache_bytes=-1)
