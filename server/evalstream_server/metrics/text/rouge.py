"""ROUGE-1, ROUGE-2, ROUGE-L (and ROUGE-Lsum) as Google's rouge-score computes them.

Reference: rouge-score 0.1.2 (google-research/google-research, rouge/rouge_scorer.py,
tokenize.py), after Lin (2004), "ROUGE: A Package for Automatic Evaluation of Summaries";
per pair each value agrees with ``RougeScorer(...).score_multi`` to 1e-9
(tests/metrics/text/test_rouge.py), the reference of highest F-measure giving P, R and F.
Recall, the product's headline (``headline:recall``), carries the ROUGE band; precision and
F-measure have no documented band table and carry none. Aggregates are per-pair means
(``agg:mean``). The LCS is computed bit-parallel (Allison & Dix 1986; Hyyrö 2004) and
text-level work is memoised (metrics/text/_memo.py), with the same numbers.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nltk.stem.porter import PorterStemmer
from rouge_score import rouge_scorer as _rs
from rouge_score import tokenize as _rs_tokenize

from evalstream_server.metrics.bands import band
from evalstream_server.metrics.text._memo import (
    DICT_BYTES,
    DICT_SLOT_BYTES,
    ENTRY_BYTES,
    STR_BYTES,
    TOKEN_BYTES,
    TUPLE_BYTES,
    memo,
    weigh_tokens,
    word_cache,
)
from evalstream_server.metrics.text._types import (
    RougeOptions,
    Score,
    TextBatchScores,
    TextPair,
)

__all__ = [
    "RougeAccumulator",
    "RougeValue",
    "lcs_length",
    "pair_values",
    "rouge_signature",
    "rouge_types",
    "score_pair",
]

_FIELDS = ("recall", "precision", "fmeasure")

# rouge-score's DefaultTokenizer builds porter.PorterStemmer() in its default
# (NLTK_EXTENSIONS) mode; stem() is a pure function of the word.
_STEMMER = PorterStemmer()


@dataclass(frozen=True, slots=True)
class RougeValue:
    """One rouge type's precision, recall and F-measure for one pair."""

    precision: float
    recall: float
    fmeasure: float


@word_cache
def _stem(word: str) -> str:
    return str(_STEMMER.stem(word))


def _tokenize(text: str, use_stemmer: bool) -> tuple[str, ...]:
    """rouge_score.tokenize.tokenize (same regexes, same order of steps)."""
    text = text.lower()
    text = _rs_tokenize.NON_ALPHANUM_RE.sub(" ", text)
    tokens = _rs_tokenize.SPACES_RE.split(text)
    if use_stemmer:
        tokens = [_stem(x) if len(x) > 3 else x for x in tokens]
    valid = _rs_tokenize.VALID_TOKEN_RE
    return tuple(x for x in tokens if valid.match(x))


# The tokens of one line of a rougeLsum text (`_features` tokenizes whole texts
# itself: one entry per text, not two).
_tokens = memo(weigh_tokens)(_tokenize)


@dataclass(frozen=True, slots=True)
class _Text:
    tokens: tuple[str, ...]
    unigrams: Counter[str]
    bigrams: Counter[tuple[str, str]]


def _features_bytes(args: tuple[Any, ...], value: _Text) -> int:
    # The key's text; the _Text, its token tuple and strings, both Counters
    # and the bigram tuples (56 bytes each).
    chars = len(args[0])
    tokens = len(value.tokens)
    return (
        ENTRY_BYTES
        + STR_BYTES
        + chars
        + 64
        + TUPLE_BYTES
        + TOKEN_BYTES * tokens
        + chars
        + 2 * DICT_BYTES
        + DICT_SLOT_BYTES * len(value.unigrams)
        + (DICT_SLOT_BYTES + 56) * len(value.bigrams)
    )


@memo(_features_bytes)
def _features(text: str, use_stemmer: bool) -> _Text:
    tokens = _tokenize(text, use_stemmer)
    return _Text(tokens, Counter(tokens), Counter(zip(tokens, tokens[1:], strict=False)))


def _overlap(target: Counter[Any], prediction: Counter[Any]) -> int:
    # rouge-score sums min counts over the target's n-grams; an n-gram missing
    # on either side adds 0, so iterating the smaller side gives the same sum.
    if len(prediction) < len(target):
        target, prediction = prediction, target
    total = 0
    for gram, count in target.items():
        other = prediction.get(gram)
        if other:
            total += count if count < other else other
    return total


