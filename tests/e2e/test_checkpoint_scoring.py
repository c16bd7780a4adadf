"""Scoring named by a checkpoint from the client: recorded as metrics and specimens, read back."""

from __future__ import annotations

import asyncio

import pytest
from evalstream import AsyncClient, Box, Checkpoint, Client, ImageBoxes

CUP = Box(10, 10, 50, 50, label="cup", confidence=0.9)
DOG = Box(0, 0, 40, 40, label="dog")
FAR = Box(200, 200, 240, 240, label="cup", confidence=0.6)

IMAGES = [
    ImageBoxes("hit", predictions=(CUP,), ground_truth=(Box(10, 10, 50, 50, label="cup"),)),
    ImageBoxes("missed", predictions=(), ground_truth=(DOG,)),
    ImageBoxes("stray", predictions=(FAR,), ground_truth=()),
]


def test_boxes_named_by_a_checkpoint_are_read_back_as_steps_and_specimens(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("ckpt", "boxes")
        # Two batches: every batch names the checkpoint, so all three images are kept.
        client.score_boxes(IMAGES, batch_size=2, checkpoint=run.checkpoint(100))
        (step,) = run.evaluation_steps()
        assert (step.split, step.step, step.specimens) == ("validation", 100, 3)
        # TP 1 (hit), FN 1 (missed), FP 1 (stray): F1 = 2 / (2 + 1 + 1).
        assert step.metrics["bbox_f1@0.5"] == pytest.approx(0.5)
        assert step.flag_counts == {"missed_detection": 1, "false_positive": 1}
        found = {s.specimen_id: s for s in run.specimens(100)}
        assert set(found) == {"hit", "missed", "stray"}
        assert found["missed"].ground_truth_boxes[0].label == "dog"
        assert found["missed"].predicted_boxes == ()
        assert [s.specimen_id for s in run.specimens(100, flag="missed_detection")] == ["missed"]
        # Without a checkpoint nothing is recorded.
        client.score_boxes(IMAGES)
        assert [s.step for s in run.evaluation_steps()] == [100]


def test_text_named_by_a_checkpoint_keeps_its_corpus_score_and_pairs(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("ckpt", "text")
        report = client.score_text(
            ["a red cup on the table", "two cats"],
            [["a red cup on the table"], ["two dogs play outside"]],
            specimen_ids=["q1", "q2"],
            metrics=["bleu"],
            checkpoint=run.checkpoint(200, split="test"),
        )
        (step,) = run.evaluation_steps(split="test")
        assert step.step == 200 and step.specimens == 2
        assert step.metrics["bleu"] == pytest.approx(report.overall["bleu"].value)
        q2 = next(s for s in run.specimens(200, split="test") if s.specimen_id == "q2")
        assert (q2.prediction_text, q2.reference_texts) == ("two cats", ("two dogs play outside",))


def test_the_async_client_records_a_checkpoint_too(live_server) -> None:
    async def main() -> list[int]:
        async with AsyncClient(live_server.target) as client:
            run = await client.create_run("ckpt", "async")
            await client.score_boxes(IMAGES, checkpoint=run.checkpoint(300))
            return [s.step for s in await run.evaluation_steps()]

    assert asyncio.run(main()) == [300]


def test_a_bad_checkpoint_is_refused_before_anything_is_sent(live_server) -> None:
    with Client(live_server.target) as client:
        with pytest.raises(ValueError, match=r"checkpoint.step = -1"):
            client.score_boxes(IMAGES, checkpoint=Checkpoint("r_0123456789abcdef", -1))
        with pytest.raises(ValueError, match="split 'val'"):
            client.score_boxes(IMAGES, checkpoint=Checkpoint("r_0123456789abcdef", 1, "val"))
