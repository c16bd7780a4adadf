"""ScoreBoxes end to end: the real server on port 0, through the thin client."""

from __future__ import annotations

import asyncio
import math

import evalstream
import grpc
import numpy as np
import pytest
from evalstream import AsyncClient, Box, Client, ImageBoxes, errors
from evalstream.v1 import scoring_pb2, scoring_pb2_grpc
from evalstream_server.metrics import boxes as domain

# Hand-worked scene (IoU of [20,20,30,28] with [20,20,30,30] is 80/100 = 0.8).
IMAGE_A = ImageBoxes(
    "a",
    predictions=(
        Box(0, 0, 10, 10, "dog", 0.9),  # IoU 1.0 with the dog: TP at every threshold
        Box(0, 0, 10, 5, "dog", 0.8),  # IoU 0.5, but the dog is taken: FP
        Box(20, 20, 30, 28, "cat", 0.7),  # IoU 0.8: TP at 0.5 and 0.75, FP at 0.95
    ),
    ground_truth=(Box(0, 0, 10, 10, "dog"), Box(20, 20, 30, 30, "cat")),
)
IMAGE_B = ImageBoxes("b", predictions=(Box(0, 0, 5, 5, "person", 0.6),))  # no ground truth
IMAGE_C = ImageBoxes("c")  # nothing at all


def test_hand_worked_scene_per_image_batch_and_running(live_server) -> None:
    with Client(live_server.target) as client:
        results = list(client.stream_boxes([[IMAGE_A], [IMAGE_B, IMAGE_C]]))
    first, second = results
    assert [r.batch_index for r in results] == [0, 1]
    a = first.images[0]
    assert (a.index, a.image_id) == (0, "a")
    at = {s.iou_threshold: s for s in a.scores}
    assert list(at) == [0.5, 0.75, 0.95]
    for t in (0.5, 0.75):
        s = at[t]
        assert (s.tp, s.fp, s.fn) == (2, 1, 0)
        assert s.precision.value == pytest.approx(2 / 3) and s.precision.band == "low"
        assert s.recall.value == 1.0 and s.recall.band == "high"
        assert s.f1.value == pytest.approx(0.8) and s.f1.band == "good"  # 4 / (4 + 1)
        assert s.mean_iou.value == pytest.approx(0.9) and s.mean_iou.band == "very_tight"
    s = at[0.95]
    assert (s.tp, s.fp, s.fn) == (1, 2, 1)
    assert s.precision.value == pytest.approx(1 / 3)
    assert s.recall.value == pytest.approx(0.5)
    assert s.f1.value == pytest.approx(0.4) and s.f1.band == "needs_improvement"  # 2 / (2+2+1)
    assert s.mean_iou.value == pytest.approx(1.0)

    b, c = second.images
    assert (b.index, b.image_id, c.index, c.image_id) == (0, "b", 1, "c")
    b5 = b.scores[0]
    assert (b5.tp, b5.fp, b5.fn) == (0, 1, 0)
    assert b5.precision.value == 0.0 and b5.f1.value == 0.0
    assert b5.recall.value is None and "ground truth" in b5.recall.reason
    c5 = c.scores[0]
    for f in (c5.precision, c5.recall, c5.f1, c5.mean_iou):
        assert f.value is None and f.reason and f.band == ""

    run = second.running[0]  # a + b + c at 0.5: TP 2, FP 2, FN 0
    assert (run.tp, run.fp, run.fn) == (2, 2, 0)
    assert run.precision.value == pytest.approx(0.5)
    assert run.f1.value == pytest.approx(2 / 3) and run.f1.band == "acceptable"
    assert (second.batch[0].tp, second.batch[0].fp, second.batch[0].fn) == (0, 1, 0)
    assert second.images_total == 3 and second.boxes_total == 6


def test_score_boxes_report_numbers_images_across_batches(live_server) -> None:
    with Client(live_server.target) as client:
        report = client.score_boxes([IMAGE_A, IMAGE_B, IMAGE_C], batch_size=1, iou_thresholds=[0.5])
    assert report.batches == 3
    assert [(i.index, i.image_id) for i in report.images] == [(0, "a"), (1, "b"), (2, "c")]
    assert (report.overall[0].tp, report.overall[0].fp, report.overall[0].fn) == (2, 2, 0)