def _fmeasure(precision: float, recall: float) -> float:
    # rouge_score.scoring.fmeasure
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def _ngram_value(inter: int, target_count: int, prediction_count: int) -> RougeValue:
    precision = inter / max(prediction_count, 1)
    recall = inter / max(target_count, 1)
    return RougeValue(precision, recall, _fmeasure(precision, recall))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004).

    Example:
        >>> lcs_length("the cat sat on the mat".split(), "the cat on a mat".split())
        4
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        m = masks.get(tok)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def _lcs_value(target: tuple[str, ...], prediction: tuple[str, ...]) -> RougeValue:
    # rouge_scorer._score_lcs
    if not target or not prediction:
        return RougeValue(0.0, 0.0, 0.0)
    lcs = lcs_length(target, prediction)
    precision = lcs / len(prediction)
    recall = lcs / len(target)
    return RougeValue(precision, recall, _fmeasure(precision, recall))


def _sentences_bytes(args: tuple[Any, ...], value: tuple[tuple[str, ...], ...]) -> int:
    # The key's text; the tuple of token tuples and their strings (counted
    # again: the lines' `_tokens` entries are older and go first).
    chars = len(args[0])
    tokens = sum(len(s) for s in value)  # per line: cheap next to tokenizing them
    return (
        ENTRY_BYTES
        + STR_BYTES
        + chars
        + TUPLE_BYTES
        + (8 + TUPLE_BYTES) * len(value)
        + TOKEN_BYTES * tokens
        + chars
    )


@memo(_sentences_bytes)
def _sentences(text: str, use_stemmer: bool) -> tuple[tuple[str, ...], ...]:
    # RougeScorer.score's get_sents with split_summaries=False.
    return tuple(_tokens(s, use_stemmer) for s in text.split("\n") if len(s))


def _lsum_value(target: str, prediction: str, use_stemmer: bool) -> RougeValue:
    # rouge-score's own summary-level LCS on (cached) tokens.
    ref_sents = [list(s) for s in _sentences(target, use_stemmer)]
    can_sents = [list(s) for s in _sentences(prediction, use_stemmer)]
    s = _rs._summary_level_lcs(ref_sents, can_sents)
    return RougeValue(float(s.precision), float(s.recall), float(s.fmeasure))


def rouge_types(options: RougeOptions) -> tuple[str, ...]:
    """The rouge types scored under ``options``.

    Example:
        >>> rouge_types(RougeOptions(rouge_lsum=True))
        ('rouge1', 'rouge2', 'rougeL', 'rougeLsum')
    """
    return (
        ("rouge1", "rouge2", "rougeL", "rougeLsum")
        if options.rouge_lsum
        else (
            "rouge1",
            "rouge2",
            "rougeL",
        )
    )


def _single_bytes(args: tuple[Any, ...], value: tuple[RougeValue, ...]) -> int:
    # Both texts of the key; the value is a few RougeValues (128 bytes each).
    return ENTRY_BYTES + 2 * STR_BYTES + len(args[0]) + len(args[1]) + 136 * len(value)


# The options are two bools in the key, not the RougeOptions: a dataclass's
# __hash__ is Python code, run on every look-up.
@memo(_single_bytes)
def _single(target: str, prediction: str, stem: bool, lsum: bool) -> tuple[RougeValue, ...]:
    """RougeScorer.score(target, prediction) for every type, in rouge_types order."""
    t = _features(target, stem)
    p = _features(prediction, stem)
    out = [
        _ngram_value(_overlap(t.unigrams, p.unigrams), len(t.tokens), len(p.tokens)),
        _ngram_value(
            _overlap(t.bigrams, p.bigrams),
            max(len(t.tokens) - 1, 0),
            max(len(p.tokens) - 1, 0),
        ),
        _lcs_value(t.tokens, p.tokens),
    ]
    if lsum:
        out.append(_lsum_value(target, prediction, stem))
    return tuple(out)


def score_pair(
    prediction: str, references: Sequence[str], *, options: RougeOptions
) -> dict[str, RougeValue]:
    """rouge-score's ``score_multi(references, prediction)``: the best-F reference per type.

    Args:
        prediction: The prediction.
        references: One or more references.
        options: Stemming and rougeLsum.

    Returns:
        Rouge type -> precision, recall, F-measure.

    Raises:
        ValueError: ``references`` is empty.

    Example:
        >>> v = score_pair("the cats sat", ["a cat sat", "dogs"], options=RougeOptions())
        >>> v["rouge1"].recall, v["rouge1"].precision
        (0.6666666666666666, 0.6666666666666666)
    """
    if not references:
        raise ValueError("a pair needs at least one reference")
    stem, lsum = options.use_stemmer, options.rouge_lsum
    best = list(_single(references[0], prediction, stem, lsum))
    for ref in references[1:]:
        for k, v in enumerate(_single(ref, prediction, stem, lsum)):
            if v.fmeasure > best[k].fmeasure:  # np.argmax keeps the first maximum
                best[k] = v
    return dict(zip(rouge_types(options), best, strict=True))


