"""The text memo: eviction by bytes, its budget over real metric calls, threads, its weights."""

from __future__ import annotations

import concurrent.futures
import gc
import random
import string
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sacrebleu
from evalstream_server.metrics.text import _memo, bleu, meteor, rouge
from evalstream_server.metrics.text._types import TextPair
from evalstream_server.metrics.text.registry import BleuOptions, MeteorOptions, RougeOptions
from sacrebleu.tokenizers.tokenizer_re import TokenizerRegexp

from .conftest import VARIED

FAMILIES: dict[str, tuple[Any, object]] = {
    "bleu": (bleu, BleuOptions()),
    "rouge": (rouge, RougeOptions(rouge_lsum=True)),
    "meteor": (meteor, MeteorOptions()),
}


@pytest.fixture(autouse=True)
def fresh_memo() -> Iterator[None]:
    """An empty memo with the default budget, before and after each test."""
    _memo.set_budget(_memo.DEFAULT_BUDGET)
    _memo.clear()
    yield
    _memo.set_budget(_memo.DEFAULT_BUDGET)
    _memo.clear()


def _words(rng: random.Random, n: int) -> list[str]:
    # Made-up lowercase words of 2-10 letters, some with punctuation after them.
    out = []
    for _ in range(n):
        word = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10)))
        out.append(word + rng.choice(("", "", "", "", ",", ".")))
    return out


