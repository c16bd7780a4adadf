"""BERTScore over a stream: bert-score's definition, fed by the shared dynamic batcher.

Reference: Zhang et al. 2020, "BERTScore: Evaluating Text Generation with BERT" (ICLR),
and bert-score 0.3.13 (github.com/tiiiger/bert_score, ``bert_score/utils.py``
``greedy_cos_idf``, ``bert_score/score.py`` ``score``), reproduced to |Δ| <= 1e-4 in fp32
with the same model, layer and options (tested). Where it must differ it says so: idf is
taken over the references of one batch (one ``update``), a side whose weights are all 0
is undefined (``value=None`` with a reason) rather than NaN, and the max runs over real
tokens only, independent of the batch. Aggregates are means over pairs.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from evalstream_server.metrics.bands import band
from evalstream_server.metrics.text._types import Score, TextBatchScores, TextPair

__all__ = [
    "NAMES",
    "PRF",
    "BaselineNotFound",
    "BertScoreAccumulator",
    "IdfTable",
    "baseline_path",
    "bertscore_available",
    "greedy_match",
    "load_baseline",
    "rescale",
]

#: Score names, in the order of every tuple this module returns.
NAMES = ("bertscore_precision", "bertscore_recall", "bertscore_f1")


class BaselineNotFound(FileNotFoundError):
    """Rescaling was asked for, but there is no baseline for this model, language or layer."""


def bertscore_available() -> bool:
    """True when torch, transformers and bert-score are importable (the server extra).

    The model itself is ready only once ``runtime.models.ModelHandle.ready``.

    Example:
        >>> isinstance(bertscore_available(), bool)
        True
    """
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("torch", "transformers", "bert_score")
    )


def _bert_score_dir() -> Path | None:
    # Found without importing bert_score (its __init__ imports matplotlib and pandas).
    spec = importlib.util.find_spec("bert_score")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _bert_score_version() -> str:
    """The installed bert-score distribution's version, as pip reports it.

    Not its ``__version__``: bert-score 0.3.13 still says 0.3.12 there (and in
    its own hash), which would name a release that is not installed.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bert-score")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class PRF:
    """Precision, recall and F1 of one pair; None where undefined."""

    precision: float | None
    recall: float | None
    f1: float | None

    def values(self) -> tuple[float | None, float | None, float | None]:
        """(precision, recall, f1)."""
        return (self.precision, self.recall, self.f1)


@dataclass(frozen=True, slots=True)
class IdfTable:
    """bert-score's ``get_idf_dict``: idf of token ids over a set of documents.

    Example:
        >>> table = IdfTable.from_documents([[101, 7, 102], [101, 8, 102]])
        >>> round(table.weight(7), 4), table.weight(101), round(table.weight(9), 4)
        (0.4055, 0.0, 1.0986)
    """

    counts: Mapping[int, int]
    num_docs: int

    @classmethod
    def from_documents(cls, documents: Iterable[Sequence[int]]) -> IdfTable:
        """Counts, per token id, the documents that contain it."""
        counts: Counter[int] = Counter()
        num_docs = 0
        for doc in documents:
            counts.update(set(doc))
            num_docs += 1
        return cls(dict(counts), num_docs)

    def weight(self, token_id: int) -> float:
        """ln((M + 1) / (df + 1)); an unseen token has df = 0."""
        return math.log((self.num_docs + 1) / (self.counts.get(token_id, 0) + 1))


def token_weights(
    token_ids: Sequence[int], *, idf: IdfTable | None, special_ids: frozenset[int]
) -> list[float]:
    """Weights of a sentence's tokens: idf, or 1 with [CLS]/[SEP] at 0 (bert-score's default).

    Example:
        >>> token_weights([101, 7, 7, 102], idf=None, special_ids=frozenset({101, 102}))
        [0.0, 1.0, 1.0, 0.0]
    """
    if idf is None:
        return [0.0 if t in special_ids else 1.0 for t in token_ids]
    return [idf.weight(t) for t in token_ids]


