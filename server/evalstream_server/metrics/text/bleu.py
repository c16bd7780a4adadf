"""BLEU as sacrebleu computes it, with summable per-pair statistics.

Reference: sacrebleu 2.x (mjpost/sacrebleu, sacrebleu/metrics/bleu.py), Post (2018), "A
Call for Clarity in Reporting BLEU Scores"; numbers agree to 1e-9
(tests/metrics/text/test_bleu.py). Per pair: ``sentence_bleu`` (``eff:yes``); batch and
running aggregates: ``corpus_score`` (``eff:no``), the running one finished from summed
sufficient statistics with sacrebleu's ``compute_bleu``, so it costs nothing per batch.
Values are sacrebleu's score / 100; a variable number of references is ``nrefs:var``, as
in sacrebleu. Tokens and n-grams are memoised in the text memo (metrics/text/_memo.py).
"""

from __future__ import annotations

import copy
import functools
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sacrebleu.metrics.bleu import BLEU

from evalstream_server.metrics.bands import band
from evalstream_server.metrics.text._memo import (
    DICT_BYTES,
    DICT_SLOT_BYTES,
    ENTRY_BYTES,
    STR_BYTES,
    TOKEN_BYTES,
    memo,
)
from evalstream_server.metrics.text._types import (
    BleuOptions,
    Score,
    TextBatchScores,
    TextPair,
)

__all__ = [
    "BleuAccumulator",
    "BleuStats",
    "bleu_signature",
    "pair_stats",
    "pair_values",
    "score_from_stats",
]

#: sacrebleu's default maximum n-gram order.
MAX_NGRAM_ORDER = 4

#: Per-pair statistics in sacrebleu's layout: [hyp_len, ref_len, correct_1..4, total_1..4].
BleuStats = tuple[int, ...]


@functools.lru_cache(maxsize=16)
def _tokenizer(tokenize: str) -> BLEU:
    # One BLEU object per tokenizer name: its tokenizer (and that tokenizer's
    # own LRU cache) is shared by every stream.
    return BLEU(tokenize=tokenize)


def _uncached(tokenizer: Any) -> Callable[[str], str]:
    # The tokenizer's __call__ without the functools.lru_cache sacrebleu wraps it in.
    call = getattr(type(tokenizer).__call__, "__wrapped__", None)
    return tokenizer if call is None else functools.partial(call, tokenizer)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=16)
def _segmenter(tokenize: str) -> Callable[[str], str]:
    """sacrebleu's tokenizer ``tokenize`` (a line -> its tokens joined by spaces), uncached.

    sacrebleu memoises each tokenizer's __call__ in an lru_cache of 65,536 lines
    (13a and zh twice: their regexp post-tokenizer has its own), counted in
    entries and keyed by whole texts: up to gigabytes of long unique lines.
    `_ngrams` memoises above it, so those caches would only hold memory. The
    same code runs, on a copy of the tokenizer whose post-tokenizer is uncached too.
    """
    tokenizer = copy.copy(_tokenizer(tokenize).tokenizer)
    post = getattr(tokenizer, "_post_tokenizer", None)
    if post is not None:
        tokenizer._post_tokenizer = _uncached(post)
    return _uncached(tokenizer)


# Characters on which one of sacrebleu's 13a rules acts: its punctuation class
# ([{-~[-`!-&(-+:-@/], i.e. every ASCII symbol but the apostrophe), period,
# comma and dash (the digit rules), and "&" / "<" of the entity and <skipped>
# replacements. Text without any of them is only re-spaced by 13a (newlines
# become spaces, runs of spaces collapse, then str.split), so its tokens are
# str.split()'s: short VQA answers are nearly all of this kind.
_13A_ACTIVE = re.compile(r"[\{-\~\[-\`!-\&\(-\+\:-\@\/\.,\-]")


def _count_ngrams(tokens: Sequence[str]) -> Counter[tuple[str, ...]]:
    # The same counts as sacrebleu's extract_all_word_ngrams (n = 1..4), built
    # with zip; key order differs, which no sum over them can see.
    counts: Counter[tuple[str, ...]] = Counter(zip(tokens, strict=False))
    for n in range(2, MAX_NGRAM_ORDER + 1):
        counts.update(zip(*(tokens[k:] for k in range(n)), strict=False))
    return counts


def _ngrams_bytes(args: tuple[Any, ...], value: tuple[Counter[Any], int]) -> int:
    # The key's text; the Counter, its n-gram tuples (48 to 72 bytes) and the
    # token strings they hold (at most one per token).
    chars = len(args[2])
    counts, length = value
    return (
        ENTRY_BYTES
        + STR_BYTES
        + chars
        + DICT_BYTES
        + (DICT_SLOT_BYTES + 64) * len(counts)
        + TOKEN_BYTES * length
        + chars
    )


