"""Types shared by the text metrics: pairs in, self-describing scores out.

Every text metric is an accumulator (STYLE.md 3: sufficient statistics plus a
finish): ``update(pairs)`` scores one batch and folds its statistics into the
stream's running state, so the running corpus score of a stream costs nothing
extra. No grpc or protobuf here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TextPair:
    """One prediction with one or more references."""

    prediction: str
    references: tuple[str, ...]
    specimen_id: str = ""


@dataclass(frozen=True, slots=True)
class Score:
    """One named score with its band and signature; ``value`` None means undefined.

    Attributes:
        name: e.g. "bleu", "rouge1_recall", "rougeL_fmeasure", "meteor", "bertscore_f1".
        value: The score (fractions in [0, 1]; BLEU is sacrebleu's score / 100), never NaN.
        band: Quality band from metrics.bands ("" when undefined).
        signature: How it was computed, sacrebleu-style "key:value|key:value".
        reason: Why the value is undefined; when the value is defined, a remark
            that qualifies it (e.g. BERTScore's "truncated to 512 tokens: prediction"),
            usually "".
    """

    name: str
    value: float | None
    band: str
    signature: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TextBatchScores:
    """The answer of one ``update``: per-pair scores (input order) and batch corpus scores."""

    pairs: tuple[tuple[Score, ...], ...]
    batch: tuple[Score, ...]


class TextAccumulator(Protocol):
    """Running state of one metric family over one stream."""

    family: str  # "bleu", "rouge", "meteor" or "bertscore"

    def update(self, pairs: Sequence[TextPair]) -> TextBatchScores:
        """Scores a batch and folds it into the running state."""
        ...

    @property
    def running(self) -> tuple[Score, ...]:
        """Corpus scores over every pair of the stream so far."""
        ...
