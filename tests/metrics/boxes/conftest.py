"""Shared inputs of the box tests: random detections on a quarter-pixel grid."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from evalstream_server.metrics.boxes import Box, ImageBoxes

LABELS = ("c1", "c2", "c3", "c4", "c5")


def _grid(a: np.ndarray) -> np.ndarray:
    return np.round(a * 4.0) / 4.0


def xyxy_box(xyxy: np.ndarray, label: str, confidence: float = 1.0) -> Box:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return Box(x1, y1, x2, y2, label=label, confidence=confidence)


def make_random_images(seed: int, n_images: int) -> list[ImageBoxes]:
    """Random detections on a quarter-pixel grid with ties in score and IoU.

    Per image: 3-5 labels in use; ground truths with some exact duplicates;
    predictions jittered from ground truths (some twice), exact copies, and
    random boxes; scores on a 0.05 grid so many tie.
    """
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_images):
        labels = rng.choice(len(LABELS), size=int(rng.integers(3, 6)), replace=False)
        n_gt = int(rng.integers(0, 25))
        wh = rng.uniform(2, 60, size=(n_gt, 2))
        xy = rng.uniform(0, 100, size=(n_gt, 2))
        gt = _grid(np.concatenate([xy, xy + wh], axis=1))
        dup = rng.random(n_gt) < 0.1
        gt = np.concatenate([gt, gt[dup]])
        gt_lab = rng.choice(labels, size=len(gt))
        gt_lab[n_gt:] = gt_lab[:n_gt][dup]
        preds: list[tuple[np.ndarray, int]] = []
        for k in range(len(gt)):
            for _ in range(int(rng.choice([0, 1, 1, 2, 3]))):
                size = np.tile(gt[k, 2:] - gt[k, :2], 2)
                box = gt[k] + (rng.normal(0, 0.15, 4) * size if rng.random() < 0.85 else 0)
                box = _grid(box)
                box[2:] = np.maximum(box[2:], box[:2])
                lab = gt_lab[k] if rng.random() < 0.85 else rng.choice(labels)
                preds.append((box, int(lab)))
        for _ in range(int(rng.integers(0, 10))):
            xy1 = rng.uniform(0, 100, 2)
            box = _grid(np.concatenate([xy1, xy1 + rng.uniform(0, 60, 2)]))
            preds.append((box, int(rng.choice(labels))))
        order = rng.permutation(len(preds))
        scores = np.round(rng.uniform(0, 1, len(preds)) * 20) / 20
        out.append(
            ImageBoxes(
                image_id=f"img{i}",
                predictions=[
                    xyxy_box(preds[j][0], LABELS[preds[j][1]], float(s))
                    for j, s in zip(order, scores, strict=True)
                ],
                ground_truth=[xyxy_box(gt[k], LABELS[int(gt_lab[k])]) for k in range(len(gt))],
            )
        )
    return out


@pytest.fixture(scope="session")
def random_images() -> Callable[..., list[ImageBoxes]]:
    """`make_random_images(seed, n_images)`."""
    return make_random_images


@pytest.fixture(scope="session")
def box_labels() -> tuple[str, ...]:
    """The labels `make_random_images` draws from, in category order."""
    return LABELS
