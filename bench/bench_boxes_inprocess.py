"""In-process box-matching throughput, against pycocotools as the reference figure.

Importable helpers (no work at import time) for the main bench script:

* :func:`make_detections` builds realistic synthetic detections (about 10
  ground truths and 15 predictions per image over 5 labels) both as
  :class:`ImageBoxes` and as COCO dicts, on a quarter-pixel grid so both sides
  compute bit-identical IoUs;
* :func:`run_inprocess` times ``BoxAccumulator.update`` (validation included);
* :func:`run_pycocotools` times ``COCOeval.evaluate()`` at ``iouThrs=[0.5]``.

Run as a script: ``PYTHONPATH=server python bench/bench_boxes_inprocess.py [n_images]``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from evalstream_server.metrics.boxes import Box, BoxAccumulator, BoxOptions, ImageBoxes

LABELS = ("person", "car", "dog", "cup", "chair")
IMAGE_SIZE = (640.0, 480.0)


def _grid(a: np.ndarray) -> np.ndarray:
    return np.round(a * 4.0) / 4.0


def _box(xyxy: np.ndarray, label: str, confidence: float = 1.0) -> Box:
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    return Box(x1, y1, x2, y2, label=label, confidence=confidence)


def make_detections(
    n_images: int, seed: int
) -> tuple[list[ImageBoxes], dict[str, Any], list[dict[str, Any]]]:
    """Synthetic detections as ImageBoxes and as COCO ground truth and results.

    Per image: Poisson(10) ground truths; each is detected with probability
    0.8 by a jittered box (sometimes twice, a duplicate); plus Poisson(4)
    random false alarms. Scores are rounded to 3 decimals so ties occur.

    Args:
        n_images: Images to make.
        seed: Seed of the numpy generator.

    Returns:
        ``(images, coco_gt, coco_dt)``: the batch, a COCO ground-truth dataset
        dict, and a COCO results list (bbox as x, y, w, h).
    """
    rng = np.random.default_rng(seed)
    w_img, h_img = IMAGE_SIZE
    images: list[ImageBoxes] = []
    gt_anns: list[dict[str, Any]] = []
    dt_anns: list[dict[str, Any]] = []
    for i in range(n_images):
        n_gt = int(rng.poisson(10))
        wh = rng.uniform(16, 200, size=(n_gt, 2))
        xy = rng.uniform(0, 1, size=(n_gt, 2)) * (np.array([w_img, h_img]) - wh)
        gt = _grid(np.concatenate([xy, xy + wh], axis=1))
        gt_lab = rng.integers(0, len(LABELS), n_gt)
        preds: list[tuple[np.ndarray, int, float]] = []
        for k in range(n_gt):
            if rng.random() < 0.8:
                for _ in range(2 if rng.random() < 0.2 else 1):
                    size = gt[k, 2:] - gt[k, :2]
                    jitter = rng.normal(0, 0.08, 4) * np.concatenate([size, size])
                    box = gt[k] + jitter
                    box[2:] = np.maximum(box[2:], box[:2] + 1)
                    lab = int(gt_lab[k]) if rng.random() < 0.9 else int(rng.integers(len(LABELS)))
                    preds.append((_grid(box), lab, round(float(rng.beta(5, 2)), 3)))
        for _ in range(int(rng.poisson(4))):
            wh1 = rng.uniform(16, 200, 2)
            xy1 = rng.uniform(0, 1, 2) * (np.array([w_img, h_img]) - wh1)
            box = _grid(np.concatenate([xy1, xy1 + wh1]))
            preds.append((box, int(rng.integers(len(LABELS))), round(float(rng.beta(2, 5)), 3)))
        order = rng.permutation(len(preds))
        preds = [preds[j] for j in order]
        image_id = f"img{i}"
        images.append(
            ImageBoxes(
                image_id=image_id,
                predictions=[_box(b, LABELS[lab], s) for b, lab, s in preds],
                ground_truth=[_box(gt[k], LABELS[int(gt_lab[k])]) for k in range(n_gt)],
            )
        )
        for k in range(n_gt):
            x1, y1, x2, y2 = gt[k].tolist()
            gt_anns.append(
                {
                    "id": len(gt_anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(gt_lab[k]) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
        for b, lab, s in preds:
            x1, y1, x2, y2 = b.tolist()
            dt_anns.append(
                {
                    "image_id": i + 1,
                    "category_id": lab + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": s,
                }
            )
    coco_gt = {
        "images": [{"id": i + 1, "width": w_img, "height": h_img} for i in range(n_images)],
        "annotations": gt_anns,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(LABELS)],
    }
    return images, coco_gt, dt_anns


def run_inprocess(images: Sequence[ImageBoxes], options: BoxOptions) -> float:
    """Seconds for one ``BoxAccumulator.update`` over ``images`` (validation included)."""
    acc = BoxAccumulator(options)
    t0 = time.perf_counter()
    acc.update(images)
    return time.perf_counter() - t0


def run_pycocotools(gt: dict[str, Any], dt: list[dict[str, Any]]) -> float:
    """Seconds for ``COCOeval.evaluate()`` at ``iouThrs=[0.5]`` (index building excluded)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dt))
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [1000]
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        t0 = time.perf_counter()
        ev.evaluate()
        return time.perf_counter() - t0


def main(argv: Sequence[str]) -> None:
    n_images = int(argv[1]) if len(argv) > 1 else 2000
    images, gt, dt = make_detections(n_images, seed=0)
    n_boxes = sum(len(im.predictions) + len(im.ground_truth) for im in images)
    print(f"{n_images} images, {n_boxes} boxes ({len(dt)} predictions)")
    for thresholds in ((0.5,), (0.5, 0.75, 0.95)):
        best = min(run_inprocess(images, BoxOptions(iou_thresholds=thresholds)) for _ in range(5))
        rate = n_boxes / best
        print(f"evalstream  iou_thresholds={thresholds}: {rate:12,.0f} boxes/s ({best:.3f} s)")
    ref = min(run_pycocotools(gt, dt) for _ in range(3))
    ours = min(run_inprocess(images, BoxOptions(iou_thresholds=(0.5,))) for _ in range(5))
    print(f"pycocotools iouThrs=[0.5]:        {n_boxes / ref:12,.0f} boxes/s ({ref:.3f} s)")
    print(f"ratio evalstream / pycocotools at one threshold: {ref / ours:.1f}x")


if __name__ == "__main__":
    from _machine import header

    print(header(), flush=True)
    main(sys.argv)
