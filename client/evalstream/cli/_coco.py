"""COCO's own files: a ground-truth dataset and a detector's results list.

The dataset is ``{"images": [{"id": 1, ...}], "annotations": [{"image_id": 1,
"category_id": 3, "bbox": [x, y, width, height], ...}], "categories": [{"id": 3,
"name": "dog"}]}``; the results are ``[{"image_id": 1, "category_id": 3, "bbox":
[x, y, width, height], "score": 0.9}]``, as pycocotools' ``COCO`` and
``COCO.loadRes`` read them (https://cocodataset.org/#format-data). Category ids
become the dataset's category names on both sides; every image of the dataset is
scored, those without annotations with no ground truth; results for an image the
dataset does not list are refused (pycocotools refuses them too); crowd
annotations are left out with a note (evalstream has no crowd matching).
Each image's ``width`` and ``height`` are sent with it, and its ``coco_url`` as its
image URI (or its ``file_name``, a path relative to the server's ``--image-root``,
with ``--coco-image file_name``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from evalstream._types import Box
from evalstream.cli._inputs import (
    BoxFile,
    BoxRules,
    ImageView,
    InputError,
    KeyCheck,
    crowd_note,
    image_id,
    image_view,
    is_crowd,
    make_box,
    no_records,
)

#: Keys of an annotation of a COCO dataset (a score is accepted and ignored).
ANNOTATION_KEYS = frozenset(
    (
        "id",
        "image_id",
        "category_id",
        "bbox",
        "area",
        "iscrowd",
        "segmentation",
        "keypoints",
        "num_keypoints",
        "score",
    )
)
#: Keys of a COCO result (pycocotools' loadRes adds area and id itself).
RESULT_KEYS = frozenset(("id", "image_id", "category_id", "bbox", "score", "area", "segmentation"))


def load_json(path: Path) -> Any:
    """A whole JSON file; a syntax error names its line."""
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise no_records(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from exc


def sniff(path: Path) -> tuple[str, Any]:
    """("dataset" | "results", the JSON) for a COCO file, ("jsonl", None) otherwise.

    COCO when unambiguous: a top-level JSON array (results), or one JSON object with
    "annotations" or "images" (a dataset). Anything else is read as JSON Lines.
    """
    with path.open(encoding="utf-8") as f:
        head = f.read(4096).lstrip()
    if head.startswith("["):
        return "results", load_json(path)
    if not head.startswith("{"):
        return "jsonl", None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return "jsonl", None  # several lines of objects: JSON Lines
    if isinstance(data, dict) and ("annotations" in data or "images" in data):
        return "dataset", data
    return "jsonl", None


def _list(data: dict[str, Any], key: str, path: Path) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise InputError(
            f"{path}: a COCO dataset needs {key!r}, a list"
            + ("" if key in data else f" (the file has {', '.join(map(repr, data))})")
        )
    return value


def _categories(data: dict[str, Any], path: Path) -> dict[int, str]:
    categories: dict[int, str] = {}
    names: dict[str, int] = {}
    for i, c in enumerate(_list(data, "categories", path)):
        where = f"{path}: categories[{i}]"
        cid = c.get("id") if isinstance(c, dict) else None
        name = c.get("name") if isinstance(c, dict) else None
        if isinstance(cid, bool) or not isinstance(cid, int) or not isinstance(name, str):
            raise InputError(f"{where}: a category needs an integer id and a string name")
        if cid in categories:
            raise InputError(f"{where}: category id {cid} is listed twice")
        if name in names:
            raise InputError(
                f"{where}: categories {names[name]} and {cid} are both named {name!r}; "
                "labels are matched by name"
            )
        categories[cid] = name
        names[name] = cid
    return categories


@dataclasses.dataclass(frozen=True, slots=True)
class Dataset:
    """A COCO dataset read: boxes by image (every image listed), category names by id."""

    boxes: BoxFile
    categories: dict[int, str]


def _where(path: Path, key: str, i: int, record: Any) -> str:
    rid = record.get("id") if isinstance(record, dict) else None
    return f"{path}: {key}[{i}]" + (f" (id {rid})" if rid is not None else "")


#: Where ``--coco-image`` takes each image's URI from (None: no URI is sent).
COCO_IMAGE_KEYS = {"url": "coco_url", "file_name": "file_name", "none": None}


def read_dataset(path: Path, data: Any, rules: BoxRules, *, coco_image: str = "url") -> Dataset:
    """The ground truth of a COCO dataset; every listed image is scored.

    `coco_image` says which image key becomes the image URI (`COCO_IMAGE_KEYS`).
    """
    if coco_image not in COCO_IMAGE_KEYS:
        raise InputError(
            f"unknown --coco-image {coco_image!r}; choose one of {', '.join(COCO_IMAGE_KEYS)}"
        )
    if not isinstance(data, dict):
        raise InputError(
            f"{path}: COCO ground truth is a dataset object with images, annotations and "
            "categories; a JSON array is a results file (give it as --predictions)"
        )
    categories = _categories(data, path)
    images: dict[str, list[Box]] = {}
    views: dict[str, ImageView] = {}
    for i, image in enumerate(_list(data, "images", path)):
        if not isinstance(image, dict) or "id" not in image:
            raise InputError(f"{path}: images[{i}]: an image needs an id")
        key = image_id({"image_id": image["id"]}, f"{path}: images[{i}]")
        if key in images:
            raise InputError(f"{path}: images[{i}]: image id {image['id']} is listed twice")
        images[key] = []
        view = image_view(image, f"{path}: images[{i}]", uri_key=COCO_IMAGE_KEYS[coco_image])
        if view != ImageView():
            views[key] = view
    annotations = _list(data, "annotations", path)
    if not images and not annotations:
        raise no_records(path)
    keys = KeyCheck(path, rules)
    rules = _coco_rules(rules)
    crowd = 0
    for i, ann in enumerate(annotations):
        where = _where(path, "annotations", i, ann)
        if not isinstance(ann, dict):
            raise InputError(f"{where}: an annotation must be an object")
        keys.check(ann, ANNOTATION_KEYS, where)
        key = image_id(ann, where)
        if key not in images:
            raise InputError(f"{where}: image_id {ann['image_id']} is not in the dataset's images")
        if is_crowd(ann, where):
            crowd += 1
            continue
        images[key].append(
            make_box(ann, where, prediction=False, rules=rules, categories=categories)
        )
    notes = keys.notes() + ([crowd_note(path, crowd)] if crowd else [])
    return Dataset(BoxFile(images, notes, views), categories)


def read_results(path: Path, data: Any, rules: BoxRules, dataset: Dataset) -> BoxFile:
    """The predictions of a COCO results list, labelled by the dataset's category names."""
    if not isinstance(data, list):
        raise InputError(
            f"{path}: COCO predictions are a results list "
            '[{"image_id": ..., "category_id": ..., "bbox": [x, y, w, h], "score": ...}]'
        )
    if not data:
        raise no_records(path)
    keys = KeyCheck(path, rules)
    rules = _coco_rules(rules)
    images: dict[str, list[Box]] = {}
    unknown: dict[str, None] = {}
    for i, result in enumerate(data):
        where = _where(path, "results", i, result)
        if not isinstance(result, dict):
            raise InputError(f"{where}: a result must be an object")
        keys.check(result, RESULT_KEYS, where)
        key = image_id(result, where)
        if key not in dataset.boxes.images:
            unknown[key] = None
            continue
        images.setdefault(key, []).append(
            make_box(result, where, prediction=True, rules=rules, categories=dataset.categories)
        )
    if unknown:
        ids = list(unknown)
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        raise InputError(
            f"{path}: results for {len(ids)} image id(s) that the dataset does not list: "
            f"{shown}; give the dataset these results were made on (pycocotools refuses "
            "them too)"
        )
    return BoxFile(images, keys.notes())


def _coco_rules(rules: BoxRules) -> BoxRules:
    if rules.bbox_format == "xyxy":
        raise InputError(
            "COCO boxes are [x, y, width, height]; --bbox-format xyxy does not apply to COCO files"
        )
    return dataclasses.replace(rules, bbox_format="xywh")