@memo(_ngrams_bytes)
def _ngrams(tokenize: str, lowercase: bool, text: str) -> tuple[Mapping[tuple[str, ...], int], int]:
    """sacrebleu's n-grams (1..4) and length of one segment (a shared Counter: never mutate)."""
    # BLEU._preprocess_segment: optional lowercase, then tokenize(sent.rstrip()).
    if lowercase:
        text = text.lower()
    text = text.rstrip()
    if tokenize == "13a" and not _13A_ACTIVE.search(text):
        tokens = text.split()
    else:
        tokens = _segmenter(tokenize)(text).split()
    return _count_ngrams(tokens), len(tokens)


def _closest_ref_len(hyp_len: int, ref_lens: Sequence[int]) -> int:
    # BLEU._get_closest_ref_len: the closest length, the shorter one on ties.
    closest_diff, closest_len = -1, -1
    for ref_len in ref_lens:
        diff = abs(hyp_len - ref_len)
        if closest_diff == -1 or diff < closest_diff:
            closest_diff = diff
            closest_len = ref_len
        elif diff == closest_diff and ref_len < closest_len:
            closest_len = ref_len
    return closest_len


def pair_stats(prediction: str, references: Sequence[str], *, options: BleuOptions) -> BleuStats:
    """sacrebleu's segment statistics of one pair (``BLEU._compute_segment_statistics``).

    Args:
        prediction: The hypothesis.
        references: One or more references.
        options: Tokenizer and case options.

    Returns:
        ``(hyp_len, ref_len, correct_1..4, total_1..4)``; they add over pairs.

    Example:
        >>> pair_stats("the cat sat", ["the cat sat down"], options=BleuOptions())
        (3, 4, 3, 2, 1, 0, 3, 2, 1, 0)
    """
    tok, lower = options.tokenize, options.lowercase
    hyp_ngrams, hyp_len = _ngrams(tok, lower, prediction)
    ref_lens: list[int] = []
    ref_ngrams: Mapping[tuple[str, ...], int] | None = None
    merged: dict[tuple[str, ...], int] | None = None
    for ref in references:
        these, ref_len = _ngrams(tok, lower, ref)
        ref_lens.append(ref_len)
        if ref_ngrams is None:
            ref_ngrams = these
        else:
            # BLEU._extract_reference_info: max count over references (on a
            # copy: the cached Counters are shared).
            if merged is None:
                merged = dict(ref_ngrams)
                ref_ngrams = merged
            for ngram, count in these.items():
                if count > merged.get(ngram, 0):
                    merged[ngram] = count
    if ref_ngrams is None:
        raise ValueError("a pair needs at least one reference")
    ref_len = _closest_ref_len(hyp_len, ref_lens)
    correct = [0] * MAX_NGRAM_ORDER
    total = [0] * MAX_NGRAM_ORDER
    for ngram, count in hyp_ngrams.items():
        n = len(ngram) - 1
        total[n] += count
        in_ref = ref_ngrams.get(ngram)
        if in_ref:
            correct[n] += min(count, in_ref)
    return (hyp_len, ref_len, *correct, *total)


def score_from_stats(stats: Sequence[int], *, options: BleuOptions, effective_order: bool) -> float:
    """BLEU on a 0-1 scale from (summed) statistics, by sacrebleu's ``BLEU.compute_bleu``.

    Args:
        stats: As :func:`pair_stats` returns, or their element-wise sum.
        options: Smoothing options.
        effective_order: True for sentence BLEU, False for corpus BLEU.

    Returns:
        sacrebleu's score / 100 (at most 1).

    Example:
        >>> stats = pair_stats("the cat sat", ["the cat sat down"], options=BleuOptions())
        >>> round(score_from_stats(stats, options=BleuOptions(), effective_order=True), 6)
        0.716531
    """
    m = MAX_NGRAM_ORDER
    # compute_bleu mutates correct/total under add-k: always hand it copies.
    result = BLEU.compute_bleu(
        correct=list(stats[2 : 2 + m]),
        total=list(stats[2 + m : 2 + 2 * m]),
        sys_len=int(stats[0]),
        ref_len=int(stats[1]),
        smooth_method=options.smooth_method,
        smooth_value=options.smooth_value,
        effective_order=effective_order,
        max_ngram_order=m,
    )
    # exp(mean log) of 100s can land an ulp above 100 (100.00000000000004 for a
    # perfect match); scores are fractions in [0, 1], so clamp (|change| < 1e-15).
    return min(float(result.score) / 100.0, 1.0)