def _random_images(seed: int, n: int) -> list[ImageBoxes]:
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        gts = []
        for _ in range(rng.integers(0, 8)):
            x, y = rng.uniform(0, 500, 2)
            w, h = rng.uniform(5, 100, 2)
            gts.append(Box(x, y, x + w, y + h, f"l{rng.integers(3)}"))
        preds = []
        for g in gts:
            if rng.random() < 0.8:
                j = rng.normal(0, 5, 4)
                x1, y1 = g.x1 + j[0], g.y1 + j[1]
                x2, y2 = max(x1 + 1, g.x2 + j[2]), max(y1 + 1, g.y2 + j[3])
                preds.append(Box(x1, y1, x2, y2, g.label, float(rng.random())))
        for _ in range(rng.integers(0, 3)):
            x, y = rng.uniform(0, 500, 2)
            preds.append(Box(x, y, x + 30, y + 30, f"l{rng.integers(3)}", float(rng.random())))
        images.append(ImageBoxes(f"img{i}", tuple(preds), tuple(gts)))
    return images


def test_service_agrees_with_the_domain_code(live_server) -> None:
    images = _random_images(7, 120)
    with Client(live_server.target) as client:
        report = client.score_boxes(images, batch_size=17, confidence_threshold=0.2, pr_curve=True)
    acc = domain.BoxAccumulator(domain.BoxOptions(confidence_threshold=0.2, pr_curve=True))
    acc.update(
        [
            domain.ImageBoxes(
                i.image_id,
                [domain.Box(*dataclass_tuple(b)) for b in i.predictions],
                [domain.Box(*dataclass_tuple(b)) for b in i.ground_truth],
            )
            for i in images
        ]
    )
    for got, want in zip(report.overall, acc.running, strict=True):
        assert (got.tp, got.fp, got.fn) == (want.tp, want.fp, want.fn)
        assert got.f1.value == pytest.approx(want.f1())
        assert got.mean_iou.value == pytest.approx(want.mean_iou())
    curves = acc.pr_curves()
    assert [c.best_confidence for c in report.pr_curves] == [c.best_confidence for c in curves]
    for c in report.pr_curves:
        assert len(c.confidence) <= 101
        assert list(c.confidence) == sorted(c.confidence, reverse=True)
        assert c.best_f1.value == pytest.approx(max(c.f1))


def dataclass_tuple(b: Box) -> tuple[float, float, float, float, str, float]:
    return (b.x1, b.y1, b.x2, b.y2, b.label, b.confidence)


def test_async_client_gives_the_same_report(live_server) -> None:
    images = _random_images(3, 40)

    async def run() -> evalstream.BoxReport:
        async with AsyncClient(live_server.target) as client:
            return await client.score_boxes(images, batch_size=8, pr_curve=True)

    with Client(live_server.target) as client:
        want = client.score_boxes(images, batch_size=8, pr_curve=True)
    assert asyncio.run(run()) == want


def _all_floats(message) -> list[float]:
    out = []
    for fd, value in message.ListFields():
        if fd.type == fd.TYPE_MESSAGE:
            items = value if fd.is_repeated else [value]
            for item in items:
                out += _all_floats(item)
        elif fd.type in (fd.TYPE_DOUBLE, fd.TYPE_FLOAT):
            out += list(value) if fd.is_repeated else [value]
    return out


def test_no_response_holds_a_nan(live_server) -> None:
    images = [IMAGE_A, IMAGE_B, IMAGE_C] + _random_images(11, 30)
    with grpc.insecure_channel(live_server.target) as channel:
        stub = scoring_pb2_grpc.ScoringStub(channel)
        batch = scoring_pb2.BoxBatch(options=scoring_pb2.BoxOptions(pr_curve=True))
        for i in images:
            batch.images.add(
                image_id=i.image_id,
                predictions=[
                    scoring_pb2.Box(
                        x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2, label=b.label, confidence=b.confidence
                    )
                    for b in i.predictions
                ],
                ground_truth=[
                    scoring_pb2.Box(x1=b.x1, y1=b.y1, x2=b.x2, y2=b.y2, label=b.label)
                    for b in i.ground_truth
                ],
            )
        responses = list(
            stub.ScoreBoxes(
                iter([batch, scoring_pb2.BoxBatch(images=[scoring_pb2.ImageBoxes()])]), timeout=30
            )
        )
    values = [v for r in responses for v in _all_floats(r)]
    assert values and all(math.isfinite(v) for v in values)


# ------------------------------------------------------------------ bad input


def _bad(box_kw: dict, where: str = "predictions") -> ImageBoxes:
    box = Box(**{"x1": 0, "y1": 0, "x2": 1, "y2": 1, "label": "a", "confidence": 0.5, **box_kw})
    return ImageBoxes("bad", **{where: (box,)})


