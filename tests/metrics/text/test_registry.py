"""The text registry: families by name, option and pair validation."""

from __future__ import annotations

import pytest
from evalstream_server.errors import MAX_VIOLATIONS
from evalstream_server.metrics.text._types import TextPair
from evalstream_server.metrics.text.registry import (
    FAMILIES,
    BleuOptions,
    FieldViolation,
    MeteorOptions,
    RougeOptions,
    make_accumulator,
    validate_options,
    validate_pairs,
)


def test_families() -> None:
    assert FAMILIES == ("bleu", "rouge", "meteor", "bertscore")


@pytest.mark.parametrize(
    ("family", "options"),
    [("bleu", BleuOptions()), ("rouge", RougeOptions()), ("meteor", MeteorOptions())],
)
def test_make_accumulator_builds_each_family(family: str, options: object) -> None:
    acc = make_accumulator(family, options)
    assert acc.family == family
    out = acc.update([TextPair("a small dog", ("a little dog",))])
    assert len(out.pairs) == 1 and out.batch and acc.running == out.batch


def test_make_accumulator_unknown_family_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="valid names: bleu, rouge, meteor, bertscore"):
        make_accumulator("chrf", BleuOptions())


def test_make_accumulator_bertscore_is_built_by_the_runtime() -> None:
    with pytest.raises(ValueError, match="built by the runtime"):
        make_accumulator("bertscore", None)


def test_make_accumulator_refuses_invalid_options() -> None:
    with pytest.raises(ValueError, match=r"options\.bleu\.tokenize: 'ja-mecab'"):
        make_accumulator("bleu", BleuOptions(tokenize="ja-mecab"))
    with pytest.raises(ValueError, match="expected RougeOptions"):
        make_accumulator("rouge", BleuOptions())


@pytest.mark.parametrize(
    ("family", "options", "field", "needle"),
    [
        ("bleu", BleuOptions(tokenize="spm"), "options.bleu.tokenize", "13a, intl, zh, char, none"),
        ("bleu", BleuOptions(smooth_method="add-one"), "options.bleu.smooth_method", "exp, floor"),
        (
            "bleu",
            BleuOptions(smooth_method="floor", smooth_value=-1),
            "options.bleu.smooth_value",
            ">= 0",
        ),
        (
            "bleu",
            BleuOptions(smooth_method="add-k", smooth_value=float("nan")),
            "options.bleu.smooth_value",
            "finite",
        ),
        (
            "bleu",
            BleuOptions(smooth_method="exp", smooth_value=0.2),
            "options.bleu.smooth_value",
            "only to floor",
        ),
        ("meteor", MeteorOptions(alpha=1.5), "options.meteor.alpha", "[0, 1]"),
        ("meteor", MeteorOptions(beta=-1.0), "options.meteor.beta", ">= 0"),
        ("meteor", MeteorOptions(gamma=float("inf")), "options.meteor.gamma", "[0, 1]"),
        ("rouge", MeteorOptions(), "options.rouge", "expected RougeOptions"),
    ],
)
def test_validate_options_names_the_field(
    family: str, options: object, field: str, needle: str
) -> None:
    (violation,) = validate_options(family, options)
    assert violation.field == field
    assert needle in violation.description


@pytest.mark.parametrize(
    ("family", "options"),
    [
        (
            "bleu",
            BleuOptions(tokenize="char", lowercase=True, smooth_method="add-k", smooth_value=2),
        ),
        ("bleu", BleuOptions(smooth_method="floor", smooth_value=0.0)),
        ("rouge", RougeOptions(use_stemmer=False, rouge_lsum=True)),
        ("meteor", MeteorOptions(alpha=0.0, beta=0.0, gamma=1.0)),
        ("bertscore", object()),
    ],
)
def test_validate_options_accepts_valid(family: str, options: object) -> None:
    assert validate_options(family, options) == []


def test_validate_options_unknown_family() -> None:
    with pytest.raises(ValueError, match="valid names"):
        validate_options("ter", BleuOptions())


def _check(pairs: list[TextPair], *, reference_count: int | None = None) -> list[FieldViolation]:
    return validate_pairs(
        pairs, max_pairs=4, max_references=3, max_chars=10, reference_count=reference_count
    )


def test_validate_pairs_accepts_valid() -> None:
    assert _check([TextPair("", ("",)), TextPair("0123456789", ("a", "b", "c"))]) == []


def test_validate_pairs_names_each_problem() -> None:
    pairs = [
        TextPair("ok", ("ok",)),
        TextPair("x" * 11, ("ok",)),
        TextPair("ok", ()),
        TextPair("ok", ("a", "b", "c", "d")),
        TextPair("ok", ("fine", "y" * 11)),
    ]
    got = _check(pairs)
    assert got == [
        FieldViolation("pairs", "5 pairs but at most 4 per batch"),
        FieldViolation("pairs[1].prediction", "11 characters but at most 10"),
        FieldViolation("pairs[2].references", "no references; at least 1 is needed"),
        FieldViolation("pairs[3].references", "4 references but at most 3 per pair"),
        FieldViolation("pairs[4].references[1]", "11 characters but at most 10"),
    ]


def test_validate_pairs_reference_count() -> None:
    pairs = [TextPair("a", ("a", "b")), TextPair("a", ("a",))]
    assert _check(pairs) == []
    assert _check(pairs, reference_count=2) == [
        FieldViolation("pairs[1].references", "1 references but this stream has 2 per pair")
    ]


def test_validate_pairs_caps_violations() -> None:
    pairs = [TextPair("a", ())] * (MAX_VIOLATIONS + 5)
    got = validate_pairs(
        pairs, max_pairs=10_000, max_references=3, max_chars=10, reference_count=None
    )
    assert len(got) == MAX_VIOLATIONS
    assert got[-1].description.endswith("(and 5 more violations not listed)")