def greedy_match(
    candidate: Any,
    reference: Any,
    candidate_weights: Sequence[float],
    reference_weights: Sequence[float],
    *,
    empty: bool = False,
) -> PRF:
    """bert-score's ``greedy_cos_idf`` for one pair.

    Args:
        candidate: (n, d) tensor of unit-norm token vectors of the prediction.
        reference: (m, d) tensor of unit-norm token vectors of the reference.
        candidate_weights: n weights (idf, or 1 with specials at 0).
        reference_weights: m weights.
        empty: The candidate or the reference has no token besides the special
            ones: P = R = F = 0, as bert-score sets them.

    Returns:
        P, R and F1 in float32 arithmetic like bert-score; a side whose weights
        sum to 0 is undefined (None), and so is F1 then.

    Example:
        >>> import torch
        >>> c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> r = torch.tensor([[1.0, 0.0]])
        >>> prf = greedy_match(c, r, [1.0, 1.0], [1.0])
        >>> prf.precision, prf.recall, round(prf.f1, 4)
        (0.5, 1.0, 0.6667)
    """
    import torch

    if empty:
        return PRF(0.0, 0.0, 0.0)
    sim = candidate @ reference.transpose(0, 1)
    word_precision = sim.max(dim=1).values
    word_recall = sim.max(dim=0).values
    p = _weighted(word_precision, candidate_weights)
    r = _weighted(word_recall, reference_weights)
    if p is None or r is None:
        return PRF(_item(p), _item(r), None)
    f = 2 * p * r / (p + r)
    f = torch.nan_to_num(f, nan=0.0)  # P + R == 0: bert-score reports 0
    return PRF(_item(p), _item(r), _item(f))


def _weighted(values: Any, weights: Sequence[float]) -> Any:
    import torch

    w = torch.tensor(list(weights), dtype=torch.float32)
    total = w.sum()
    if float(total) == 0.0:
        return None
    return (values * (w / total)).sum()


def _item(value: Any) -> float | None:
    return None if value is None else float(value)


def best_of(prfs: Sequence[PRF]) -> PRF:
    """bert-score's multi-reference rule: the maximum of P, of R and of F, each separately.

    An undefined value among them makes that maximum undefined (NaN propagates
    through bert-score's ``max``).

    Example:
        >>> best_of([PRF(0.9, 0.5, 0.64), PRF(0.6, 0.8, 0.69)])
        PRF(precision=0.9, recall=0.8, f1=0.69)
    """
    out: list[float | None] = []
    for values in zip(*(p.values() for p in prfs), strict=True):
        out.append(
            None if any(v is None for v in values) else max(v for v in values if v is not None)
        )
    return PRF(*out)


def rescale(prf: PRF, baseline: tuple[float, float, float]) -> PRF:
    """bert-score's baseline rescaling, (x - b) / (1 - b), for P, R and F each.

    Example:
        >>> rescale(PRF(0.9, 0.8, None), (0.8, 0.8, 0.8)).precision
        0.5
    """
    out = [
        None if v is None else (v - b) / (1 - b)
        for v, b in zip(prf.values(), baseline, strict=True)
    ]
    return PRF(*out)


def baseline_path(model_name: str, *, lang: str = "en") -> Path:
    """Where bert-score keeps its baseline for a model: ``rescale_baseline/<lang>/<model>.tsv``.

    Example:
        >>> baseline_path("roberta-large").name
        'roberta-large.tsv'
    """
    root = _bert_score_dir() or Path("bert_score")
    return root / "rescale_baseline" / lang / f"{model_name}.tsv"


