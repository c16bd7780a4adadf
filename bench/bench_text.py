"""Text metrics in-process: evalstream's accumulators beside the reference libraries.

On the same pairs, per family:

* reference: what a user would call in-process: sacrebleu ``BLEU(effective_order=
  True).sentence_score`` per pair plus ``BLEU().corpus_score`` over all pairs;
  rouge-score ``RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=True)
  .score_multi`` per pair; NLTK ``meteor_score`` per pair on ``word_tokenize(...,
  preserve_line=True)`` tokens;
* ours: ``make_accumulator(family, defaults).update`` in batches, then ``running``.

"cold" clears evalstream's memo caches before the timed run (a fresh server
seeing these pairs for the first time); "warm" runs again with them filled (a
server that has seen the words before). Each figure is the best of ``--repeat``.
The text memo's budget is ``--text-cache-mb`` (the server's default, 64).

``--checkpoints K`` then scores the pairs with all three families as a run's
checkpoints are scored: K times, new predictions each time (the pair's
prediction with " ckpt<k>" appended), the same references, one memo shared by
the families, as in one server process.

Pairs come from JSONL files of ``{"prediction": ..., "references": [...]}`` in
``--pairs-dir`` when given (other lines are skipped), otherwise from generated
VQA-style text (short answers, several references).

    python bench/bench_text.py                     # 5000 generated pairs
    python bench/bench_text.py --pairs-dir DIR --n 2000
    python bench/bench_text.py --pairs-dir DIR --n 2000 --checkpoints 8 --families none
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from evalstream_server.metrics.text import _memo
from evalstream_server.metrics.text import bleu as _bleu
from evalstream_server.metrics.text import meteor as _meteor
from evalstream_server.metrics.text import rouge as _rouge
from evalstream_server.metrics.text._types import TextPair
from evalstream_server.metrics.text.registry import (
    BleuOptions,
    MeteorOptions,
    RougeOptions,
    make_accumulator,
)

FAMILIES = ("bleu", "rouge", "meteor")
_OPTIONS = {"bleu": BleuOptions(), "rouge": RougeOptions(), "meteor": MeteorOptions()}
_MODULES: dict[str, ModuleType] = {"bleu": _bleu, "rouge": _rouge, "meteor": _meteor}

_COLORS = "red blue green white black yellow brown gray orange pink purple silver".split()
_OBJECTS = (
    "man woman child dog dogs cat cats horse car cars bus truck bike bicycle umbrella table "
    "chair plate pizza sandwich banana bananas phone laptop kite frisbee ball bat skateboard "
    "surfboard tree trees building sign clock window door bed couch tv giraffe zebra elephant"
).split()
_VERBS = (
    "sitting standing running walking eating riding holding playing sleeping flying "
    "looking parked crossing jumping surfing skiing reading talking"
).split()
_PLACES = "beach street kitchen park field table road snow water grass room sky city".split()
_SYNONYMS = {
    "man": ["guy", "person"],
    "woman": ["lady", "person"],
    "car": ["automobile", "vehicle"],
    "dog": ["puppy", "canine"],
    "big": ["large", "huge"],
    "small": ["little", "tiny"],
    "bicycle": ["bike", "cycle"],
    "couch": ["sofa"],
    "tv": ["television"],
}


def _answer(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.2:
        return rng.choice(["yes", "no"])
    if kind < 0.35:
        return str(rng.randint(0, 12))
    if kind < 0.5:
        return rng.choice(_COLORS)
    if kind < 0.7:
        return f"{rng.choice(['a', 'the', 'two', 'big', 'small'])} {rng.choice(_OBJECTS)}"
    obj = rng.choice(_OBJECTS)
    return (
        f"a {rng.choice(_COLORS)} {obj} {rng.choice(_VERBS)} on the {rng.choice(_PLACES)}"
        if kind < 0.9
        else f"the {obj} is {rng.choice(_VERBS)} near a {rng.choice(_OBJECTS)}."
    )


def _variant(rng: random.Random, text: str) -> str:
    words = text.split()
    out = []
    for w in words:
        r = rng.random()
        if w in _SYNONYMS and r < 0.5:
            out.append(rng.choice(_SYNONYMS[w]))
        elif r < 0.1:
            continue
        elif r < 0.2:
            out.append(rng.choice(_OBJECTS + _COLORS))
        elif r < 0.25:
            out.append(w.capitalize())
        else:
            out.append(w)
    return " ".join(out) if out else text


def generate_pairs(n: int, seed: int) -> list[TextPair]:
    """``n`` unique VQA-style pairs (short answers, 1-5 references).

    Example:
        >>> pairs = generate_pairs(3, seed=0)
        >>> len(pairs), all(p.references for p in pairs)
        (3, True)
    """
    rng = random.Random(seed)
    seen: set[tuple[str, tuple[str, ...]]] = set()
    out: list[TextPair] = []
    while len(out) < n:
        truth = _answer(rng)
        refs = tuple(
            truth if rng.random() < 0.5 else _variant(rng, truth) for _ in range(rng.randint(1, 5))
        )
        pred = (
            truth
            if rng.random() < 0.3
            else (_variant(rng, truth) if rng.random() < 0.7 else _answer(rng))
        )
        key = (pred, refs)
        if key in seen:
            continue
        seen.add(key)
        out.append(TextPair(pred, refs, specimen_id=f"gen-{len(out)}"))
    return out


def _read_jsonl(directory: Path) -> list[TextPair]:
    pairs: list[TextPair] = []
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                pred, refs = row.get("prediction"), row.get("references")
                if (
                    isinstance(pred, str)
                    and isinstance(refs, list)
                    and refs
                    and all(isinstance(r, str) for r in refs)
                ):
                    pairs.append(TextPair(pred, tuple(refs), str(row.get("id", ""))))
    return pairs


def load_pairs(directory: Path | None, n: int, seed: int) -> list[TextPair]:
    """Pairs from JSONL files in ``directory`` when it has some, else generated ones.

    Args:
        directory: Folder of ``*.jsonl`` files with ``prediction`` and
            ``references`` (other lines are skipped); None to generate.
        n: How many pairs (fewer when the files hold fewer; never repeated).
        seed: Shuffling and generation seed.

    Example:
        >>> len(load_pairs(None, 10, seed=1))
        10
    """
    if directory is not None and directory.is_dir():
        pairs = _read_jsonl(directory)
        if pairs:
            random.Random(seed).shuffle(pairs)
            return pairs[:n]
    return generate_pairs(n, seed)


def _warm_up() -> None:
    # Load WordNet and import everything once, outside any timing.
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()
    wordnet.synsets("dog")


def time_reference(family: str, pairs: Sequence[TextPair]) -> float:
    """Seconds for the reference library to score ``pairs`` in-process.

    Example:
        >>> time_reference("bleu", load_pairs(None, 5, seed=0)) >= 0
        True
    """
    if family == "bleu":
        from sacrebleu.metrics import BLEU

        sentence = BLEU(effective_order=True)
        corpus = BLEU()
        width = max(len(p.references) for p in pairs)
        refs = [
            [p.references[k] if k < len(p.references) else None for p in pairs]
            for k in range(width)
        ]
        hyps = [p.prediction for p in pairs]
        t0 = time.perf_counter()
        for p in pairs:
            sentence.sentence_score(p.prediction, list(p.references))
        # None pads a pair with fewer references (sacrebleu's variable nrefs).
        corpus.corpus_score(hyps, refs)  # type: ignore[arg-type]
        return time.perf_counter() - t0
    if family == "rouge":
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
        t0 = time.perf_counter()
        for p in pairs:
            scorer.score_multi(list(p.references), p.prediction)
        return time.perf_counter() - t0
    if family == "meteor":
        from nltk.tokenize import word_tokenize
        from nltk.translate.meteor_score import meteor_score

        _warm_up()
        t0 = time.perf_counter()
        for p in pairs:
            meteor_score(
                [word_tokenize(r, preserve_line=True) for r in p.references],
                word_tokenize(p.prediction, preserve_line=True),
            )
        return time.perf_counter() - t0
    raise ValueError(f"unknown family {family!r}; valid names: {', '.join(FAMILIES)}")


def clear_caches(family: str) -> None:
    """Empties evalstream's memo caches of one family (for cold-cache timing), and the
    text memo that bleu, rouge and meteor share."""
    _memo.clear()
    for value in vars(_MODULES[family]).values():
        clear = getattr(value, "cache_clear", None)
        if callable(clear):
            clear()


def time_ours(
    family: str, pairs: Sequence[TextPair], *, batch: int = 64, cold: bool = True
) -> float:
    """Seconds for evalstream's accumulator to score ``pairs`` (per pair, per batch, running).

    Args:
        family: "bleu", "rouge" or "meteor".
        pairs: The pairs.
        batch: Pairs per ``update``.
        cold: Clear the memo caches first.

    Example:
        >>> time_ours("rouge", load_pairs(None, 5, seed=0)) >= 0
        True
    """
    if family == "meteor":
        _warm_up()
    if cold:
        clear_caches(family)
    acc = make_accumulator(family, _OPTIONS[family])
    t0 = time.perf_counter()
    for start in range(0, len(pairs), batch):
        acc.update(pairs[start : start + batch])
    acc.running  # noqa: B018 - part of what the service returns
    return time.perf_counter() - t0


def _best(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def time_checkpoints(
    pairs: Sequence[TextPair], checkpoints: int, *, batch: int = 64
) -> list[tuple[dict[str, float], int]]:
    """Seconds per family for each checkpoint (new predictions, the same references), with
    the text memo's bytes after it.

    Example:
        >>> len(time_checkpoints(load_pairs(None, 5, seed=0), 2))
        2
    """
    _warm_up()
    for family in FAMILIES:
        clear_caches(family)
    out = []
    for k in range(checkpoints):
        these = [TextPair(f"{p.prediction} ckpt{k}", p.references) for p in pairs]
        seconds = {}
        for family in FAMILIES:
            acc = make_accumulator(family, _OPTIONS[family])
            t0 = time.perf_counter()
            for start in range(0, len(these), batch):
                acc.update(these[start : start + batch])
            seconds[family] = time.perf_counter() - t0
        out.append((seconds, _memo.stats()["bytes"]))
    return out


def main(argv: list[str] | None = None) -> int:
    """Prints per-family seconds and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs-dir", type=Path, default=None)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--families", default=",".join(FAMILIES), help="or none")
    parser.add_argument("--text-cache-mb", type=int, default=64)
    parser.add_argument("--checkpoints", type=int, default=0)
    args = parser.parse_args(argv)
    _memo.set_budget(args.text_cache_mb << 20)
    pairs = load_pairs(args.pairs_dir, args.n, args.seed)
    refs = sum(len(p.references) for p in pairs)
    print(f"{len(pairs)} pairs, {refs} references, batch {args.batch}, best of {args.repeat}")
    families = args.families.split(",") if args.families != "none" else []
    if families:
        print(
            f"{'family':8} {'reference s':>12} {'ours cold s':>12} {'ours warm s':>12}"
            f" {'cold x':>8} {'warm x':>8} {'memo MiB':>9}"
        )
    for family in families:
        ref = _best(args.repeat, functools.partial(time_reference, family, pairs))
        cold = _best(
            args.repeat, functools.partial(time_ours, family, pairs, batch=args.batch, cold=True)
        )
        warm = _best(
            args.repeat, functools.partial(time_ours, family, pairs, batch=args.batch, cold=False)
        )
        held = _memo.stats()["bytes"] / (1 << 20)  # the text memo after the warm runs
        print(
            f"{family:8} {ref:12.3f} {cold:12.3f} {warm:12.3f} {ref / cold:8.1f} {ref / warm:8.1f}"
            f" {held:9.1f}",
            flush=True,
        )
    if args.checkpoints:
        print(f"checkpoints, memo budget {args.text_cache_mb} MiB")
        print(f"{'checkpoint':10} " + " ".join(f"{f + ' s':>9}" for f in FAMILIES) + "  memo MiB")
        timed = time_checkpoints(pairs, args.checkpoints, batch=args.batch)
        for k, (seconds, held) in enumerate(timed):
            row = " ".join(f"{seconds[f]:9.3f}" for f in FAMILIES)
            print(f"{k + 1:10} {row} {held / (1 << 20):9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    from _machine import header

    print(header(), flush=True)
    sys.exit(main())
