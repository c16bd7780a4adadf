"""METEOR against NLTK's meteor_score on the same tokens, and WordNet handling.

Tolerance: |Δ| <= 1e-9 (observed: exactly equal). WordNet is installed by
``scripts/install_wordnet.py`` (``make install``); the agreement tests skip,
saying so, only when it is missing.
"""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap

import pytest
from evalstream_server.metrics.text._types import Score, TextPair
from evalstream_server.metrics.text.meteor import (
    MeteorAccumulator,
    WordNetMissing,
    meteor_signature,
    score_pair,
    tokenize,
    wordnet_available,
)
from evalstream_server.metrics.text.registry import MeteorOptions
from hypothesis import given, settings
from hypothesis import strategies as st

TOL = 1e-9

needs_wordnet = pytest.mark.skipif(
    not wordnet_available(),
    reason="WordNet is not installed for NLTK: run `python scripts/install_wordnet.py`",
)

OPTIONS = [
    MeteorOptions(),
    MeteorOptions(alpha=0.5, beta=1.0, gamma=0.2),
    MeteorOptions(alpha=1.0, beta=0.0, gamma=1.0),
    MeteorOptions(alpha=0.0, beta=10.0, gamma=0.0),
]


def _nltk(pair: TextPair, o: MeteorOptions) -> float:
    from nltk.tokenize import word_tokenize
    from nltk.translate.meteor_score import meteor_score

    return float(
        meteor_score(
            [word_tokenize(r, preserve_line=True) for r in pair.references],
            word_tokenize(pair.prediction, preserve_line=True),
            alpha=o.alpha,
            beta=o.beta,
            gamma=o.gamma,
        )
    )


@needs_wordnet
@pytest.mark.parametrize("options", OPTIONS, ids=repr)
def test_meteor_agrees_with_nltk(options: MeteorOptions, varied: tuple[TextPair, ...]) -> None:
    acc = MeteorAccumulator(options=options)
    out = acc.update(varied)
    expected = [_nltk(p, options) for p in varied]
    for pair, (score,), value in zip(varied, out.pairs, expected, strict=True):
        assert score.value is not None and abs(score.value - value) <= TOL, pair
    (batch,) = out.batch
    assert batch.value is not None and abs(batch.value - sum(expected) / len(expected)) <= TOL
    assert acc.running == out.batch


@needs_wordnet
def test_meteor_random_agreement() -> None:
    rng = random.Random(3)
    words = (
        "the a cat cats sat sitting on mat running runs ran dog dogs puppy canine big large "
        "huge small little car automobile auto machine 12 3.5 café 東京 , . ! \" it's can't "
        "cannot gonna"
    ).split()
    for o in OPTIONS:
        for _ in range(250):

            def text() -> str:
                return " ".join(rng.choice(words) for _ in range(rng.randint(0, 20)))

            pair = TextPair(text(), tuple(text() for _ in range(rng.randint(1, 4))))
            value = score_pair(pair.prediction, pair.references, options=o)
            assert abs(value - _nltk(pair, o)) <= TOL, pair


@needs_wordnet
def test_meteor_synonyms_and_stems_match() -> None:
    # "dog" matches "hound" only through WordNet; "runs" and "running" through stems.
    o = MeteorOptions()
    pair = TextPair("the dog runs", ("the hound running",))
    value = score_pair(pair.prediction, pair.references, options=o)
    assert value == _nltk(pair, o) and value > 0.9
    # NLTK looks synonyms up on the *stems* left after stage 2, so "automobile"
    # (stem "automobil") does not reach "car"; we keep that quirk.
    quirk = TextPair("the automobile runs", ("the car running",))
    value = score_pair(quirk.prediction, quirk.references, options=o)
    assert value == _nltk(quirk, o) == pytest.approx(1 / 3)