def load_baseline(
    model_name: str, layer: int, *, lang: str = "en", path: Path | None = None
) -> tuple[float, float, float]:
    """(P, R, F) baselines of ``layer`` from bert-score's file (row ``layer``, as its ``iloc``).

    Raises:
        BaselineNotFound: no such file, or no row for that layer.

    Example:
        >>> [round(b, 4) for b in load_baseline("roberta-large", 17)]
        [0.8315, 0.8315, 0.8312]
    """
    file = path if path is not None else baseline_path(model_name, lang=lang)
    if not file.is_file():
        raise BaselineNotFound(
            f"cannot rescale BERTScore: bert-score ships no baseline for model "
            f"{model_name!r} and language {lang!r} (missing file {file}); score without "
            f"rescaling, or pass a baseline file made with bert-score's get_rescale_baseline"
        )
    with file.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    data = rows[1:]
    if not 0 <= layer < len(data):
        raise BaselineNotFound(
            f"cannot rescale BERTScore: {file} has rows for layers 0..{len(data) - 1}, not {layer}"
        )
    p, r, f = (float(x) for x in data[layer][1:4])
    return (p, r, f)


class _Embedder(Protocol):
    """The part of ``runtime.batcher.DynamicBatcher`` the accumulator uses."""

    encoder: Any

    def embed(
        self,
        texts: Sequence[str],
        *,
        cancelled: Callable[[], bool] | None = None,
        timeout: float | None = None,
    ) -> list[Any]: ...


