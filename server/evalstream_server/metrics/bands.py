"""Quality bands: the documented words for a score, from one table.

Every evalstream score carries a band, so that results describe themselves
(as sacrebleu's signatures do). The cutoffs are the ones the product documents
in the .proto comments; they live here once, in :data:`BANDS`, and the named
functions are thin wrappers over :func:`band`.

A band is chosen by the first cutoff the value reaches (``value >= cutoff``),
so a value exactly on a cutoff takes the higher band: ``f1_band(0.90)`` is
``"excellent"`` while ``f1_band(0.8999)`` is ``"good"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "BANDS",
    "Band",
    "band",
    "bertscore_band",
    "bleu_band",
    "f1_band",
    "iou_band",
    "meteor_band",
    "precision_recall_band",
    "rouge_band",
]


@dataclass(frozen=True, slots=True)
class Band:
    """Ordered cutoffs for one score.

    Attributes:
        cutoffs: ``(cutoff, label)`` pairs, highest cutoff first; a value takes
            the label of the first cutoff it reaches.
        floor: Label for a value below every cutoff.
    """

    cutoffs: tuple[tuple[float, str], ...]
    floor: str

    def label(self, value: float) -> str:
        """Returns the label for ``value``.

        Raises:
            ValueError: ``value`` is NaN (it would silently fall to the floor).
        """
        if math.isnan(value):
            raise ValueError(f"cannot band NaN (labels: {', '.join(self.labels)})")
        for cutoff, name in self.cutoffs:
            if value >= cutoff:
                return name
        return self.floor

    @property
    def labels(self) -> tuple[str, ...]:
        """All labels, best first."""
        return (*(name for _, name in self.cutoffs), self.floor)


_PRECISION_RECALL = Band(((0.90, "high"), (0.70, "medium")), "low")

#: Band tables by score name. Box figures are keyed by the figure names used
#: in :mod:`evalstream_server.metrics.boxes` (precision, recall, f1, mean_iou).
BANDS: Mapping[str, Band] = MappingProxyType(
    {
        "f1": Band(
            ((0.90, "excellent"), (0.75, "good"), (0.60, "acceptable")), "needs_improvement"
        ),
        "mean_iou": Band(((0.80, "very_tight"), (0.60, "good"), (0.50, "acceptable")), "poor"),
        "precision": _PRECISION_RECALL,
        "recall": _PRECISION_RECALL,
        "bleu": Band(((0.50, "high"), (0.30, "moderate"), (0.10, "low")), "poor"),
        "bertscore": Band(((0.90, "excellent"), (0.80, "good"), (0.70, "moderate")), "poor"),
        "meteor": Band(((0.60, "excellent"), (0.40, "good"), (0.20, "acceptable")), "poor"),
        "rouge": Band(((0.50, "high"), (0.30, "moderate"), (0.15, "low")), "very_poor"),
    }
)


def band(name: str, value: float) -> str:
    """Returns the quality band of ``value`` for the score called ``name``.

    Args:
        name: A key of :data:`BANDS`.
        value: The score, normally in [0, 1].

    Returns:
        A lowercase snake_case label.

    Raises:
        ValueError: ``name`` is unknown (the message lists the valid names), or
            ``value`` is NaN.

    Example:
        >>> band("f1", 0.9)
        'excellent'
        >>> band("mean_iou", 0.55)
        'acceptable'
    """
    try:
        table = BANDS[name]
    except KeyError:
        valid = ", ".join(sorted(BANDS))
        raise ValueError(f"unknown band {name!r}; valid names: {valid}") from None
    return table.label(value)


def f1_band(value: float) -> str:
    """F1 band: >= 0.90 excellent, >= 0.75 good, >= 0.60 acceptable, else needs_improvement.

    Example:
        >>> f1_band(0.75), f1_band(0.7499)
        ('good', 'acceptable')
    """
    return band("f1", value)


def iou_band(value: float) -> str:
    """Mean-IoU band: >= 0.80 very_tight, >= 0.60 good, >= 0.50 acceptable, else poor.

    Example:
        >>> iou_band(0.8), iou_band(0.49)
        ('very_tight', 'poor')
    """
    return band("mean_iou", value)


def precision_recall_band(value: float) -> str:
    """Precision or recall band: >= 0.90 high, >= 0.70 medium, else low.

    Example:
        >>> precision_recall_band(0.7), precision_recall_band(0.69)
        ('medium', 'low')
    """
    return band("precision", value)


def bleu_band(value: float) -> str:
    """BLEU band (score in [0, 1]): >= 0.50 high, >= 0.30 moderate, >= 0.10 low, else poor.

    Example:
        >>> bleu_band(0.3)
        'moderate'
    """
    return band("bleu", value)


def bertscore_band(value: float) -> str:
    """BERTScore band: >= 0.90 excellent, >= 0.80 good, >= 0.70 moderate, else poor.

    Example:
        >>> bertscore_band(0.85)
        'good'
    """
    return band("bertscore", value)


def meteor_band(value: float) -> str:
    """METEOR band: >= 0.60 excellent, >= 0.40 good, >= 0.20 acceptable, else poor.

    Example:
        >>> meteor_band(0.2)
        'acceptable'
    """
    return band("meteor", value)


def rouge_band(value: float) -> str:
    """ROUGE band: >= 0.50 high, >= 0.30 moderate, >= 0.15 low, else very_poor.

    Example:
        >>> rouge_band(0.1)
        'very_poor'
    """
    return band("rouge", value)
