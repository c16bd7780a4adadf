"""BERTScore throughput: the shared dynamic batcher against bert-score's BERTScorer.

BERTScore (Zhang et al. 2020); reference implementation bert-score
(github.com/tiiiger/bert_score). Three figures on the same pairs, model and
layer, all in-process (bench/run.py measures the gRPC service path):

* evalstream: 8 client threads, each sending batches of 16 pairs through its
  own ``BertScoreAccumulator`` into one ``DynamicBatcher`` (cache off, so no
  sentence is answered without being embedded);
* bert-score: one ``BERTScorer`` (model loaded once) scoring the same 16-pair
  batches one after another, and scoring all pairs in one call (its best case);
* the opt-in bf16 mode against fp32: throughput and the largest |Δ| of any score.

Run: ``python bench/bench_bertscore.py [--model-dir DIR] [--pairs N]``. Without
``--model-dir`` it uses the fetched MiniLM model in the model cache when
present, else a tiny random BERT (say which in any figure you quote).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalstream_server.config import load_model_dir
from evalstream_server.metrics.text._types import TextPair
from evalstream_server.metrics.text.bertscore import BertScoreAccumulator
from evalstream_server.runtime.batcher import DynamicBatcher
from evalstream_server.runtime.models import (
    DEFAULT_LAYER,
    LoadedModel,
    default_model_dir,
    load_model,
    write_tiny_bert,
)

WORDS = (
    "the a red blue green big small man woman child dog cat car road house tree left right "
    "top bottom two three one yes no sitting standing holding near behind under over table "
    "chair window picture person people street water sky white black wooden"
).split()


def make_pairs(n: int, *, seed: int = 0) -> list[TextPair]:
    """``n`` VQA-like pairs (3-20 word predictions, 1-3 references), distinct sentences."""
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 20)))

    return [
        TextPair(f"{sentence()} {i}", tuple(f"{sentence()} {i}" for _ in range(rng.randint(1, 3))))
        for i in range(n)
    ]


def bench_batcher(
    model: LoadedModel, pairs: Sequence[TextPair], *, clients: int = 8, batch: int = 16
) -> tuple[float, list[float]]:
    """Pairs/s through one batcher from ``clients`` threads; and every pair's F1, in order."""
    chunks = [list(pairs[i : i + batch]) for i in range(0, len(pairs), batch)]
    f1: dict[int, float] = {}
    with DynamicBatcher(model, cache_size=0, max_delay=0.005) as batcher:

        def client(worker: int) -> None:
            acc = BertScoreAccumulator(batcher)
            for c in range(worker, len(chunks), clients):
                for j, scores in enumerate(acc.update(chunks[c]).pairs):
                    f1[c * batch + j] = scores[2].value or 0.0

        threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        stats = batcher.stats()
    print(
        f"  batcher: {stats.batches_run} batches, {stats.sentences_embedded} sentences, "
        f"{stats.padded_tokens} padded tokens",
        file=sys.stderr,
    )
    return len(pairs) / elapsed, [f1[i] for i in range(len(pairs))]


def bench_bert_score(
    model_dir: str, layer: int, pairs: Sequence[TextPair], *, batch: int = 16
) -> dict[str, float]:
    """Pairs/s of one BERTScorer (loaded once): 16-pair calls in sequence, and one call."""
    from bert_score import BERTScorer

    scorer = BERTScorer(model_type=model_dir, num_layers=layer, device="cpu")
    cands = [p.prediction for p in pairs]
    refs = [list(p.references) for p in pairs]
    start = time.perf_counter()
    for i in range(0, len(pairs), batch):
        scorer.score(cands[i : i + batch], refs[i : i + batch])
    per_batch = len(pairs) / (time.perf_counter() - start)
    start = time.perf_counter()
    scorer.score(cands, refs, batch_size=64)
    one_call = len(pairs) / (time.perf_counter() - start)
    return {"bert_score_16_pair_calls": per_batch, "bert_score_one_call": one_call}


def run(model_dir: str, layer: int, *, n_pairs: int = 512, repeats: int = 3) -> dict[str, Any]:
    """All figures for one model directory: medians over ``repeats`` interleaved rounds.

    The rounds alternate between the contenders so that a busy machine slows
    them alike.
    """
    import statistics

    pairs = make_pairs(n_pairs)
    rates: dict[str, list[float]] = {}
    f1s: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as cache:
        models = {
            dtype: load_model(
                model_dir, layer=layer, device="cpu", model_dir=Path(cache), dtype=dtype
            )
            for dtype in ("fp32", "bf16")
        }
        for model in models.values():
            bench_batcher(model, make_pairs(64, seed=1))  # warm-up
        for _ in range(repeats):
            for dtype, model in models.items():
                rate, f1s[dtype] = bench_batcher(model, pairs)
                rates.setdefault(f"evalstream_8_clients_{dtype}", []).append(rate)
            for key, rate in bench_bert_score(model_dir, layer, pairs).items():
                rates.setdefault(key, []).append(rate)
    out: dict[str, Any] = {"model_dir": model_dir, "layer": layer, "pairs": n_pairs}
    out.update({f"{key}_pairs_per_s": statistics.median(v) for key, v in rates.items()})
    out["bf16_max_abs_drift_f1"] = max(
        abs(a - b) for a, b in zip(f1s["fp32"], f1s["bf16"], strict=True)
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Prints the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--layer", type=int, default=None)
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    model_dir = args.model_dir
    layer = args.layer
    with tempfile.TemporaryDirectory() as tmp:
        if model_dir is None:
            fetched = default_model_dir(load_model_dir(None))
            if fetched.is_dir():
                model_dir, layer = str(fetched), layer or DEFAULT_LAYER
            else:
                model_dir = str(write_tiny_bert(Path(tmp) / "tiny-bert"))
                layer = layer or 2
        if layer is None:
            parser.error("--layer is needed with --model-dir")
        print(json.dumps(run(model_dir, layer, n_pairs=args.pairs, repeats=args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    from _machine import header

    print(header(), flush=True)
    sys.exit(main())
