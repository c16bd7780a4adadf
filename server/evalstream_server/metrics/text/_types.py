"""Types shared by the text metrics: pairs and options in, self-describing scores out.

A leaf: the registry and the metric modules (bleu, rouge, meteor) all import it,
and it imports neither, so they never import each other.

Every text metric is an accumulator (sufficient statistics plus a finish, as
in sacrebleu and torchmetrics): ``update(pairs)`` scores one batch and folds
its statistics into the stream's running state, so the running corpus score of
a stream costs nothing extra. No grpc or protobuf here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "BLEU_SMOOTH_METHODS",
    "BLEU_TOKENIZERS",
    "BleuOptions",
    "MeteorOptions",
    "RougeOptions",
    "Score",
    "TextAccumulator",
    "TextBatchScores",
    "TextOptions",
    "TextPair",
]


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


# ---------------------------------------------------------------- options

#: sacrebleu tokenizers served: the ones that need no extra package or model
#: (ja-mecab, ko-mecab and the spm/flores tokenizers do).
BLEU_TOKENIZERS: tuple[str, ...] = ("13a", "intl", "zh", "char", "none")

#: sacrebleu's smoothing methods (``BLEU.SMOOTH_DEFAULTS``).
BLEU_SMOOTH_METHODS: tuple[str, ...] = ("exp", "floor", "add-k", "none")


@dataclass(frozen=True, slots=True)
class BleuOptions:
    """sacrebleu BLEU options (``sacrebleu.metrics.BLEU``'s arguments of the same names).

    Attributes:
        tokenize: One of :data:`BLEU_TOKENIZERS`.
        lowercase: Lowercase before tokenizing (signature ``case:lc``).
        smooth_method: One of :data:`BLEU_SMOOTH_METHODS`.
        smooth_value: For ``floor`` (default 0.1) and ``add-k`` (default 1); None
            takes sacrebleu's default.
    """

    tokenize: str = "13a"
    lowercase: bool = False
    smooth_method: str = "exp"
    smooth_value: float | None = None


@dataclass(frozen=True, slots=True)
class RougeOptions:
    """rouge-score options.

    Attributes:
        use_stemmer: Porter-stem tokens longer than 3 characters (rouge-score's
            ``use_stemmer``).
        rouge_lsum: Also score rougeLsum (summary-level LCS over sentences split
            on newlines, rouge-score's ``split_summaries=False``).
    """

    use_stemmer: bool = True
    rouge_lsum: bool = False


@dataclass(frozen=True, slots=True)
class MeteorOptions:
    """NLTK METEOR parameters (``meteor_score``'s alpha, beta and gamma).

    Attributes:
        alpha: Relative weight of precision and recall, in [0, 1].
        beta: Shape of the fragmentation penalty, >= 0.
        gamma: Weight of the fragmentation penalty, in [0, 1].
    """

    alpha: float = 0.9
    beta: float = 3.0
    gamma: float = 0.5


TextOptions = BleuOptions | RougeOptions | MeteorOptions
