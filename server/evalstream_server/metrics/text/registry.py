"""The text metrics by name: options, validation and accumulators.

Like sacrebleu's ``METRICS = {'BLEU': BLEU, ...}`` (sacrebleu/metrics/__init__.py), a
family is chosen by name, its heavy parts are imported on first use, and an unknown name
is an error that lists the valid names. The registry imports the metric modules, never
the reverse: the options they need live in the leaf :mod:`._types` (re-exported here,
beside their validation). Families: ``bleu`` (sacrebleu), ``rouge`` (rouge-score),
``meteor`` (NLTK); ``bertscore`` (bert-score) is built by the runtime.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from evalstream_server.errors import MAX_VIOLATIONS, FieldViolation, cap_violations
from evalstream_server.metrics.text._types import (
    BLEU_SMOOTH_METHODS,
    BLEU_TOKENIZERS,
    BleuOptions,
    MeteorOptions,
    RougeOptions,
    TextAccumulator,
    TextOptions,
    TextPair,
)

__all__ = [
    "BLEU_SMOOTH_METHODS",
    "BLEU_TOKENIZERS",
    "FAMILIES",
    "BleuOptions",
    "MeteorOptions",
    "RougeOptions",
    "TextOptions",
    "make_accumulator",
    "validate_options",
    "validate_pairs",
]

FAMILIES: tuple[str, ...] = ("bleu", "rouge", "meteor", "bertscore")

# Smoothing methods that take smooth_value; sacrebleu silently ignores it for
# the others, which we refuse instead so that a request means what it says.
_SMOOTH_WITH_VALUE = ("floor", "add-k")


_OPTION_TYPES: dict[str, type] = {
    "bleu": BleuOptions,
    "rouge": RougeOptions,
    "meteor": MeteorOptions,
}


def _unknown_family(family: str) -> ValueError:
    return ValueError(f"unknown text metric {family!r}; valid names: {', '.join(FAMILIES)}")


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def validate_options(family: str, options: object) -> list[FieldViolation]:
    """Checks one family's options against the contract.

    Args:
        family: ``"bleu"``, ``"rouge"`` or ``"meteor"`` (``"bertscore"`` options
            are checked by the runtime).
        options: That family's options dataclass.

    Returns:
        Violations with fields like ``options.bleu.tokenize``; empty when valid.

    Raises:
        ValueError: ``family`` is unknown (the message lists the valid names).

    Example:
        >>> validate_options("bleu", BleuOptions(tokenize="spm"))  # doctest: +NORMALIZE_WHITESPACE
        [FieldViolation(field='options.bleu.tokenize',
          description="'spm' is not a served tokenizer; valid names: 13a, intl, zh, char, none")]
        >>> validate_options("meteor", MeteorOptions(alpha=0.85))
        []
    """
    if family not in FAMILIES:
        raise _unknown_family(family)
    if family == "bertscore":
        return []
    prefix = f"options.{family}"
    expected = _OPTION_TYPES[family]
    if not isinstance(options, expected):
        return [
            FieldViolation(prefix, f"expected {expected.__name__}, got {type(options).__name__}")
        ]
    out: list[FieldViolation] = []
    if isinstance(options, BleuOptions):
        if options.tokenize not in BLEU_TOKENIZERS:
            out.append(
                FieldViolation(
                    f"{prefix}.tokenize",
                    f"{options.tokenize!r} is not a served tokenizer; valid names: "
                    + ", ".join(BLEU_TOKENIZERS),
                )
            )
        if options.smooth_method not in BLEU_SMOOTH_METHODS:
            out.append(
                FieldViolation(
                    f"{prefix}.smooth_method",
                    f"{options.smooth_method!r} is not a smoothing method; valid names: "
                    + ", ".join(BLEU_SMOOTH_METHODS),
                )
            )
        value = options.smooth_value
        if value is not None:
            if not _finite(value) or value < 0:
                out.append(
                    FieldViolation(
                        f"{prefix}.smooth_value", f"{value!r} is not a finite number >= 0"
                    )
                )
            elif options.smooth_method in BLEU_SMOOTH_METHODS and (
                options.smooth_method not in _SMOOTH_WITH_VALUE
            ):
                out.append(
                    FieldViolation(
                        f"{prefix}.smooth_value",
                        f"smooth_value {value!r} applies only to floor and add-k, "
                        f"not {options.smooth_method!r}",
                    )
                )
    elif isinstance(options, MeteorOptions):
        for name, low, high in (("alpha", 0.0, 1.0), ("beta", 0.0, math.inf), ("gamma", 0.0, 1.0)):
            value = getattr(options, name)
            if not _finite(value) or not low <= value <= high:
                span = f"[{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
                out.append(FieldViolation(f"{prefix}.{name}", f"{value!r} is not in {span}"))
    return out


def make_accumulator(family: str, options: object) -> TextAccumulator:
    """Builds the running state of one family for one stream.

    Args:
        family: ``"bleu"``, ``"rouge"`` or ``"meteor"``.
        options: That family's options (valid per :func:`validate_options`).

    Returns:
        A fresh accumulator.

    Raises:
        ValueError: ``family`` is unknown or ``"bertscore"`` (built by the
            runtime), or the options are invalid (the message shows them).
        WordNetMissing: METEOR was asked for and NLTK cannot load WordNet.

    Example:
        >>> acc = make_accumulator("bleu", BleuOptions())
        >>> acc.update([TextPair("a cat sat on the mat", ("a cat sat on the mat",))]).batch[0].value
        1.0
        >>> make_accumulator("bertscore", None)
        Traceback (most recent call last):
        ...
        ValueError: the bertscore accumulator is built by the runtime, not the text registry
    """
    if family not in FAMILIES:
        raise _unknown_family(family)
    if family == "bertscore":
        raise ValueError("the bertscore accumulator is built by the runtime, not the text registry")
    violations = validate_options(family, options)
    if violations:
        raise ValueError("; ".join(f"{v.field}: {v.description}" for v in violations))
    # Heavy imports on first use (sacrebleu, rouge-score, NLTK).
    if isinstance(options, BleuOptions):
        from evalstream_server.metrics.text.bleu import BleuAccumulator

        return BleuAccumulator(options=options)
    if isinstance(options, RougeOptions):
        from evalstream_server.metrics.text.rouge import RougeAccumulator

        return RougeAccumulator(options=options)
    if isinstance(options, MeteorOptions):
        from evalstream_server.metrics.text.meteor import MeteorAccumulator

        return MeteorAccumulator(options=options)
    raise _unknown_family(family)  # unreachable: validate_options checked the type


def validate_pairs(
    pairs: Sequence[TextPair],
    *,
    max_pairs: int,
    max_references: int,
    max_chars: int,
    reference_count: int | None,
) -> list[FieldViolation]:
    """Checks a batch of pairs against the limits.

    Args:
        pairs: The batch.
        max_pairs: Most pairs per batch.
        max_references: Most references per pair.
        max_chars: Most characters in one prediction or one reference.
        reference_count: When given, every pair must have exactly this many
            references (e.g. the count of the stream's first pair, for callers
            that want sacrebleu's fixed ``nrefs``); None accepts any count from 1
            to ``max_references`` (BLEU then reports ``nrefs:var``, as sacrebleu
            does for a variable number of references).

    Returns:
        Up to ``MAX_VIOLATIONS`` violations in batch order (the last notes any
        left out), with fields ``pairs``, ``pairs[i].prediction``,
        ``pairs[i].references`` and ``pairs[i].references[k]``; empty when valid.

    Example:
        >>> validate_pairs([TextPair("a", ())], max_pairs=8, max_references=4,
        ...                max_chars=100, reference_count=None)
        ... # doctest: +NORMALIZE_WHITESPACE
        [FieldViolation(field='pairs[0].references',
                        description='no references; at least 1 is needed')]
    """
    out: list[FieldViolation] = []
    total = 0

    def add(violation: FieldViolation) -> None:
        nonlocal total
        total += 1
        if len(out) < MAX_VIOLATIONS:
            out.append(violation)

    if len(pairs) > max_pairs:
        add(FieldViolation("pairs", f"{len(pairs)} pairs but at most {max_pairs} per batch"))
    for i, pair in enumerate(pairs):
        if len(pair.prediction) > max_chars:
            add(
                FieldViolation(
                    f"pairs[{i}].prediction",
                    f"{len(pair.prediction)} characters but at most {max_chars}",
                )
            )
        n = len(pair.references)
        if n == 0:
            add(FieldViolation(f"pairs[{i}].references", "no references; at least 1 is needed"))
        elif n > max_references:
            add(
                FieldViolation(
                    f"pairs[{i}].references",
                    f"{n} references but at most {max_references} per pair",
                )
            )
        elif reference_count is not None and n != reference_count:
            add(
                FieldViolation(
                    f"pairs[{i}].references",
                    f"{n} references but this stream has {reference_count} per pair",
                )
            )
        for k, ref in enumerate(pair.references):
            if len(ref) > max_chars:
                add(
                    FieldViolation(
                        f"pairs[{i}].references[{k}]",
                        f"{len(ref)} characters but at most {max_chars}",
                    )
                )
    return cap_violations(out, total)


def warm_up() -> list[str]:
    """Imports the reference libraries and loads WordNet, so the first stream is not slow.

    Returns:
        Problems found (e.g. WordNet missing), as messages; empty when all is well.
    """
    problems = []
    pair = [TextPair("a cat sat on the mat", ("the cat sat on a mat",))]
    for family, options in (
        ("bleu", BleuOptions()),
        ("rouge", RougeOptions()),
        ("meteor", MeteorOptions()),
    ):
        try:
            make_accumulator(family, options).update(pair)
        except RuntimeError as exc:  # WordNetMissing
            problems.append(f"{family}: {exc}")
    return problems
