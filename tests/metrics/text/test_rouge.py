"""ROUGE against rouge-score's RougeScorer.score_multi, per pair and as a mean.

Tolerance: |Δ| <= 1e-9 per value (observed: exactly equal).
"""

from __future__ import annotations

import random

import pytest
from evalstream_server.metrics.bands import rouge_band
from evalstream_server.metrics.text._types import Score, TextPair
from evalstream_server.metrics.text.registry import RougeOptions
from evalstream_server.metrics.text.rouge import (
    RougeAccumulator,
    lcs_length,
    rouge_signature,
    rouge_types,
    score_pair,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

TOL = 1e-9
FIELDS = ("recall", "precision", "fmeasure")
OPTIONS = [
    RougeOptions(),
    RougeOptions(use_stemmer=False),
    RougeOptions(rouge_lsum=True),
    RougeOptions(use_stemmer=False, rouge_lsum=True),
]


def _reference(o: RougeOptions, pair: TextPair) -> dict[str, rouge_scorer.scoring.Score]:
    scorer = rouge_scorer.RougeScorer(list(rouge_types(o)), use_stemmer=o.use_stemmer)
    return scorer.score_multi(list(pair.references), pair.prediction)


@pytest.mark.parametrize("options", OPTIONS, ids=repr)
def test_rouge_agrees_with_rouge_score(options: RougeOptions, varied: tuple[TextPair, ...]) -> None:
    acc = RougeAccumulator(options=options)
    out = acc.update(varied)
    types = rouge_types(options)
    sums = dict.fromkeys([(t, f) for t in types for f in FIELDS], 0.0)
    for pair, scores in zip(varied, out.pairs, strict=True):
        expected = _reference(options, pair)
        by_name = {s.name: s for s in scores}
        assert len(by_name) == 3 * len(types)
        for t in types:
            for f in FIELDS:
                s = by_name[f"{t}_{f}"]
                assert s.value is not None
                assert abs(s.value - getattr(expected[t], f)) <= TOL, (pair, t, f)
                sums[(t, f)] += getattr(expected[t], f)
                # Recall carries the ROUGE band of its own value; the others none.
                assert s.band == (rouge_band(s.value) if f == "recall" else "")
    batch = {s.name: s for s in out.batch}
    for (t, f), total in sums.items():
        s = batch[f"{t}_{f}"]
        assert s.value is not None and abs(s.value - total / len(varied)) <= TOL
        assert "agg:mean" in s.signature and "headline:recall" in s.signature
    assert acc.running == out.batch


def test_rouge_random_agreement() -> None:
    rng = random.Random(7)
    words = (
        "the a cat cats sat sitting on mat running runs ran dog 12 3.5 café 東京 Über , . !".split()
    )
    for o in OPTIONS:
        for _ in range(300):

            def text() -> str:
                return " ".join(rng.choice([*words, "\n"]) for _ in range(rng.randint(0, 25)))

            pair = TextPair(text(), tuple(text() for _ in range(rng.randint(1, 4))))
            ours = score_pair(pair.prediction, pair.references, options=o)
            expected = _reference(o, pair)
            for t in rouge_types(o):
                for f in FIELDS:
                    assert abs(getattr(ours[t], f) - getattr(expected[t], f)) <= TOL, (pair, t, f)


def test_rouge_signature_and_band_on_recall() -> None:
    acc = RougeAccumulator(options=RougeOptions())
    # rouge1: 1 of 1 predicted word matches (precision 1), 1 of 4 reference words (recall 0.25).
    (scores,) = acc.update([TextPair("cat", ("the cat sat down",))]).pairs
    by_name = {s.name: s for s in scores}
    assert by_name["rouge1_precision"].value == 1.0
    assert by_name["rouge1_recall"].value == 0.25
    # Recall 0.25 is "low"; precision 1.0 and F-measure 0.4 have no documented band.
    assert by_name["rouge1_recall"].band == "low"
    assert by_name["rouge1_precision"].band == by_name["rouge1_fmeasure"].band == ""
    assert by_name["rouge1_recall"].signature == (
        "rouge:rouge1|stem:yes|headline:recall|multi:best_f|version:rouge-score-0.1.2"
    )
    assert rouge_signature("rougeL", use_stemmer=False, aggregate=True) == (
        "rouge:rougeL|stem:no|headline:recall|multi:best_f|agg:mean|version:rouge-score-0.1.2"
    )


def test_rouge_bands_per_row_fmeasure_never_takes_recalls_band() -> None:
    # The row: rouge2_fmeasure 0.4762 was "high", the band of its recall 0.5.
    # Prediction "a b c d e f p q r s t u" has 11 bigrams, the reference "a b c d e f x y z
    # w v" 10; they share 5 (ab bc cd de ef): precision 5/11, recall 5/10 = 0.5 ("high",
    # >= 0.50), F = 2PR / (P + R) = 10/21 = 0.4762.
    acc = RougeAccumulator(options=RougeOptions(use_stemmer=False))
    pair = TextPair("a b c d e f p q r s t u", ("a b c d e f x y z w v",))
    (scores,) = acc.update([pair]).pairs
    by_name = {s.name: s for s in scores}
    assert by_name["rouge2_recall"].value == 0.5
    assert by_name["rouge2_precision"].value == pytest.approx(5 / 11)
    assert by_name["rouge2_fmeasure"].value == pytest.approx(10 / 21)
    assert by_name["rouge2_recall"].band == "high"
    # No documented band table for precision and F-measure: no band, not recall's.
    assert by_name["rouge2_precision"].band == ""
    assert by_name["rouge2_fmeasure"].band == ""
    # The running (mean) rows follow the same rule.
    running = {s.name: s for s in acc.running}
    assert running["rouge2_recall"].band == "high" and running["rouge2_fmeasure"].band == ""


def test_rouge_non_ascii_is_dropped_like_rouge_score() -> None:
    o = RougeOptions()
    pair = TextPair("东京是日本的首都", ("东京是日本的首都",))
    ours = score_pair(pair.prediction, pair.references, options=o)
    expected = _reference(o, pair)
    assert ours["rouge1"].fmeasure == expected["rouge1"].fmeasure == 0.0


def test_rouge_multi_reference_takes_best_f_per_type() -> None:
    o = RougeOptions(use_stemmer=False)
    pair = TextPair("a b c d", ("a b x x x x", "d c b a"))
    ours = score_pair(pair.prediction, pair.references, options=o)
    expected = _reference(o, pair)
    # rouge1 prefers the second reference (F 1.0); rouge2 and rougeL the first.
    for t in ("rouge1", "rouge2", "rougeL"):
        assert ours[t].fmeasure == expected[t].fmeasure
        assert ours[t].recall == expected[t].recall


def test_rouge_empty_batch_and_no_pairs_are_undefined() -> None:
    acc = RougeAccumulator(options=RougeOptions())
    assert all(s.value is None and s.reason == "no pairs scored yet" for s in acc.running)
    out = acc.update([])
    assert out.pairs == ()
    assert all(s.value is None and s.reason == "empty batch" and s.band == "" for s in out.batch)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from("abcde"), max_size=40),
    st.lists(st.sampled_from("abcde"), max_size=40),
)
def test_lcs_length_is_rouge_scores_table(a: list[str], b: list[str]) -> None:
    expected = rouge_scorer._lcs_table(a, b)[-1][-1] if a and b else 0
    assert lcs_length(a, b) == expected


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_rouge_batch_split_invariance(data: st.DataObject, splits) -> None:  # type: ignore[no-untyped-def]
    pairs = data.draw(splits.pairs)
    cuts = data.draw(splits.cuts)
    whole = RougeAccumulator(options=RougeOptions())
    one = whole.update(pairs)
    parts = RougeAccumulator(options=RougeOptions())
    per_pair: list[tuple[Score, ...]] = []
    for batch in splits.split(pairs, cuts):
        per_pair.extend(parts.update(batch).pairs)
    assert tuple(per_pair) == one.pairs
    assert parts.running == whole.running
