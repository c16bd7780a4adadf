"""Input files of the command line: box files, text files and point files.

Box files are JSON Lines. Each line is either one image,
``{"image_id": "img1", "boxes": [{"bbox": [x1, y1, x2, y2], "label": "dog", "confidence": 0.9}]}``,
or one box, ``{"image_id": "img1", "bbox": [...], "label": "dog", "confidence": 0.9}``.
A box may give ``x1, y1, x2, y2`` keys instead of ``bbox``; ``--bbox-format xywh``
reads ``bbox`` as COCO's [x, y, width, height]. Images are matched by image_id;
an image in only one file is scored with no boxes on the other side.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalstream._points import check_series, check_split, check_step, check_value
from evalstream._types import Box, ImageBoxes
from evalstream.errors import InvalidPoint


class InputError(ValueError):
    """A box file line that cannot be read; the message names file and line."""


def _box(record: dict[str, Any], where: str, bbox_format: str) -> Box:
    try:
        if "bbox" in record:
            a, b, c, d = (float(v) for v in record["bbox"])
            x1, y1, x2, y2 = (a, b, a + c, b + d) if bbox_format == "xywh" else (a, b, c, d)
        else:
            x1, y1, x2, y2 = (float(record[k]) for k in ("x1", "y1", "x2", "y2"))
        confidence = float(record.get("confidence", record.get("score", 1.0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{where}: a box needs bbox [4 numbers] or x1, y1, x2, y2 ({exc})"
        ) from exc
    label = record.get("label", record.get("phrase", record.get("category_id", "")))
    return Box(x1, y1, x2, y2, label=str(label), confidence=confidence)


def read_boxes(path: Path, *, bbox_format: str = "xyxy") -> dict[str, list[Box]]:
    """Reads a box file into {image_id: boxes}, keeping the file's image order."""
    images: dict[str, list[Box]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not JSON ({exc.msg})") from exc
            if not isinstance(record, dict) or "image_id" not in record:
                raise InputError(f"{where}: each line must be an object with an image_id")
            boxes = images.setdefault(str(record["image_id"]), [])
            if "boxes" in record:
                boxes.extend(
                    _box(b, f"{where} box {i}", bbox_format) for i, b in enumerate(record["boxes"])
                )
            else:
                boxes.append(_box(record, where, bbox_format))
    return images


def pair_images(
    predictions: dict[str, list[Box]], ground_truth: dict[str, list[Box]]
) -> list[ImageBoxes]:
    """Joins both files by image_id, ground-truth order first."""
    ids = list(ground_truth) + [i for i in predictions if i not in ground_truth]
    return [
        ImageBoxes(i, tuple(predictions.get(i, ())), tuple(ground_truth.get(i, ()))) for i in ids
    ]


def read_text_file(path: Path, key: str) -> tuple[list[Any], list[str]]:
    """Lines of a .txt file, or `key` (and specimen_id) of each JSONL line."""
    values: list[Any] = []
    ids: list[str] = []
    with path.open(encoding="utf-8") as f:
        if path.suffix.lower() != ".jsonl":
            for line in f:
                values.append(line.rstrip("\n"))
                ids.append("")
            return values, ids
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not JSON ({exc.msg})") from exc
            if isinstance(record, str):
                record = {key: record}
            if not isinstance(record, dict) or key not in record:
                raise InputError(f"{path}:{number}: expected an object with {key!r}")
            values.append(record[key])
            ids.append(str(record.get("specimen_id", record.get("id", ""))))
    return values, ids


def _number(cell: Any, key: str) -> Any:
    """A CSV cell or JSON value as a number when it is text ("3", "2.5", "nan")."""
    if cell is None or cell == "":
        raise InvalidPoint(f"no {key}: each row needs a step and a value", field=key)
    if not isinstance(cell, str):
        return cell
    try:
        return int(cell)
    except ValueError:
        try:
            return float(cell)
        except ValueError:
            raise InvalidPoint(f"{key} {cell!r:.60} is not a number", field=key) from None


@dataclass
class PointRows:
    """A point file's readable rows by (split, series), and the rows that cannot be imported.

    `groups` maps (split, series) to (steps, values, line numbers); `problems` holds
    (line number, reason) of each row refused before sending.
    """

    groups: dict[tuple[str, str], tuple[list[int], list[float], list[int]]] = field(
        default_factory=dict
    )
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Every data row: readable or not."""
        return sum(len(g[0]) for g in self.groups.values()) + len(self.problems)


def read_points(
    path: Path, *, default_split: str = "train", default_series: str = "loss"
) -> PointRows:
    """Reads step,split,value[,series] rows from CSV (with a header) or JSONL.

    A row that the server would refuse (no integer step >= 0, a value that is
    not a number, an unknown split, a series name over 128 characters) or that
    cannot be read is kept in `problems` with its line number and the reason;
    the other rows are read.
    """
    rows = PointRows()

    def add(number: int, row: Any) -> None:
        if not isinstance(row, dict):
            rows.problems.append((number, "expected an object with step and value"))
            return
        try:
            step = check_step(_number(row.get("step"), "step"))
            value = check_value(_number(row.get("value"), "value"), field="value")
            split = str(row.get("split") or default_split)
            check_split(split)
            series = check_series(str(row.get("series") or default_series))
        except InvalidPoint as exc:
            rows.problems.append((number, exc.message))
            return
        steps, values, lines = rows.groups.setdefault((split, series), ([], [], []))
        steps.append(step)
        values.append(value)
        lines.append(number)

    with path.open(encoding="utf-8", newline="") as f:
        if path.suffix.lower() in (".jsonl", ".json"):
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        rows.problems.append((number, f"not JSON ({exc.msg})"))
                        continue
                    add(number, record)
        else:
            reader = csv.DictReader(f)
            for row in reader:
                add(reader.line_num, row)
    return rows
