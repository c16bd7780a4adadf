"""ScoreText: VQA answers scored by BLEU, ROUGE, METEOR and BERTScore over one stream.

Protobuf stops here: batches become `TextPair`s, options become the registry's
option dataclasses, and each family's accumulator (metrics/text) does the math.
BERTScore runs on the shared dynamic batcher; while it embeds, the CPU metrics
of the same batch are computed on this thread.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from evalstream.v1 import common_pb2, scoring_pb2

from evalstream_server.api._status import abort, invalid, unknown_field_violations
from evalstream_server.metrics.boxes import FieldViolation
from evalstream_server.metrics.text._types import Score, TextAccumulator, TextBatchScores, TextPair
from evalstream_server.metrics.text.registry import (
    FAMILIES,
    BleuOptions,
    MeteorOptions,
    RougeOptions,
    make_accumulator,
    validate_options,
    validate_pairs,
)
from evalstream_server.runtime.batcher import BatcherClosed, BatcherOverloaded
from evalstream_server.runtime.bertscore import BertScoreRuntime
from evalstream_server.runtime.models import ModelNotReady

METRIC_FAMILIES = {
    scoring_pb2.TEXT_METRIC_BLEU: "bleu",
    scoring_pb2.TEXT_METRIC_ROUGE: "rouge",
    scoring_pb2.TEXT_METRIC_METEOR: "meteor",
    scoring_pb2.TEXT_METRIC_BERTSCORE: "bertscore",
}


@dataclass(frozen=True, slots=True)
class TextLimits:
    """Per-message limits of ScoreText (configured by flags)."""

    max_pairs_per_batch: int = 1_000
    max_references: int = 16
    max_chars: int = 10_000
    bertscore_timeout_seconds: float = 300.0


def _families(pb: scoring_pb2.TextOptions) -> tuple[list[str], list[FieldViolation]]:
    if not pb.metrics:
        return list(FAMILIES), []
    families, violations = [], []
    for i, metric in enumerate(pb.metrics):
        family = METRIC_FAMILIES.get(metric)
        if family is None:
            violations.append(
                FieldViolation(
                    f"options.metrics[{i}]",
                    f"unknown metric {metric}; valid: {', '.join(METRIC_FAMILIES.values())}",
                )
            )
        elif family in families:
            violations.append(FieldViolation(f"options.metrics[{i}]", f"{family} is listed twice"))
        else:
            families.append(family)
    return families, violations


def family_options(pb: scoring_pb2.TextOptions) -> dict[str, object]:
    """The registry's option dataclasses from the proto options."""
    b, r, m = pb.bleu, pb.rouge, pb.meteor
    return {
        "bleu": BleuOptions(
            tokenize=b.tokenize or "13a",
            lowercase=b.lowercase,
            smooth_method=b.smooth_method or "exp",
            smooth_value=b.smooth_value if b.HasField("smooth_value") else None,
        ),
        "rouge": RougeOptions(
            use_stemmer=r.use_stemmer if r.HasField("use_stemmer") else True,
            rouge_lsum=r.rouge_lsum,
        ),
        "meteor": MeteorOptions(
            alpha=m.alpha if m.HasField("alpha") else 0.9,
            beta=m.beta if m.HasField("beta") else 3.0,
            gamma=m.gamma if m.HasField("gamma") else 0.5,
        ),
    }


def score_to_pb(score: Score) -> scoring_pb2.Score:
    if score.value is None:
        figure = common_pb2.Figure(undefined_reason=score.reason or "undefined")
        note = ""
    else:
        figure = common_pb2.Figure(value=score.value, band=score.band)
        note = score.reason
    return scoring_pb2.Score(name=score.name, figure=figure, signature=score.signature, note=note)


