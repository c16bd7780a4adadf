"""ScoreText end to end: the real server (tiny random BERT for BERTScore) through the client.

Agreement with the reference libraries is checked on the numbers the service
returns: sacrebleu (BLEU), rouge-score (ROUGE), NLTK (METEOR) and bert-score
(BERTScore, on the same tiny model and layer).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

import grpc
import pytest
import sacrebleu
from evalstream import AsyncClient, Client, errors
from evalstream.cli import main
from evalstream.v1 import common_pb2, runs_pb2, runs_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from evalstream_server.api.text import CpuWorkers
from nltk.tokenize import word_tokenize
from nltk.translate.meteor_score import meteor_score
from rouge_score import rouge_scorer

from ..conftest import TINY_BERT_LAYER

PREDICTIONS = [
    "a red cup on the table",
    "two dogs are playing in the park",
    "The café serves crème brûlée.",
    "it is 42 degrees",
    "yes",
    "the man is riding a horse near the river",
]
REFERENCES = [
    ["a red mug on a wooden table", "the red cup"],
    ["two dogs play in a park"],
    ["The cafe serves creme brulee."],
    ["it is forty two degrees"],
    ["no"],
    ["a man rides a horse by the river"],
]


def warmed_workers(live_server) -> CpuWorkers:
    """The live server's text worker pool, once its processes have warmed up (120 s at most)."""
    workers = live_server.deps.workers
    assert workers is not None
    deadline = time.monotonic() + 120
    while not workers.usable and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers.usable, "the worker process did not warm up"
    return workers


def test_all_four_metrics_agree_with_the_reference_libraries(
    text_server, tiny_bert_dir: Path
) -> None:
    with Client(text_server.target) as client:
        report = client.score_text(PREDICTIONS, REFERENCES, batch_size=4)
    assert report.pairs_total == len(PREDICTIONS) and report.batches == 2

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    bleu = sacrebleu.metrics.BLEU(effective_order=True)
    for pair, pred, refs in zip(report.pairs, PREDICTIONS, REFERENCES, strict=True):
        s = pair.scores
        assert s["bleu"].value == pytest.approx(
            bleu.sentence_score(pred, refs).score / 100, abs=1e-9
        )
        multi = scorer.score_multi(refs, pred)
        for kind in ("rouge1", "rouge2", "rougeL"):
            assert s[f"{kind}_recall"].value == pytest.approx(multi[kind].recall, abs=1e-9)
            assert s[f"{kind}_precision"].value == pytest.approx(multi[kind].precision, abs=1e-9)
            assert s[f"{kind}_fmeasure"].value == pytest.approx(multi[kind].fmeasure, abs=1e-9)
        want = meteor_score(
            [word_tokenize(r, preserve_line=True) for r in refs],
            word_tokenize(pred, preserve_line=True),
        )
        assert s["meteor"].value == pytest.approx(want, abs=1e-9)

    # corpus BLEU over the stream = sacrebleu's corpus score with padded references
    max_refs = max(len(r) for r in REFERENCES)
    streams = [[r[i] if i < len(r) else None for r in REFERENCES] for i in range(max_refs)]
    corpus = sacrebleu.metrics.BLEU().corpus_score(PREDICTIONS, streams)
    assert report.overall["bleu"].value == pytest.approx(corpus.score / 100, abs=1e-9)

    import bert_score

    p, r, f = bert_score.score(
        PREDICTIONS, REFERENCES, model_type=str(tiny_bert_dir), num_layers=TINY_BERT_LAYER,
        lang=None, nthreads=0,
    )  # fmt: skip
    got = [(x.scores["bertscore_precision"].value, x.scores["bertscore_recall"].value,
            x.scores["bertscore_f1"].value) for x in report.pairs]  # fmt: skip
    for (gp, gr, gf), wp, wr, wf in zip(got, p.tolist(), r.tolist(), f.tolist(), strict=True):
        assert (gp, gr, gf) == pytest.approx((wp, wr, wf), abs=1e-4)
    assert report.overall["bertscore_f1"].value == pytest.approx(
        sum(f.tolist()) / len(PREDICTIONS), abs=1e-4
    )

    for name, score in report.overall.items():
        assert score.signature and score.value is not None
        # ROUGE precision and F-measure have no documented band table: no band.
        unbanded = name.startswith("rouge") and not name.endswith("_recall")
        assert (score.band == "") if unbanded else score.band, name
    assert "tok:13a" in report.overall["bleu"].signature
    assert "headline:recall" in report.overall["rouge1_recall"].signature
    assert f"layer:{TINY_BERT_LAYER}" in report.overall["bertscore_f1"].signature


def test_running_scores_do_not_depend_on_batching(text_server) -> None:
    with Client(text_server.target) as client:
        one = client.score_text(PREDICTIONS, REFERENCES, batch_size=len(PREDICTIONS))
        many = client.score_text(PREDICTIONS, REFERENCES, batch_size=1)
    for name, score in one.overall.items():
        assert many.overall[name].value == pytest.approx(score.value, abs=1e-5), name
    for a, b in zip(one.pairs, many.pairs, strict=True):
        for name in a.scores:
            assert a.scores[name].value == pytest.approx(b.scores[name].value, abs=1e-5)


