"""Properties of matching, counts and curves over random boxes (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evalstream_server.metrics.boxes import (
    Box,
    BoxAccumulator,
    BoxOptions,
    Counts,
    ImageBoxes,
    iou_matrix,
    match_image,
)
from hypothesis import given, settings
from hypothesis import strategies as st

ONE = BoxOptions(iou_thresholds=(0.5,))
THREE = BoxOptions()  # 0.5, 0.75, 0.95


def image(preds: list[Box], gts: list[Box], image_id: str = "img") -> ImageBoxes:
    return ImageBoxes(image_id=image_id, predictions=preds, ground_truth=gts)


# ---------------------------------------------------------------- properties

coord = st.integers(min_value=0, max_value=12).map(float)


@st.composite
def boxes(draw: st.DrawFn, *, prediction: bool) -> Box:
    x1, y1 = draw(coord), draw(coord)
    w, h = draw(st.integers(0, 8)), draw(st.integers(0, 8))
    conf = draw(st.sampled_from([0.1, 0.3, 0.5, 0.5, 0.7, 0.9, 1.0])) if prediction else 1.0
    return Box(x1, y1, x1 + w, y1 + h, label=draw(st.sampled_from(["a", "b"])), confidence=conf)


images_st = st.builds(
    image,
    st.lists(boxes(prediction=True), max_size=12),
    st.lists(boxes(prediction=False), max_size=10),
)
options_st = st.builds(
    BoxOptions,
    iou_thresholds=st.sampled_from([(0.5,), (0.5, 0.75, 0.95), (0.1, 1.0), (0.3, 0.6)]),
    class_agnostic=st.booleans(),
    confidence_threshold=st.sampled_from([0.0, 0.3, 0.5, 0.8]),
)
PROPS = settings(max_examples=200, deadline=None)


def _figures_ok(c: Counts) -> None:
    for name in ("precision", "recall", "f1", "mean_iou"):
        v = getattr(c, name)()
        assert v is None or (0.0 <= v <= 1.0 + 1e-12 and not math.isnan(v)), (name, v)


@PROPS
@given(im=images_st, opts=options_st)
def test_property_counts_conserve_boxes(im: ImageBoxes, opts: BoxOptions) -> None:
    m = match_image(im, opts)
    kept = sum(b.confidence >= opts.confidence_threshold for b in im.predictions)
    for c, hit in zip(m.counts, m.matched, strict=True):
        assert c.tp + c.fn == len(im.ground_truth)
        assert c.tp + c.fp == kept == len(hit)
        assert c.tp == int(hit.sum())
        _figures_ok(c)


@PROPS
@given(ims=st.lists(images_st, max_size=6), opts=options_st, split=st.integers(0, 6))
def test_property_counts_are_additive(ims: list[ImageBoxes], opts: BoxOptions, split: int) -> None:
    acc = BoxAccumulator(opts)
    acc.update(ims[:split])
    acc.update(ims[split:])
    for t, running in enumerate(acc.running):
        total = sum((match_image(im, opts).counts[t] for im in ims), Counts())
        assert (running.tp, running.fp, running.fn) == (total.tp, total.fp, total.fn)
        # Float sums in a different order: equal up to rounding.
        assert running.iou_sum == pytest.approx(total.iou_sum, rel=1e-12, abs=1e-12)
        _figures_ok(running)


@PROPS
@given(
    p=st.lists(boxes(prediction=True), max_size=8),
    g=st.lists(boxes(prediction=False), max_size=8),
)
def test_property_iou_matrix_symmetric_in_unit_interval(p: list[Box], g: list[Box]) -> None:
    a = np.array([[b.x1, b.y1, b.x2, b.y2] for b in p]).reshape(-1, 4)
    b = np.array([[b.x1, b.y1, b.x2, b.y2] for b in g]).reshape(-1, 4)
    ab = iou_matrix(a, b)
    assert ab.shape == (len(a), len(b))
    assert np.array_equal(ab, iou_matrix(b, a).T)
    assert np.all((ab >= 0) & (ab <= 1))
    self_iou = np.diag(iou_matrix(a, a))
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    assert np.array_equal(self_iou, np.where(area > 0, 1.0, 0.0))


@PROPS
@given(im=images_st, opts=options_st, c1=st.floats(0, 1), c2=st.floats(0, 1))
def test_property_raising_confidence_never_adds_true_positives(
    im: ImageBoxes, opts: BoxOptions, c1: float, c2: float
) -> None:
    lo, hi = sorted((c1, c2))
    a = match_image(im, BoxOptions(iou_thresholds=opts.iou_thresholds, confidence_threshold=lo))
    b = match_image(im, BoxOptions(iou_thresholds=opts.iou_thresholds, confidence_threshold=hi))
    for ca, cb in zip(a.counts, b.counts, strict=True):
        assert cb.tp <= ca.tp


@PROPS
@given(ims=st.lists(images_st, min_size=1, max_size=4), agnostic=st.booleans())
def test_property_pr_point_equals_rescoring_at_that_cut(
    ims: list[ImageBoxes], agnostic: bool
) -> None:
    thresholds = (0.5, 0.75)
    acc = BoxAccumulator(
        BoxOptions(
            iou_thresholds=thresholds,
            class_agnostic=agnostic,
            pr_curve=True,
            pr_curve_max_points=1000,
        )
    )
    acc.update(ims)
    for t, curve in enumerate(acc.pr_curves()):
        for k, cut in enumerate(curve.confidence):
            again = BoxAccumulator(
                BoxOptions(
                    iou_thresholds=thresholds, class_agnostic=agnostic, confidence_threshold=cut
                )
            )
            again.update(ims)
            c = again.running[t]
            assert curve.precision[k] == c.precision()
            assert curve.recall[k] == (c.recall() or 0.0)
            assert curve.f1[k] == c.f1()
        if curve.best_f1 is not None:
            assert curve.best_f1 == max(curve.f1)