class TextStream:
    """One ScoreText stream: its options, accumulators and the batches so far."""

    def __init__(
        self,
        *,
        limits: TextLimits,
        bertscore: BertScoreRuntime,
        pool: concurrent.futures.Executor,
        context: grpc.ServicerContext,
    ) -> None:
        self._limits = limits
        self._bertscore = bertscore
        self._pool = pool
        self._context = context
        self._options_pb: scoring_pb2.TextOptions | None = None
        self._accumulators: dict[str, TextAccumulator] = {}
        self.pairs_total = 0

    def start(self, pb: scoring_pb2.TextOptions) -> None:
        """Fixes the stream's options and builds its accumulators (first batch)."""
        context = self._context
        families, violations = _families(pb)
        options = family_options(pb)
        for family in families:
            if family in options:
                violations += validate_options(family, options[family])
        if violations:
            invalid(context, violations)
        for family in families:
            if family == "bertscore":
                self._accumulators[family] = self._bertscore_accumulator(pb.bertscore)
                continue
            try:
                self._accumulators[family] = make_accumulator(family, options[family])
            except RuntimeError as exc:  # WordNetMissing: never a silently different number
                abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"{family}: {exc}")
        self._options_pb = pb

    def _bertscore_accumulator(self, pb: scoring_pb2.BertScoreOptions) -> TextAccumulator:
        from evalstream_server.metrics.text.bertscore import BaselineNotFound, BertScoreAccumulator

        context = self._context
        try:
            batcher = self._bertscore.batcher()
        except ModelNotReady as exc:
            state = self._bertscore.state
            code = (
                grpc.StatusCode.UNAVAILABLE
                if state == "loading"
                else grpc.StatusCode.FAILED_PRECONDITION
            )
            abort(context, code, f"bertscore: {exc}")
        try:
            return BertScoreAccumulator(
                batcher,
                idf=pb.idf,
                rescale_with_baseline=pb.rescale_with_baseline,
                timeout=self._limits.bertscore_timeout_seconds,
                cancelled=lambda: not context.is_active(),
            )
        except BaselineNotFound as exc:
            abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"options.bertscore.rescale_with_baseline: {exc}",
                [FieldViolation("options.bertscore.rescale_with_baseline", str(exc))],
            )

    def same_options(self, pb: scoring_pb2.TextOptions) -> bool:
        return self._options_pb == pb

    def score(self, pairs: Sequence[TextPair]) -> dict[str, TextBatchScores]:
        """Scores a batch with every family; BERTScore overlaps the CPU metrics."""
        context = self._context
        violations = validate_pairs(
            pairs,
            max_pairs=self._limits.max_pairs_per_batch,
            max_references=self._limits.max_references,
            max_chars=self._limits.max_chars,
            reference_count=None,
        )
        if violations:
            invalid(context, violations)
        pending = None
        if "bertscore" in self._accumulators:
            pending = self._pool.submit(self._accumulators["bertscore"].update, pairs)
        results = {
            family: acc.update(pairs)
            for family, acc in self._accumulators.items()
            if family != "bertscore"
        }
        if pending is not None:
            try:
                results["bertscore"] = pending.result()
            except BatcherOverloaded as exc:
                abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, f"bertscore: {exc}; retry later")
            except (BatcherClosed, ModelNotReady) as exc:
                abort(context, grpc.StatusCode.UNAVAILABLE, f"bertscore: {exc}")
            except TimeoutError as exc:
                abort(context, grpc.StatusCode.DEADLINE_EXCEEDED, f"bertscore: {exc}")
            except concurrent.futures.CancelledError:
                abort(context, grpc.StatusCode.CANCELLED, "bertscore: the call was cancelled")
        self.pairs_total += len(pairs)
        return {f: results[f] for f in self._accumulators}

    def running(self) -> list[Score]:
        return [s for acc in self._accumulators.values() for s in acc.running]


def pairs_from_pb(batch: scoring_pb2.TextBatch) -> list[TextPair]:
    return [TextPair(p.prediction, tuple(p.references), p.specimen_id) for p in batch.pairs]


def result_to_pb(
    batch_index: int,
    pairs: Sequence[TextPair],
    results: dict[str, TextBatchScores],
    stream: TextStream,
    omit_pairs: bool,
) -> scoring_pb2.TextResult:
    result = scoring_pb2.TextResult(
        batch_index=batch_index,
        batch=[score_to_pb(s) for r in results.values() for s in r.batch],
        running=[score_to_pb(s) for s in stream.running()],
        pairs_total=stream.pairs_total,
    )
    if not omit_pairs:
        result.pairs.extend(
            scoring_pb2.PairResult(
                index=i,
                specimen_id=pair.specimen_id,
                scores=[score_to_pb(s) for r in results.values() for s in r.pairs[i]],
            )
            for i, pair in enumerate(pairs)
        )
    return result


def check_unknown(batch: scoring_pb2.TextBatch) -> list[FieldViolation]:
    o = batch.options
    return (
        unknown_field_violations(batch, "")
        + unknown_field_violations(o, "options")
        + unknown_field_violations(o.bleu, "options.bleu")
        + unknown_field_violations(o.rouge, "options.rouge")
        + unknown_field_violations(o.meteor, "options.meteor")
        + unknown_field_violations(o.bertscore, "options.bertscore")
    )