def test_options_reach_the_metrics(live_server) -> None:
    with Client(live_server.target) as client:
        report = client.score_text(
            ["猫が座った"],
            ["猫が座っている"],
            metrics=["bleu"],
            bleu_tokenize="char",
            lowercase=True,
        )
    bleu = sacrebleu.metrics.BLEU(tokenize="char", lowercase=True, effective_order=True)
    assert report.pairs[0].scores["bleu"].value == pytest.approx(
        bleu.sentence_score("猫が座った", ["猫が座っている"]).score / 100, abs=1e-9
    )
    assert (
        "tok:char" in report.overall["bleu"].signature
        and "case:lc" in report.overall["bleu"].signature
    )
    assert set(report.overall) == {"bleu"}


def test_async_client_gives_the_same_report(live_server) -> None:
    async def run():
        async with AsyncClient(live_server.target) as client:
            return await client.score_text(
                PREDICTIONS, REFERENCES, metrics=["bleu", "rouge", "meteor"]
            )

    with Client(live_server.target) as client:
        want = client.score_text(PREDICTIONS, REFERENCES, metrics=["bleu", "rouge", "meteor"])
    assert asyncio.run(run()) == want


def test_bertscore_disabled_is_failed_precondition(live_server) -> None:
    with Client(live_server.target) as client, pytest.raises(errors.FailedPrecondition) as info:
        client.score_text(["a"], ["b"], metrics=["bertscore"])
    assert "disabled" in info.value.message


def _raw(
    target: str, batches: list[scoring_pb2.TextBatch]
) -> tuple[list[scoring_pb2.TextResult], grpc.RpcError | None]:
    got: list[scoring_pb2.TextResult] = []
    with grpc.insecure_channel(target) as channel:
        try:
            for r in scoring_pb2_grpc.ScoringStub(channel).ScoreText(iter(batches), timeout=60):
                got.append(r)
        except grpc.RpcError as exc:
            return got, exc
    return got, None


def _batch(pairs, **options) -> scoring_pb2.TextBatch:
    return scoring_pb2.TextBatch(
        pairs=[scoring_pb2.TextPair(prediction=p, references=r) for p, r in pairs],
        options=scoring_pb2.TextOptions(**options) if options else None,
    )


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (_batch([("ok", ["ok"]), ("no refs", [])]), "pairs[1].references"),
        (_batch([("x" * 20_001, ["ok"])]), "pairs[0].prediction"),
        (_batch([("ok", ["ok"] * 17)]), "pairs[0].references"),
    ],
)
def test_bad_pairs_are_invalid_argument_and_earlier_results_stand(live_server, bad, field) -> None:
    first = _batch([("a cat", ["the cat"])], metrics=[scoring_pb2.TEXT_METRIC_BLEU])
    got, err = _raw(live_server.target, [first, bad])
    assert len(got) == 1 and got[0].pairs[0].scores[0].name == "bleu"
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in errors.from_grpc(err).violations]
    with Client(live_server.target) as client:  # the server keeps serving
        same = "the cat sat on the mat"
        assert client.score_text([same], [same], metrics=["bleu"]).overall["bleu"].value == 1.0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"metrics": [9]}, "options.metrics[0]"),
        (
            {"metrics": [1], "bleu": scoring_pb2.BleuOptions(tokenize="klingon")},
            "options.bleu.tokenize",
        ),
        (
            {"metrics": [1], "bleu": scoring_pb2.BleuOptions(smooth_method="magic")},
            "options.bleu.smooth_method",
        ),
        ({"metrics": [3], "meteor": scoring_pb2.MeteorOptions(alpha=2.0)}, "options.meteor.alpha"),
    ],
)
def test_bad_options_are_invalid_argument(live_server, options, field) -> None:
    _got, err = _raw(live_server.target, [_batch([("a", ["a"])], **options)])
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in errors.from_grpc(err).violations]


def test_text_scores_are_recorded_at_a_checkpoint(live_server) -> None:
    with grpc.insecure_channel(live_server.target) as channel:
        runs = runs_pb2_grpc.RunsStub(channel)
        run = runs.CreateRun(runs_pb2.CreateRunRequest(project="p", name="vqa"), timeout=10)
        ref = common_pb2.CheckpointRef(run_id=run.id, split=common_pb2.SPLIT_VALIDATION, step=200)
        batch = _batch(list(zip(PREDICTIONS, REFERENCES, strict=True)), metrics=[1, 2])
        batch.checkpoint.CopyFrom(ref)
        for i, p in enumerate(batch.pairs):
            p.specimen_id = f"q{i}"
        got, err = _raw(live_server.target, [batch])
        assert err is None
        (step,) = runs.ListEvaluationSteps(
            runs_pb2.ListEvaluationStepsRequest(run_id=run.id), timeout=10
        ).steps
        assert step.specimens == len(PREDICTIONS)
        assert step.metrics["bleu"] == pytest.approx(
            next(s.figure.value for s in got[0].running if s.name == "bleu")
        )
        assert "rouge1_recall" in step.metrics
        specimens = runs.GetSpecimens(
            runs_pb2.GetSpecimensRequest(
                run_id=run.id, split=common_pb2.SPLIT_VALIDATION, step=200
            ),
            timeout=10,
        ).specimens
        first = next(s for s in specimens if s.specimen_id == "q0")
        assert (
            first.prediction_text == PREDICTIONS[0] and list(first.reference_texts) == REFERENCES[0]
        )
        assert "bleu" in first.scores and "rougeL_fmeasure" in first.scores