@needs_wordnet
def test_meteor_empty_strings_score_zero_like_nltk() -> None:
    o = MeteorOptions()
    for pair in (TextPair("", ("a cat",)), TextPair("a cat", ("",)), TextPair("", ("",))):
        assert score_pair(pair.prediction, pair.references, options=o) == _nltk(pair, o) == 0.0


@needs_wordnet
def test_meteor_signature() -> None:
    acc = MeteorAccumulator(options=MeteorOptions())
    (score,) = acc.update([TextPair("a dog", ("a dog",))]).pairs[0]
    assert score.signature == (
        "meteor|alpha:0.9|beta:3|gamma:0.5|tok:nltk_word_tokenize(preserve_line)"
        "|wordnet:3.0|version:nltk-3.10.4"
    )
    assert "agg:mean" in acc.running[0].signature
    assert meteor_signature(MeteorOptions(alpha=0.85), aggregate=False).startswith(
        "meteor|alpha:0.85|"
    )


@needs_wordnet
def test_meteor_empty_batch_and_no_pairs_are_undefined() -> None:
    acc = MeteorAccumulator(options=MeteorOptions())
    assert acc.running[0].value is None and acc.running[0].reason == "no pairs scored yet"
    out = acc.update([])
    assert out.pairs == () and out.batch[0].value is None and out.batch[0].reason == "empty batch"


_TOKEN_WORDS = st.sampled_from(
    [
        "cannot",
        "CanNot",
        "gimme",
        "gonna",
        "gotta",
        "lemme",
        "wanna",
        "wannabe",
        "xcannot",
        "a",
        "B1",
        "2",
        "dog",
        "'t",
        "is",
        "was",
        "d'ye",
        "more'n",
        ".",
        ",",
        '"',
        "(",
        "--",
        "café",
        "東京",
        "it's",
    ]
)
_SEPARATORS = st.sampled_from(["", " ", "  ", "\t", "\n"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_TOKEN_WORDS, _SEPARATORS), max_size=10))
def test_tokenize_is_nltk_word_tokenize(parts: list[tuple[str, str]]) -> None:
    from nltk.tokenize import word_tokenize

    text = "".join(w + s for w, s in parts)
    assert tokenize(text) == tuple(t.lower() for t in word_tokenize(text, preserve_line=True))


@needs_wordnet
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_meteor_batch_split_invariance(data: st.DataObject, splits) -> None:  # type: ignore[no-untyped-def]
    pairs = data.draw(splits.pairs)
    cuts = data.draw(splits.cuts)
    whole = MeteorAccumulator(options=MeteorOptions())
    one = whole.update(pairs)
    parts = MeteorAccumulator(options=MeteorOptions())
    per_pair: list[tuple[Score, ...]] = []
    for batch in splits.split(pairs, cuts):
        per_pair.extend(parts.update(batch).pairs)
    assert tuple(per_pair) == one.pairs
    assert parts.running == whole.running


def test_missing_wordnet_raises_wordnet_missing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A fresh interpreter whose NLTK searches only an empty data directory.
    code = textwrap.dedent(
        f"""
        import nltk
        nltk.data.path[:] = [{str(tmp_path)!r}]
        from evalstream_server.metrics.text.meteor import WordNetMissing, wordnet_available
        from evalstream_server.metrics.text.registry import MeteorOptions, make_accumulator
        assert not wordnet_available()
        try:
            make_accumulator("meteor", MeteorOptions())
        except WordNetMissing as exc:
            assert isinstance(exc, RuntimeError)
            print(exc)
        else:
            raise SystemExit("no WordNetMissing")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    message = proc.stdout
    assert "install_wordnet.py" in message
    assert "apt-get install wordnet-base wordnet-sense-index" in message
    assert "nltk.download('wordnet')" in message


def test_wordnet_missing_message() -> None:
    exc = WordNetMissing("Resource 'wordnet' not found.")
    assert isinstance(exc, RuntimeError)
    assert "make install" in str(exc) and "Resource 'wordnet' not found." in str(exc)