@functools.lru_cache(maxsize=64)
def rouge_signature(rouge_type: str, *, use_stemmer: bool, aggregate: bool) -> str:
    """The signature of one rouge type's scores.

    Example:
        >>> rouge_signature("rouge1", use_stemmer=True, aggregate=True)
        'rouge:rouge1|stem:yes|headline:recall|multi:best_f|agg:mean|version:rouge-score-0.1.2'
    """
    parts = [f"rouge:{rouge_type}", f"stem:{'yes' if use_stemmer else 'no'}"]
    if rouge_type == "rougeLsum":
        parts.append("split:newline")
    parts += ["headline:recall", "multi:best_f"]
    if aggregate:
        parts.append("agg:mean")
    parts.append(f"version:rouge-score-{importlib.metadata.version('rouge-score')}")
    return "|".join(parts)


def _check_references(pairs: Sequence[TextPair]) -> None:
    for i, pair in enumerate(pairs):
        if not pair.references:
            raise ValueError(f"pairs[{i}] has no references")


def pair_values(pairs: Sequence[TextPair], *, options: RougeOptions) -> list[tuple[float, ...]]:
    """Each pair's (recall, precision, F) per rouge type, flat in `rouge_types` order, as
    `RougeAccumulator.fold` takes them (picklable: a worker process can compute them).

    Example:
        >>> pair_values([TextPair("a cat sat", ("the cat sat",))], options=RougeOptions())[0][:3]
        (0.6666666666666666, 0.6666666666666666, 0.6666666666666666)
    """
    types = rouge_types(options)
    out = []
    for pair in pairs:
        best = score_pair(pair.prediction, pair.references, options=options)
        out.append(
            tuple(x for t in types for x in (best[t].recall, best[t].precision, best[t].fmeasure))
        )
    return out


class RougeAccumulator:
    """Running mean ROUGE over one stream (not shared between threads).

    Example:
        >>> acc = RougeAccumulator(options=RougeOptions())
        >>> out = acc.update([TextPair("a cat sat", ("the cat sat",))])
        >>> [(s.name, round(s.value, 4), s.band) for s in out.pairs[0][:3]]
        ... # doctest: +NORMALIZE_WHITESPACE
        [('rouge1_recall', 0.6667, 'high'), ('rouge1_precision', 0.6667, ''),
         ('rouge1_fmeasure', 0.6667, '')]
    """

    family = "rouge"

    def __init__(self, *, options: RougeOptions) -> None:
        self._options = options
        self._types = rouge_types(options)
        # Per rouge type: its signature and its score names, for per-pair (False)
        # and aggregate (True) scores (built once: every pair repeats them).
        self._named = {
            aggregate: tuple(
                (
                    rouge_signature(t, use_stemmer=options.use_stemmer, aggregate=aggregate),
                    tuple(f"{t}_{field}" for field in _FIELDS),
                )
                for t in self._types
            )
            for aggregate in (False, True)
        }
        self._sums = [0.0] * (len(self._types) * len(_FIELDS))
        self._count = 0

    def _scores(
        self, values: Sequence[float | None], *, aggregate: bool, reason: str
    ) -> tuple[Score, ...]:
        out: list[Score] = []
        k = 0
        for signature, names in self._named[aggregate]:
            for field, name in zip(_FIELDS, names, strict=True):
                value = values[k]
                # Only recall has a documented band table (docs/reference/metrics.md);
                # precision and F-measure carry none rather than recall's.
                label = band("rouge", value) if field == "recall" and value is not None else ""
                out.append(Score(name, value, label, signature, reason if value is None else ""))
                k += 1
        return tuple(out)

    def _mean(self, sums: Sequence[float], n: int, reason: str) -> tuple[Score, ...]:
        values: list[float | None] = [s / n for s in sums] if n else [None] * len(sums)
        return self._scores(values, aggregate=True, reason=reason)

    def update(self, pairs: Sequence[TextPair]) -> TextBatchScores:
        """Scores a batch per pair, with the batch mean, and folds it into the running mean.

        Raises:
            ValueError: A pair has no references.
        """
        _check_references(pairs)  # before any state changes
        return self.fold(pairs, pair_values(pairs, options=self._options))

    def fold(self, pairs: Sequence[TextPair], values: Sequence[Sequence[float]]) -> TextBatchScores:
        """As `update`, from ``pair_values(pairs)`` computed elsewhere (e.g. another process)."""
        _check_references(pairs)
        if len(values) != len(pairs):
            raise ValueError(f"{len(values)} values for {len(pairs)} pairs")
        batch_sums = [0.0] * len(self._sums)
        per_pair: list[tuple[Score, ...]] = []
        for flat in values:
            for k, x in enumerate(flat):
                batch_sums[k] += x
                self._sums[k] += x  # pair by pair: batch splits cannot change the sum
            per_pair.append(self._scores(flat, aggregate=False, reason=""))
        self._count += len(pairs)
        batch = self._mean(batch_sums, len(pairs), "empty batch")
        return TextBatchScores(pairs=tuple(per_pair), batch=batch)

    @property
    def running(self) -> tuple[Score, ...]:
        """Mean per-pair ROUGE over every pair so far."""
        return self._mean(self._sums, self._count, "no pairs scored yet")