def _text(seed: int, words: int, *, lines: int = 1) -> str:
    """A deterministic text of ``words`` words (a new str object on every call)."""
    rng = random.Random(seed)
    tokens = _words(rng, words)
    step = max(1, words // lines)
    return "\n".join(" ".join(tokens[i : i + step]) for i in range(0, words, step))


def _pairs(seed: int, n: int, words: int) -> list[TextPair]:
    return [
        TextPair(_text(seed * 1000 + i, words), (_text(seed * 1000 + i + 500, words),))
        for i in range(n)
    ]


@pytest.fixture
def store_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every new entry stored, even when the memo is full: eviction order alone."""
    monkeypatch.setattr(_memo._MEMO, "admit", 1.0)


def _counting(calls: list[str], weight: int) -> Callable[[str], str]:
    @_memo.memo(lambda args, value: weight)
    def echo(key: str) -> str:
        calls.append(key)
        return key

    return echo


def test_memo_evicts_the_oldest_unused_entry_first(store_all: None) -> None:
    calls: list[str] = []
    echo = _counting(calls, 1_000)
    _memo.set_budget(16_000)  # 16 entries of 1,000 bytes; the largest stored is 1,000
    for i in range(16):
        echo(f"k{i}")
    echo("k0")  # k0 is used again: of the unused, k1 is the oldest
    assert _memo.stats()["hits"] == 1
    echo("k16")  # one over the budget: k1 goes
    assert _memo.stats()["entries"] == 16
    assert _memo.stats()["bytes"] == 16_000
    calls.clear()
    echo("k0")
    echo("k2")
    assert calls == []  # both still cached
    echo("k1")
    assert calls == ["k1"]  # evicted, computed again


def test_memo_gives_a_used_entry_a_second_chance(store_all: None) -> None:
    # CLOCK: the oldest entry, used since it was queued, goes to the back instead of out.
    calls: list[str] = []
    echo = _counting(calls, 1_000)
    _memo.set_budget(16_000)  # 16 entries
    for key in ["a", *(f"b{i}" for i in range(1, 16))]:
        echo(key)
    echo("a")
    for i in range(1, 16):  # 15 new entries: b1 .. b15 go, "a" stays
        echo(f"c{i}")
    calls.clear()
    echo("a")
    echo("b1")
    assert calls == ["b1"]


def test_memo_budget_zero_empties_used_entries_too() -> None:
    echo = _counting([], 100)
    for i in range(50):
        echo(f"k{i}")
        echo(f"k{i}")  # every entry used
    _memo.set_budget(0)
    assert (_memo.stats()["entries"], _memo.stats()["bytes"]) == (0, 0)


def test_memo_evicts_by_bytes_not_entries(store_all: None) -> None:
    small_calls: list[str] = []
    large_calls: list[str] = []
    small = _counting(small_calls, 100)
    large = _counting(large_calls, 1_000)
    _memo.set_budget(16_000)
    for i in range(150):  # 15,000 bytes in 150 entries
        small(f"s{i}")
    assert _memo.stats()["entries"] == 150
    large("l0")
    large("l1")  # 17,000 bytes: the 10 least recently used small entries go
    stats = _memo.stats()
    assert stats["bytes"] == 16_000 and stats["entries"] == 142
    small_calls.clear()
    small("s10")
    small("s9")
    assert small_calls == ["s9"]


def test_memo_stores_one_new_entry_in_eight_when_full() -> None:
    echo = _counting([], 100)
    _memo.set_budget(16_000)  # 160 entries
    for i in range(160):
        echo(f"old{i}")
    for i in range(800):
        echo(f"new{i}")
    stats = _memo.stats()
    assert stats["entries"] == 160 and stats["bytes"] == 16_000
    stored = sum(1 for entry in _memo._MEMO.queue if entry[4][0].startswith("new"))
    assert 60 <= stored <= 150, stored  # 100 expected


@pytest.mark.parametrize(("admit", "least_hits"), [(1.0, 0), (_memo.ADMIT_WHEN_FULL, 120)])
def test_memo_hits_in_a_cyclic_scan_larger_than_the_budget(
    monkeypatch: pytest.MonkeyPatch, admit: float, least_hits: int
) -> None:
    # Checkpoints scored against the same references: 200 texts again and again,
    # room for 160. Storing every new entry evicts each text before its next use.
    monkeypatch.setattr(_memo._MEMO, "admit", admit)
    echo = _counting([], 100)
    _memo.set_budget(16_000)
    for _ in range(10):
        before = _memo.stats()["hits"]
        for i in range(200):
            echo(f"t{i}")
    hits = _memo.stats()["hits"] - before
    assert hits >= least_hits if least_hits else hits == 0


def test_memo_functions_share_the_budget_not_entries() -> None:
    a_calls: list[str] = []
    b_calls: list[str] = []
    a = _counting(a_calls, 100)
    b = _counting(b_calls, 100)
    assert (a("x"), b("x")) == ("x", "x")
    assert (a_calls, b_calls) == (["x"], ["x"])  # same arguments, different functions
    assert _memo.stats()["entries"] == 2


def test_memo_set_budget_evicts_down_and_refuses_negative(store_all: None) -> None:
    echo = _counting([], 1_000)
    for i in range(20):
        echo(f"k{i}")
    _memo.set_budget(5_000)
    assert _memo.stats()["bytes"] <= 5_000
    with pytest.raises(ValueError, match="got -1"):
        _memo.set_budget(-1)


def test_memo_oversize_entries_are_computed_not_stored() -> None:
    _memo.set_budget(256 << 10)  # entries above 16 KiB are not stored
    long_text = _text(1, 1_500)  # its n-gram Counter weighs hundreds of KB
    short_text = _text(2, 5)
    first = bleu._ngrams("13a", False, long_text)
    second = bleu._ngrams("13a", False, long_text)
    assert first == second and first is not second  # computed twice
    assert _memo.stats() | {"budget": 0} == {
        "entries": 0,
        "bytes": 0,
        "budget": 0,
        "hits": 0,
        "misses": 2,
    }
    assert bleu._ngrams("13a", False, short_text) is bleu._ngrams("13a", False, short_text)
    assert _memo.stats()["entries"] == 1


@pytest.mark.parametrize("family", list(FAMILIES))
def test_memo_budget_holds_over_many_unique_long_texts(family: str) -> None:
    module, options = FAMILIES[family]
    budget = 2 << 20  # entries up to 128 KiB are stored
    _memo.set_budget(budget)
    for batch in range(8):
        module.pair_values(_pairs(batch, 20, 150), options=options)
        stats = _memo.stats()
        assert 0 < stats["bytes"] <= budget, stats
    stats = _memo.stats()
    assert stats["misses"] > stats["entries"]  # some were evicted: the budget was reached


@pytest.mark.parametrize("family", list(FAMILIES))
def test_memo_budget_zero_caches_nothing_and_changes_no_score(family: str) -> None:
    module, options = FAMILIES[family]
    pairs = [*VARIED, *_pairs(7, 5, 300)]
    cached = module.pair_values(pairs, options=options)
    assert module.pair_values(pairs, options=options) == cached  # from the memo
    _memo.set_budget(0)
    assert _memo.stats()["entries"] == 0
    assert module.pair_values(pairs, options=options) == cached
    stats = _memo.stats()
    assert (stats["entries"], stats["bytes"]) == (0, 0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_memo_counts_hits_for_repeated_references(family: str) -> None:
    module, options = FAMILIES[family]
    reference = "a man riding a horse on the beach"

    def score(prediction: str) -> tuple[int, int]:
        before = _memo.stats()
        module.pair_values([TextPair(prediction, (reference,))], options=options)
        after = _memo.stats()
        return after["hits"] - before["hits"], after["misses"] - before["misses"]

    first_hits, first_misses = score("a man on a horse")
    hits, misses = score("a horse on a beach")  # a new prediction, the same reference
    assert hits > first_hits and misses < first_misses
    hits, misses = score("a horse on a beach")  # the same pair again
    assert hits >= 1 and misses == 0


def test_bleu_counts_one_hit_per_repeated_text() -> None:
    reference = "a man riding a horse on the beach"
    pairs = [TextPair("a man on a horse", (reference,)), TextPair("two men", (reference,))]
    bleu.pair_values(pairs, options=BleuOptions())
    assert (_memo.stats()["hits"], _memo.stats()["misses"]) == (1, 3)


@pytest.mark.parametrize("budget", [_memo.DEFAULT_BUDGET, 256 << 10])
def test_memo_threads_give_the_sequential_scores(budget: int) -> None:
    # Shared references and predictions across threads; with the small budget,
    # entries are evicted while other threads read them.
    refs = [_text(100 + i, 30) for i in range(8)]
    pairs = [
        TextPair(_text(200 + i % 40, 20 + i % 7), (refs[i % 8], refs[(i * 3) % 8]))
        for i in range(160)
    ]
    want = {name: m.pair_values(pairs, options=o) for name, (m, o) in FAMILIES.items()}
    _memo.clear()
    _memo.set_budget(budget)

    def score(seed: int) -> dict[str, list[Any]]:
        order = list(range(len(pairs)))
        random.Random(seed).shuffle(order)
        got: dict[str, list[Any]] = {}
        for name, (m, o) in FAMILIES.items():
            values = m.pair_values([pairs[k] for k in order], options=o)
            back: list[Any] = [None] * len(pairs)
            for k, value in zip(order, values, strict=True):
                back[k] = value
            got[name] = back
        return got

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(score, range(16)))
    for got in results:
        assert got == want
    assert _memo.stats()["bytes"] <= budget


# Weights against tracemalloc: each function's value built with the memo off (so
# that it owns everything it holds, as an entry does once the entries it was
# built from are evicted), with its key's strings and the entry's own overhead.

_Args = Callable[[str], tuple[Any, ...]]

_WEIGHED: dict[str, tuple[Any, Callable[..., int], _Args]] = {
    "bleu._ngrams": (bleu._ngrams, bleu._ngrams_bytes, lambda t: ("13a", False, t)),
    "bleu._ngrams intl lower": (bleu._ngrams, bleu._ngrams_bytes, lambda t: ("intl", True, t)),
    "rouge._tokens": (rouge._tokens, _memo.weigh_tokens, lambda t: (t, False)),
    "rouge._tokens stemmed": (rouge._tokens, _memo.weigh_tokens, lambda t: (t, True)),
    "rouge._features": (rouge._features, rouge._features_bytes, lambda t: (t, True)),
    "rouge._sentences": (rouge._sentences, rouge._sentences_bytes, lambda t: (t, True)),
    "rouge._single": (rouge._single, rouge._single_bytes, lambda t: (t, t[::-1], True, False)),
    "meteor.tokenize": (meteor.tokenize, _memo.weigh_tokens, lambda t: (t,)),
    "meteor._single": (
        meteor._single,
        meteor._single_bytes,
        lambda t: (t, t[::-1], 0.9, 3.0, 0.5),
    ),
}

#: (words, lines, texts measured): sizes are averaged over several texts, so that
#: state a library keeps between calls (e.g. its last input) does not count.
_SIZES = {"short": (4, 1, 200), "sentence": (25, 1, 50), "long": (1_700, 20, 4)}


def _real_bytes(fn: Any, keys: Callable[[], list[tuple[Any, ...]]]) -> int:
    """Bytes traced while building the keys' strings and the values (kept alive)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        built = [(key, fn.__wrapped__(*key)) for key in keys()]
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del built
    return held


@pytest.mark.parametrize("size", list(_SIZES))
@pytest.mark.parametrize("name", list(_WEIGHED))
def test_memo_weight_is_within_a_factor_of_the_real_size(name: str, size: str) -> None:
    fn, weigh, make_args = _WEIGHED[name]
    words, lines, count = _SIZES[size]

    def keys() -> list[tuple[Any, ...]]:  # equal texts on every call, new objects
        return [make_args(_text(42 + i, words, lines=lines)) for i in range(count)]

    _memo.set_budget(0)  # nested memoised calls keep nothing
    for key in keys():  # warm-up: regexes, WordNet, word caches for these words
        fn.__wrapped__(*key)
    real = _real_bytes(fn, keys) + count * _memo.ENTRY_BYTES  # measured below
    estimate = sum(weigh(key, fn.__wrapped__(*key)) for key in keys())
    assert 1 / 3 <= estimate / real <= 3, (estimate / count, real / count)


def test_memo_entry_overhead_is_close_to_measured() -> None:
    echo = _memo.memo(lambda args, value: _memo.ENTRY_BYTES)(lambda key: key)
    keys = list(range(1_000, 21_000))  # ints: no new objects but the entries'
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in keys:
            echo(k)
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / len(keys)
    finally:
        tracemalloc.stop()
    assert _memo.stats()["entries"] == len(keys)
    assert _memo.ENTRY_BYTES / 2 <= per_entry <= _memo.ENTRY_BYTES * 1.5, per_entry


@pytest.mark.parametrize(
    "cache", [rouge._stem, meteor._stem, meteor._synonyms], ids=["rouge", "meteor", "synonyms"]
)
def test_word_caches_bound_words_and_skip_long_ones(cache: Any) -> None:
    assert cache.cache_info().maxsize == 1 << 15
    cache.cache_clear()
    assert cache("running") == cache.__wrapped__("running")
    long_word = "running" * 5  # 35 characters
    assert cache(long_word) == cache.__wrapped__(long_word)
    assert cache.cache_info().currsize == 1  # "running" only
    assert meteor._synset_names.cache_info().maxsize == 1 << 15


@pytest.mark.parametrize("tokenize", ["13a", "intl", "zh", "char"])
def test_bleu_leaves_sacrebleu_line_caches_empty(tokenize: str) -> None:
    # sacrebleu's own per-line lru_caches (65,536 whole lines each) would hold
    # every unique text again, outside the budget.
    classes = [type(bleu._tokenizer(tokenize).tokenizer), TokenizerRegexp]
    before = [c.__call__.cache_info().currsize for c in classes]  # type: ignore[attr-defined]
    text = f"Hello, {tokenize} world! 东京 (x-y) 3.5"
    pair = TextPair(text, (text.upper(),))
    got = bleu.pair_values([pair], options=BleuOptions(tokenize=tokenize))
    after = [c.__call__.cache_info().currsize for c in classes]  # type: ignore[attr-defined]
    assert after == before
    want = sacrebleu.sentence_bleu(text, [text.upper()], tokenize=tokenize)
    assert got[0][2:] == (*want.counts, *want.totals)
