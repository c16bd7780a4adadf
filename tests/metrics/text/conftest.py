"""Shared inputs for the text-metric agreement tables: varied pairs and a split strategy."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from evalstream_server.metrics.text._types import TextPair
from hypothesis import strategies as st

_LONG = (
    "The quick brown foxes were jumping over the lazy dogs while 3 children, "
    "running quickly, watched them from the big red houses near the river bank. "
) * 12

#: Unicode and accents, CJK, punctuation, numbers, empty strings, long texts,
#: repeated words and several references.
VARIED: tuple[TextPair, ...] = (
    TextPair("The dog bit the man.", ("The dog bit the man.", "The dog had bit the man.")),
    TextPair("It wasn't surprising.", ("It was not unexpected.", "No one was surprised.")),
    TextPair(
        "The man had just bitten him.", ("The man bit him first.", "The man had bitten the dog.")
    ),
    TextPair("two", ("2",)),
    TextPair("yes", ("yes",)),
    TextPair("", ("a cat",)),
    TextPair("a cat", ("",)),
    TextPair("", ("",)),
    TextPair("café crème brûlée à la carte", ("cafe creme brulee a la carte", "café crème")),
    TextPair("Ünïcödé naïve façade, coöperate!", ("Unicode naive facade, cooperate!",)),
    TextPair("东京是日本的首都", ("日本的首都是东京", "东京")),
    TextPair("我喜欢猫 and dogs", ("我 喜欢 狗 and cats",)),
    TextPair(
        "3.14159 is about 22/7; 1,000 > 999?",
        ("pi is about 3.14, roughly 22/7", "1,000 is more than 999"),
    ),
    TextPair("(hello) [world] {x} <y> -- \"quoted\" 'single' ...", ('hello world -- "quoted"',)),
    TextPair("the the the the the the the", ("the cat is on the mat",)),
    TextPair("cats running quickly jumped", ("cat runs quick jumping", "a dog ran")),
    TextPair("a large automobile", ("a big car", "huge vehicle")),
    TextPair("He cannot go, gonna stay.", ("He can not go, going to stay.",)),
    TextPair("line one\nline two\n\nline three", ("line one\nline 2", "line three\nline one")),
    TextPair(_LONG, (_LONG[::-1], _LONG.replace("dogs", "cats"))),
    TextPair("A man riding a horse on the beach", ("a man rides a horse at the beach",) * 3),
    TextPair("   spaced    out   ", ("spaced out",)),
)


@pytest.fixture(scope="session")
def varied() -> tuple[TextPair, ...]:
    """Varied pairs for the agreement tables."""
    return VARIED


_WORDS = st.sampled_from(
    "the a cat cats dog dogs sat running ran big large car . , ! 2 12 café 东京 yes no".split()
)
_TEXT = st.lists(_WORDS, max_size=12).map(" ".join)

#: Random pairs with 1-3 references.
pairs_strategy = st.lists(
    st.builds(
        lambda p, r: TextPair(p, tuple(r)),
        _TEXT,
        st.lists(_TEXT, min_size=1, max_size=3),
    ),
    min_size=0,
    max_size=12,
)


def _split(pairs: list[TextPair], cuts: list[int]) -> list[list[TextPair]]:
    """Cuts ``pairs`` into consecutive batches at the given positions (possibly empty batches)."""
    points = sorted(min(c, len(pairs)) for c in cuts)
    out, start = [], 0
    for p in points:
        out.append(pairs[start:p])
        start = p
    out.append(pairs[start:])
    return out


@dataclass(frozen=True)
class Splits:
    """Hypothesis strategies for batch-split properties (drawn with ``st.data()``)."""

    pairs: st.SearchStrategy[list[TextPair]]
    cuts: st.SearchStrategy[list[int]]

    @staticmethod
    def split(pairs: list[TextPair], cuts: list[int]) -> list[list[TextPair]]:
        return _split(pairs, cuts)


@pytest.fixture(scope="session")
def splits() -> Splits:
    """Random pairs and cut points; session-scoped so that @given may use it."""
    return Splits(pairs_strategy, st.lists(st.integers(0, 12), max_size=4))