def test_cli_score_text(live_server, tmp_path: Path) -> None:
    preds = tmp_path / "p.txt"
    preds.write_text("a red cup\nyes\n")
    refs = tmp_path / "r.jsonl"
    refs.write_text(
        json.dumps({"references": ["a red mug", "the red cup"]})
        + "\n"
        + json.dumps({"references": ["yes"]})
        + "\n"
    )
    out = io.StringIO()
    base = ["--target", live_server.target, "score-text", "--predictions", str(preds)]
    base += ["--references", str(refs)]
    assert main([*base, "--metrics", "bleu,rouge"], out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "2 pairs" and lines[1].split()[:3] == ["score", "value", "band"]
    assert any(line.startswith("bleu ") for line in lines)
    out = io.StringIO()
    assert main([*base, "--metrics", "meteor", "--json"], out=out) == 0
    report = json.loads(out.getvalue())
    assert report["pairs_total"] == 2 and "meteor" in report["overall"]


@pytest.mark.parametrize("live_server", [{"text_workers": 1}], indirect=True)
def test_worker_processes_give_the_same_numbers(live_server) -> None:
    """Batches large enough to be shared with a worker process score exactly as in-process."""
    from evalstream_server.metrics.text._types import TextPair
    from evalstream_server.metrics.text.registry import (
        BleuOptions,
        MeteorOptions,
        RougeOptions,
        make_accumulator,
    )

    warmed_workers(live_server)
    preds = [f"{p} number {i}" for i, p in enumerate(PREDICTIONS * 12)]
    refs = [[f"{r} number {i}" for r in rs] for i, rs in enumerate(REFERENCES * 12)]
    with Client(live_server.target) as client:
        report = client.score_text(preds, refs, metrics=["bleu", "rouge", "meteor"], batch_size=72)
    pairs = [TextPair(p, tuple(r)) for p, r in zip(preds, refs, strict=True)]
    for family, options in (
        ("bleu", BleuOptions()),
        ("rouge", RougeOptions()),
        ("meteor", MeteorOptions()),
    ):
        acc = make_accumulator(family, options)
        want = acc.update(pairs)
        for got_pair, want_scores in zip(report.pairs, want.pairs, strict=True):
            for score in want_scores:
                assert got_pair.scores[score.name].value == score.value, (family, score.name)
        for score in acc.running:
            assert report.overall[score.name].value == score.value


def test_a_cancelled_scoring_call_stops_using_the_batcher_within_a_second(text_server) -> None:
    batcher = text_server.deps.bertscore
    words = "the a red blue small large dog cat car tree runs sits near under over".split()
    # 4,000 distinct sentences in one batch (the queue holds 4,096): seconds of work
    # for the tiny model, most of it still queued when the call is cancelled.
    pairs = [
        scoring_pb2.TextPair(
            specimen_id=str(i),
            prediction=" ".join(words[(i + k) % len(words)] for k in range(12)) + f" {i}",
            references=[f"reference {j} of {i}" for j in range(3)],
        )
        for i in range(1000)
    ]
    batch = scoring_pb2.TextBatch(
        pairs=pairs, options=scoring_pb2.TextOptions(metrics=[scoring_pb2.TEXT_METRIC_BERTSCORE])
    )
    with grpc.insecure_channel(text_server.target) as channel:
        call = scoring_pb2_grpc.ScoringStub(channel).ScoreText(iter([batch]), timeout=60)
        deadline = time.monotonic() + 30
        while (stats := batcher.stats()) is not None and stats.queue_depth == 0:
            assert time.monotonic() < deadline, "the batch never reached the batcher"
            time.sleep(0.005)
        call.cancel()
        cancelled = time.monotonic()
        while time.monotonic() - cancelled < 1.0:
            stats = batcher.stats()
            assert stats is not None
            if stats.queue_depth == 0 and stats.inflight == 0:
                break
            time.sleep(0.02)
    stats = batcher.stats()
    assert stats is not None
    assert (stats.queue_depth, stats.inflight) == (0, 0)
    assert stats.cancelled_dropped > 0  # what was queued for it was dropped, not embedded
    assert stats.sentences_embedded < 4_000
