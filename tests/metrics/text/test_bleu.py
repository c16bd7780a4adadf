"""BLEU against sacrebleu: per pair (sentence_score), batch and running (corpus_score).

Tolerance: |Δ| <= 1e-9 on the 0-1 scale (observed: exactly equal).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from evalstream_server.metrics.text._types import Score, TextPair
from evalstream_server.metrics.text.bleu import BleuAccumulator, bleu_signature, pair_stats
from evalstream_server.metrics.text.registry import BleuOptions
from hypothesis import given, settings
from hypothesis import strategies as st
from sacrebleu.metrics import BLEU

TOL = 1e-9

OPTIONS = [
    BleuOptions(),
    BleuOptions(tokenize="intl"),
    BleuOptions(tokenize="zh"),
    BleuOptions(tokenize="char"),
    BleuOptions(tokenize="none"),
    BleuOptions(lowercase=True),
    BleuOptions(smooth_method="floor"),
    BleuOptions(smooth_method="floor", smooth_value=0.3),
    BleuOptions(smooth_method="add-k"),
    BleuOptions(smooth_method="add-k", smooth_value=0.5, lowercase=True),
    BleuOptions(smooth_method="none"),
    BleuOptions(tokenize="zh", smooth_method="none", lowercase=True),
]


def _metric(o: BleuOptions, *, effective_order: bool) -> BLEU:
    return BLEU(
        tokenize=o.tokenize,
        lowercase=o.lowercase,
        smooth_method=o.smooth_method,
        smooth_value=o.smooth_value,
        effective_order=effective_order,
    )


def _corpus(o: BleuOptions, pairs: Sequence[TextPair]) -> tuple[float, str]:
    """sacrebleu corpus BLEU / 100, references padded with None (sacrebleu's variable nrefs)."""
    metric = _metric(o, effective_order=False)
    width = max(len(p.references) for p in pairs)
    refs = [
        [p.references[k] if k < len(p.references) else None for p in pairs] for k in range(width)
    ]
    score = metric.corpus_score([p.prediction for p in pairs], refs)  # type: ignore[arg-type]
    return score.score / 100, metric.get_signature().format()


@pytest.mark.parametrize("options", OPTIONS, ids=repr)
def test_bleu_agrees_with_sacrebleu(options: BleuOptions, varied: tuple[TextPair, ...]) -> None:
    acc = BleuAccumulator(options=options)
    out = acc.update(varied)
    sentence = _metric(options, effective_order=True)
    for pair, scores in zip(varied, out.pairs, strict=True):
        (score,) = scores
        expected = sentence.sentence_score(pair.prediction, list(pair.references))
        assert score.value is not None
        assert abs(score.value - expected.score / 100) <= TOL, pair
        assert score.signature == bleu_signature(
            options, nrefs=len(pair.references), effective_order=True
        )
        assert "eff:yes" in score.signature
    value, signature = _corpus(options, varied)
    (batch,) = out.batch
    assert batch.value is not None and abs(batch.value - value) <= TOL
    assert batch.signature == signature  # sacrebleu's own, nrefs:var here
    assert "nrefs:var" in batch.signature
    (running,) = acc.running
    assert running == batch


def test_bleu_signature_is_sacrebleus() -> None:
    acc = BleuAccumulator(options=BleuOptions())
    (s,) = acc.update([TextPair("a b c d", ("a b c d",))]).batch
    assert s.signature == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
    assert s.value == 1.0 and s.band == "high"
    floor = bleu_signature(BleuOptions(smooth_method="floor"), nrefs=2, effective_order=True)
    assert floor == "nrefs:2|case:mixed|eff:yes|tok:13a|smooth:floor[0.10]|version:2.6.0"


@pytest.mark.parametrize("tokenize", ["zh", "char"])
def test_bleu_cjk(tokenize: str) -> None:
    o = BleuOptions(tokenize=tokenize)
    pairs = [
        TextPair("东京是日本的首都", ("日本的首都是东京",)),
        TextPair("猫坐在垫子上", ("猫在垫子上坐着",)),
    ]
    out = BleuAccumulator(options=o).update(pairs)
    sentence = _metric(o, effective_order=True)
    for pair, (score,) in zip(pairs, out.pairs, strict=True):
        expected = sentence.sentence_score(pair.prediction, list(pair.references)).score / 100
        assert score.value is not None and abs(score.value - expected) <= TOL
        assert score.value > 0  # 13a would see one token each and score 0
    assert abs((out.batch[0].value or 0.0) - _corpus(o, pairs)[0]) <= TOL


def test_bleu_running_over_batches_is_corpus_score(varied: tuple[TextPair, ...]) -> None:
    o = BleuOptions()
    acc = BleuAccumulator(options=o)
    for start in range(0, len(varied), 5):
        acc.update(varied[start : start + 5])
    (running,) = acc.running
    value, signature = _corpus(o, varied)
    assert running.value is not None and abs(running.value - value) <= TOL
    assert running.signature == signature


def test_bleu_fixed_reference_count_signature() -> None:
    acc = BleuAccumulator(options=BleuOptions())
    acc.update([TextPair("a b", ("a b", "a c")), TextPair("c d", ("c d", "d c"))])
    assert acc.running[0].signature.startswith("nrefs:2|")
    acc.update([TextPair("e f", ("e f",))])
    assert acc.running[0].signature.startswith("nrefs:var|")


def test_bleu_empty_batch_and_no_pairs_are_undefined() -> None:
    acc = BleuAccumulator(options=BleuOptions())
    (running,) = acc.running
    assert running.value is None and running.reason == "no pairs scored yet" and running.band == ""
    out = acc.update([])
    assert out.pairs == ()
    assert out.batch[0].value is None and out.batch[0].reason == "empty batch"


def test_bleu_empty_strings_score_zero_like_sacrebleu() -> None:
    pairs = [TextPair("", ("",)), TextPair("", ("x",)), TextPair("x", ("",))]
    out = BleuAccumulator(options=BleuOptions()).update(pairs)
    sentence = _metric(BleuOptions(), effective_order=True)
    for pair, (score,) in zip(pairs, out.pairs, strict=True):
        assert (
            score.value
            == sentence.sentence_score(pair.prediction, list(pair.references)).score / 100
        )
        assert score.value == 0.0
    assert out.batch[0].value == _corpus(BleuOptions(), pairs)[0] == 0.0


def test_bleu_pair_without_references_is_an_error_and_changes_nothing() -> None:
    acc = BleuAccumulator(options=BleuOptions())
    with pytest.raises(ValueError, match=r"pairs\[1\]"):
        acc.update([TextPair("a", ("a",)), TextPair("b", ())])
    assert acc.running[0].value is None


def test_bleu_stats_add_like_sacrebleus() -> None:
    o = BleuOptions()
    metric = _metric(o, effective_order=False)
    hyps, refs = ["the cat sat", "on a mat"], [["the cat sat down", "on the mat"]]
    expected = metric._extract_corpus_statistics(hyps, refs)
    ours = [list(pair_stats(h, [r], options=o)) for h, r in zip(hyps, refs[0], strict=True)]
    assert ours == expected


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_bleu_batch_split_invariance(data: st.DataObject, splits) -> None:  # type: ignore[no-untyped-def]
    pairs = data.draw(splits.pairs)
    cuts = data.draw(splits.cuts)
    whole = BleuAccumulator(options=BleuOptions())
    one = whole.update(pairs)
    parts = BleuAccumulator(options=BleuOptions())
    per_pair: list[tuple[Score, ...]] = []
    for batch in splits.split(pairs, cuts):
        per_pair.extend(parts.update(batch).pairs)
    assert tuple(per_pair) == one.pairs
    assert parts.running == whole.running
    if pairs:
        assert abs((whole.running[0].value or 0.0) - _corpus(BleuOptions(), pairs)[0]) <= TOL