@functools.lru_cache(maxsize=256)
def bleu_signature(options: BleuOptions, *, nrefs: int | None, effective_order: bool) -> str:
    """sacrebleu's own signature string for these options.

    Args:
        options: The BLEU options.
        nrefs: References per pair; None when the count varies (``nrefs:var``).
        effective_order: True for sentence scores (``eff:yes``).

    Example:
        >>> bleu_signature(BleuOptions(), nrefs=1, effective_order=False)
        'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0'
    """
    metric = BLEU(
        tokenize=options.tokenize,
        lowercase=options.lowercase,
        smooth_method=options.smooth_method,
        smooth_value=options.smooth_value,
        effective_order=effective_order,
    )
    # sacrebleu fills num_refs when it reads references; -1 means variable.
    metric.num_refs = -1 if nrefs is None else nrefs
    return str(metric.get_signature().format())


def _check_references(pairs: Sequence[TextPair]) -> None:
    for i, pair in enumerate(pairs):
        if not pair.references:
            raise ValueError(f"pairs[{i}] has no references")


def pair_values(pairs: Sequence[TextPair], *, options: BleuOptions) -> list[BleuStats]:
    """Each pair's statistics, as `BleuAccumulator.fold` takes them (picklable: a worker
    process can compute them).

    Example:
        >>> pair_values([TextPair("the cat sat", ("the cat sat down",))], options=BleuOptions())
        [(3, 4, 3, 2, 1, 0, 3, 2, 1, 0)]
    """
    return [pair_stats(p.prediction, p.references, options=options) for p in pairs]


class BleuAccumulator:
    """Running sacrebleu BLEU over one stream (not shared between threads).

    Example:
        >>> acc = BleuAccumulator(options=BleuOptions())
        >>> out = acc.update([TextPair("the cat sat", ("the cat sat down",))])
        >>> round(out.pairs[0][0].value, 4), out.pairs[0][0].band
        (0.7165, 'high')
        >>> out.batch[0].signature
        'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0'
    """

    family = "bleu"

    def __init__(self, *, options: BleuOptions) -> None:
        self._options = options
        self._stats = [0] * (2 + 2 * MAX_NGRAM_ORDER)
        self._count = 0
        self._nrefs: int | None = None  # references per pair, None once variable

    def _corpus(self, stats: Sequence[int], nrefs: int | None, *, reason: str, n: int) -> Score:
        signature = bleu_signature(self._options, nrefs=nrefs, effective_order=False)
        if n == 0:
            return Score("bleu", None, "", signature, reason)
        value = score_from_stats(stats, options=self._options, effective_order=False)
        return Score("bleu", value, band("bleu", value), signature)

    def update(self, pairs: Sequence[TextPair]) -> TextBatchScores:
        """Scores a batch (sentence BLEU per pair, corpus BLEU of the batch) and folds it in.

        Raises:
            ValueError: A pair has no references.
        """
        _check_references(pairs)
        return self.fold(pairs, pair_values(pairs, options=self._options))

    def fold(self, pairs: Sequence[TextPair], values: Sequence[BleuStats]) -> TextBatchScores:
        """As `update`, from ``pair_values(pairs)`` computed elsewhere (e.g. another process)."""
        _check_references(pairs)
        if len(values) != len(pairs):
            raise ValueError(f"{len(values)} values for {len(pairs)} pairs")
        options = self._options
        batch_stats = [0] * (2 + 2 * MAX_NGRAM_ORDER)
        per_pair: list[tuple[Score, ...]] = []
        batch_nrefs: int | None = len(pairs[0].references) if pairs else 0
        for pair, stats in zip(pairs, values, strict=True):
            for k, x in enumerate(stats):
                batch_stats[k] += x
            value = score_from_stats(stats, options=options, effective_order=True)
            n = len(pair.references)
            if n != batch_nrefs:
                batch_nrefs = None
            signature = bleu_signature(options, nrefs=n, effective_order=True)
            per_pair.append((Score("bleu", value, band("bleu", value), signature),))
        if pairs:
            for k, x in enumerate(batch_stats):
                self._stats[k] += x
            if self._count == 0:
                self._nrefs = batch_nrefs
            elif batch_nrefs != self._nrefs:
                self._nrefs = None
            self._count += len(pairs)
        batch = self._corpus(batch_stats, batch_nrefs, reason="empty batch", n=len(pairs))
        return TextBatchScores(pairs=tuple(per_pair), batch=(batch,))

    @property
    def running(self) -> tuple[Score, ...]:
        """Corpus BLEU over every pair so far, from the summed statistics."""
        nrefs = self._nrefs if self._count else 0
        return (self._corpus(self._stats, nrefs, reason="no pairs scored yet", n=self._count),)