@pytest.mark.parametrize(
    ("image", "field"),
    [
        (_bad({"x2": -1.0}), "images[2].predictions[0].x2"),
        (_bad({"y2": -1.0}, "ground_truth"), "images[2].ground_truth[0].y2"),
        (_bad({"x1": math.nan}), "images[2].predictions[0].x1"),
        (_bad({"y1": -math.inf}, "ground_truth"), "images[2].ground_truth[0].y1"),
        (_bad({"confidence": math.nan}), "images[2].predictions[0].confidence"),
        (_bad({"confidence": 1.5}), "images[2].predictions[0].confidence"),
        (_bad({"confidence": -0.1}), "images[2].predictions[0].confidence"),
    ],
)
def test_bad_box_is_invalid_argument_naming_image_and_field(live_server, image, field) -> None:
    good = [IMAGE_A]
    seen = []
    with Client(live_server.target) as client:
        with pytest.raises(errors.InvalidArgument) as info:
            for result in client.stream_boxes([good, [IMAGE_B, IMAGE_C, image]]):
                seen.append(result)
        assert info.value.code == "INVALID_ARGUMENT"
        assert field in [v.field for v in info.value.violations]
        assert field in info.value.message
        # the batch answered before the bad one stands, and the server keeps serving
        assert len(seen) == 1 and seen[0].images[0].scores[0].tp == 2
        assert client.score_boxes([IMAGE_A]).overall[0].tp == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"iou_thresholds": [0.5, 0.0]}, "options.iou_thresholds[1]"),
        ({"iou_thresholds": [1.5]}, "options.iou_thresholds[0]"),
        ({"iou_thresholds": [math.nan]}, "options.iou_thresholds[0]"),
        ({"confidence_threshold": 1.2}, "options.confidence_threshold"),
        ({"confidence_threshold": math.inf}, "options.confidence_threshold"),
    ],
)
def test_bad_options_are_invalid_argument(live_server, kwargs, field) -> None:
    with Client(live_server.target) as client, pytest.raises(errors.InvalidArgument) as info:
        client.score_boxes([IMAGE_A], **kwargs)
    assert [v.field for v in info.value.violations] == [field]


def test_threshold_one_is_allowed(live_server) -> None:
    with Client(live_server.target) as client:
        report = client.score_boxes([IMAGE_A], iou_thresholds=[1.0])
    assert report.overall[0].tp == 1  # only the exact dog box


@pytest.mark.parametrize("live_server", [{"max_images_per_batch": 2}], indirect=True)
def test_batch_over_the_limit_is_refused(live_server) -> None:
    with Client(live_server.target) as client, pytest.raises(errors.InvalidArgument) as info:
        client.score_boxes([IMAGE_A, IMAGE_B, IMAGE_C], batch_size=3)
    assert info.value.violations[0].field == "images"
    assert (
        "3" in info.value.violations[0].description and "2" in info.value.violations[0].description
    )


def test_unknown_option_is_refused(live_server) -> None:
    # A client built from a newer contract sets an option (field 99) this server lacks.
    options = scoring_pb2.BoxOptions()
    options.MergeFromString(b"\x9a\x06\x01x")  # tag (99 << 3 | 2) as a varint, length 1, "x"
    batch = scoring_pb2.BoxBatch(options=options)
    with grpc.insecure_channel(live_server.target) as channel:
        stub = scoring_pb2_grpc.ScoringStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ScoreBoxes(iter([batch]), timeout=10))
    err = errors.from_grpc(info.value)
    assert isinstance(err, errors.InvalidArgument)
    assert err.violations[0].field == "options#99"


def test_changing_options_mid_stream_is_refused(live_server) -> None:
    with grpc.insecure_channel(live_server.target) as channel:
        stub = scoring_pb2_grpc.ScoringStub(channel)
        first = scoring_pb2.BoxBatch(options=scoring_pb2.BoxOptions(iou_thresholds=[0.5]))
        same = scoring_pb2.BoxBatch(options=scoring_pb2.BoxOptions(iou_thresholds=[0.5]))
        other = scoring_pb2.BoxBatch(options=scoring_pb2.BoxOptions(iou_thresholds=[0.7]))
        got = []
        with pytest.raises(grpc.RpcError) as info:
            for r in stub.ScoreBoxes(
                iter([first, same, scoring_pb2.BoxBatch(), other]), timeout=10
            ):
                got.append(r)
    assert len(got) == 3
    err = errors.from_grpc(info.value)
    assert isinstance(err, errors.InvalidArgument) and err.violations[0].field == "options"