class BertScoreAccumulator:
    """BERTScore P, R and F1 per pair, per batch and running over one stream.

    ``update`` blocks on the shared batcher's futures: call it from the
    stream's handler thread; many streams may call at once.
    """

    family = "bertscore"

    def __init__(
        self,
        batcher: _Embedder,
        *,
        idf: bool = False,
        rescale_with_baseline: bool = False,
        lang: str = "en",
        baseline_file: Path | None = None,
        timeout: float | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        """Fixes the options of the stream.

        Args:
            batcher: The server's ``DynamicBatcher`` (its ``encoder.info``
                names the model, layer, tokenizer, dtype and device).
            idf: Weight tokens by idf over the references of each batch.
            rescale_with_baseline: Rescale with bert-score's baseline for the
                model, ``lang`` and layer.
            lang: Language of the baseline file.
            baseline_file: A custom baseline file instead of bert-score's.
            timeout: Seconds one ``update`` may wait for embeddings.
            cancelled: Returns True once the stream is over (e.g. the RPC was
                cancelled): its waiting sentences are then dropped.

        Raises:
            BaselineNotFound: rescaling asked for, and no baseline file.
        """
        self._batcher = batcher
        info = batcher.encoder.info
        self._special_ids: frozenset[int] = info.special_ids
        self._num_special: int = info.num_special
        self._max_length: int = info.max_length
        self._idf = idf
        self._timeout = timeout
        self._cancelled = cancelled
        self._baseline: tuple[float, float, float] | None = None
        if rescale_with_baseline:
            self._baseline = load_baseline(info.name, info.layer, lang=lang, path=baseline_file)
        rescaled = "no" if not rescale_with_baseline else ("custom" if baseline_file else lang)
        import torch

        self.signature = (
            f"model:{info.name}|layer:{info.layer}|idf:{'yes' if idf else 'no'}"
            f"|rescaled:{rescaled if rescaled == 'no' else 'yes-' + rescaled}"
            f"|tok:{info.tokenizer}|version:bert-score-{_bert_score_version()}"
            f"|torch-{torch.__version__.split('+')[0]}|dtype:{info.dtype}|device:{info.device}"
        )
        self._sums = [0.0, 0.0, 0.0]
        self._counts = [0, 0, 0]

    def score_pairs(self, pairs: Sequence[TextPair]) -> list[tuple[PRF, str]]:
        """Per pair (P, R, F) and a note ("" or what was truncated); the running state is untouched.

        Raises:
            ValueError: a pair has no reference.
            runtime.batcher.BatcherOverloaded: the batcher's queue is full.
        """
        for i, pair in enumerate(pairs):
            if not pair.references:
                raise ValueError(f"pairs[{i}].references: BERTScore needs at least one reference")
        texts = list(
            dict.fromkeys([p.prediction for p in pairs] + [r for p in pairs for r in p.references])
        )
        if not texts:
            return []
        embs = dict(
            zip(
                texts,
                self._batcher.embed(texts, cancelled=self._cancelled, timeout=self._timeout),
                strict=True,
            )
        )
        table = None
        if self._idf:
            table = IdfTable.from_documents(embs[r].token_ids for p in pairs for r in p.references)
        weights: dict[str, list[float]] = {}

        def weights_of(text: str) -> list[float]:
            if text not in weights:
                weights[text] = token_weights(
                    embs[text].token_ids, idf=table, special_ids=self._special_ids
                )
            return weights[text]

        out: list[tuple[PRF, str]] = []
        for pair in pairs:
            cand = embs[pair.prediction]
            per_ref = []
            for ref_text in pair.references:
                ref = embs[ref_text]
                empty = min(len(cand.token_ids), len(ref.token_ids)) <= self._num_special
                per_ref.append(
                    greedy_match(
                        cand.vectors,
                        ref.vectors,
                        weights_of(pair.prediction),
                        weights_of(ref_text),
                        empty=empty,
                    )
                )
            prf = best_of(per_ref)
            if self._baseline is not None:
                prf = rescale(prf, self._baseline)
            out.append((prf, self._note(pair, embs)))
        return out

    def _note(self, pair: TextPair, embs: Mapping[str, Any]) -> str:
        parts = []
        if embs[pair.prediction].truncated:
            parts.append("prediction")
        parts += [f"reference {i}" for i, r in enumerate(pair.references) if embs[r].truncated]
        if not parts:
            return ""
        return f"truncated to {self._max_length} tokens: {', '.join(parts)}"

    def update(self, pairs: Sequence[TextPair]) -> TextBatchScores:
        """Scores a batch and folds it into the stream's running means.

        Raises:
            ValueError: a pair has no reference.
            runtime.batcher.BatcherOverloaded: the batcher's queue is full.
            TimeoutError: embeddings took longer than ``timeout``.
        """
        scored = self.score_pairs(pairs)
        per_pair = tuple(self._scores(prf.values(), note) for prf, note in scored)
        sums = [0.0, 0.0, 0.0]
        counts = [0, 0, 0]
        for prf, _ in scored:
            for k, value in enumerate(prf.values()):
                if value is not None:
                    sums[k] += value
                    counts[k] += 1
        for k in range(3):
            self._sums[k] += sums[k]
            self._counts[k] += counts[k]
        return TextBatchScores(pairs=per_pair, batch=self._means(sums, counts, "batch"))

    @property
    def running(self) -> tuple[Score, ...]:
        """Means over every pair of the stream so far."""
        return self._means(self._sums, self._counts, "stream")

    def _means(self, sums: Sequence[float], counts: Sequence[int], scope: str) -> tuple[Score, ...]:
        values = [s / c if c else None for s, c in zip(sums, counts, strict=True)]
        reasons = ["" if c else f"no pair of the {scope} has a defined value" for c in counts]
        return tuple(
            Score(name, v, "" if v is None else band("bertscore", v), self.signature, why)
            for name, v, why in zip(NAMES, values, reasons, strict=True)
        )

    def _scores(self, values: Sequence[float | None], note: str) -> tuple[Score, ...]:
        out = []
        for name, value in zip(NAMES, values, strict=True):
            if value is None:
                why = (
                    "a side's token weights sum to 0 "
                    "(with idf: every token occurs in every reference of the batch)"
                )
                reason = f"{why}; {note}" if note else why
                out.append(Score(name, None, "", self.signature, reason))
            else:
                out.append(Score(name, value, band("bertscore", value), self.signature, note))
        return tuple(out)
