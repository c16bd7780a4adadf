"""Input files of the command line: box files, text files and point files.

Box files in evalstream's JSON Lines: each line is either one image,
``{"image_id": "img1", "boxes": [{"bbox": [x1, y1, x2, y2], "label": "dog", "confidence": 0.9}]}``,
or one box, ``{"image_id": "img1", "bbox": [...], "label": "dog", "confidence": 0.9}``.
An image's line may also say where the image is and its size in pixels, ``"image_uri":
"https://...", "width": 640, "height": 480`` (any line of that image; stored with the
specimen when the scores are recorded as a checkpoint).
A box gives its corners as ``bbox`` or as ``x1, y1, x2, y2`` (``--bbox-format xywh``
reads ``bbox`` as COCO's [x, y, width, height]); its label as ``label``, ``phrase``,
``category`` (a name) or ``category_id``; its confidence as ``confidence`` or ``score``.
A prediction without a confidence, a box without a label and a key this list does not
name are refused with file:line, unless a flag says what to assume (:class:`BoxRules`).
COCO's own files are read by :mod:`evalstream.cli._coco`.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalstream._points import check_series, check_split, check_step, check_value
from evalstream._types import Box, ImageBoxes
from evalstream.errors import InvalidPoint


class InputError(ValueError):
    """An input file that cannot be read; the message names file and line."""


@dataclass(frozen=True, slots=True)
class BoxRules:
    """What to assume where a box file leaves something out (the score-boxes flags)."""

    #: ``--bbox-format``: how ``bbox`` is read, "xyxy" (corners, the default) or "xywh" (COCO).
    bbox_format: str | None = None
    #: ``--assume-confidence``: the confidence of a prediction that gives none.
    assume_confidence: float | None = None
    #: ``--assume-label``: the label of a box that gives none.
    assume_label: str | None = None
    #: ``--class-agnostic``: labels are not matched, so a box needs none.
    class_agnostic: bool = False
    #: ``--ignore-unknown-keys``: drop keys this reader does not know instead of refusing.
    ignore_unknown_keys: bool = False


#: Keys of a box; a key outside them (and the record's own) is refused.
CORNER_KEYS = ("x1", "y1", "x2", "y2")
LABEL_KEYS = ("label", "phrase", "category", "category_id")
CONFIDENCE_KEYS = ("confidence", "score")
BOX_KEYS = frozenset(("bbox", *CORNER_KEYS, *LABEL_KEYS, *CONFIDENCE_KEYS))
#: Ground truth may also say ``iscrowd`` (COCO's crowd regions, left out with a note).
GROUND_TRUTH_KEYS = BOX_KEYS | {"iscrowd"}
_FLAGS_HINT = "--ignore-unknown-keys drops keys it does not know"


def finite(value: Any, where: str, key: str) -> float:
    """A finite JSON number, or InputError naming where and which key."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: {key} must be a number, got {show(value)}")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        shown = value if isinstance(value, float) else "an integer too large for a float"
        raise InputError(f"{where}: {key} is {shown}; numbers must be finite")
    return result


def show(value: Any) -> str:
    """A JSON value for a message, cut short."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


class KeyCheck:
    """Refuses unknown keys of the records of one file, or counts them when told to ignore them."""

    def __init__(self, path: Path, rules: BoxRules) -> None:
        self.path = path
        self.rules = rules
        self.ignored: Counter[str] = Counter()

    def check(self, record: Mapping[str, Any], known: frozenset[str], where: str) -> None:
        unknown = [k for k in record if k not in known]
        if not unknown:
            return
        if self.rules.ignore_unknown_keys:
            self.ignored.update(unknown)
            return
        raise InputError(
            f"{where}: unknown key {', '.join(map(repr, unknown))}; the keys are "
            f"{', '.join(sorted(known))} ({_FLAGS_HINT})"
        )

    def notes(self) -> list[str]:
        if not self.ignored:
            return []
        counts = ", ".join(f"{k!r} ({n}x)" for k, n in sorted(self.ignored.items()))
        return [f"note: {self.path}: ignored unknown keys {counts} (--ignore-unknown-keys)"]


def _corners(record: Mapping[str, Any], where: str, bbox_format: str | None) -> tuple[float, ...]:
    present = [k for k in CORNER_KEYS if k in record]
    if "bbox" in record:
        if present:
            raise InputError(f"{where}: both bbox and {', '.join(present)}; give one of them")
        bbox = record["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise InputError(f"{where}: bbox must be a list of 4 numbers, got {show(bbox)}")
        a, b, c, d = (finite(v, where, f"bbox[{i}]") for i, v in enumerate(bbox))
        if bbox_format != "xywh":
            return a, b, c, d
        if c < 0 or d < 0:
            raise InputError(f"{where}: bbox [x, y, width, height] has width {c}, height {d} < 0")
        return a, b, a + c, b + d
    if not present:
        raise InputError(f"{where}: a box needs bbox [4 numbers] or x1, y1, x2, y2")
    missing = [k for k in CORNER_KEYS if k not in record]
    if missing:
        raise InputError(f"{where}: {', '.join(present)} without {', '.join(missing)}")
    return tuple(finite(record[k], where, k) for k in CORNER_KEYS)


def _label(
    record: Mapping[str, Any], where: str, rules: BoxRules, categories: Mapping[int, str] | None
) -> str:
    present = [k for k in LABEL_KEYS if k in record]
    if len(present) > 1:
        raise InputError(f"{where}: both {' and '.join(present)}; give one label")
    if not present:
        if rules.assume_label is not None:
            return rules.assume_label
        if rules.class_agnostic:
            return ""
        raise InputError(
            f"{where}: a box needs a label (one of {', '.join(LABEL_KEYS)}); "
            '--assume-label "" gives one to every box without, --class-agnostic matches '
            "regardless of label"
        )
    key = present[0]
    value = record[key]
    if key != "category_id":
        if not isinstance(value, str):
            raise InputError(
                f"{where}: {key} must be a string, got {show(value)} "
                "(for numeric classes use category_id)"
            )
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where}: category_id must be an integer, got {show(value)}")
    if categories is None:
        return str(value)
    if value not in categories:
        raise InputError(
            f"{where}: category_id {value} is not in the dataset's categories "
            f"({', '.join(map(str, sorted(categories)))})"
        )
    return categories[value]


def _confidence(record: Mapping[str, Any], where: str, rules: BoxRules) -> float:
    present = [k for k in CONFIDENCE_KEYS if k in record]
    if len(present) > 1:
        raise InputError(f"{where}: both confidence and score; give one")
    if not present:
        if rules.assume_confidence is not None:
            return rules.assume_confidence
        raise InputError(
            f"{where}: a prediction needs a confidence (confidence or score); "
            "--assume-confidence 1.0 gives one to every prediction without"
        )
    value = finite(record[present[0]], where, present[0])
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{where}: {present[0]} {value} is outside [0, 1]")
    return value


def is_crowd(record: Mapping[str, Any], where: str) -> bool:
    """COCO's iscrowd flag of a ground-truth box: 0 or 1 (or false/true)."""
    value = record.get("iscrowd", 0)
    if value not in (0, 1):
        raise InputError(f"{where}: iscrowd must be 0 or 1, got {show(value)}")
    return bool(value)


def make_box(
    record: Mapping[str, Any],
    where: str,
    *,
    prediction: bool,
    rules: BoxRules,
    categories: Mapping[int, str] | None = None,
) -> Box:
    """One box from its record; the keys are checked by the caller.

    Ground truth needs no confidence: one given is accepted and ignored.

    Example:
        >>> make_box({"bbox": [1, 2, 3, 4], "score": 0.5, "category": "dog"}, "f:1",
        ...          prediction=True, rules=BoxRules(bbox_format="xywh"))
        Box(x1=1.0, y1=2.0, x2=4.0, y2=6.0, label='dog', confidence=0.5)
    """
    x1, y1, x2, y2 = _corners(record, where, rules.bbox_format)
    label = _label(record, where, rules, categories)
    if not prediction:
        return Box(x1, y1, x2, y2, label=label)
    return Box(x1, y1, x2, y2, label=label, confidence=_confidence(record, where, rules))


#: Keys of an image's line that describe the image itself, not a box.
IMAGE_KEYS = frozenset(("image_uri", "width", "height"))


@dataclass(frozen=True, slots=True)
class ImageView:
    """Where an image is and its size in pixels ("" and 0 when not given)."""

    image_uri: str = ""
    width: int = 0
    height: int = 0

    def merge(self, other: ImageView, where: str, before: str = "on an earlier line") -> ImageView:
        """Both views in one; a value given twice differently is an InputError."""
        merged = {}
        for name in ("image_uri", "width", "height"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine and theirs and mine != theirs:
                raise InputError(
                    f"{where}: {name} {show(theirs)}, but {show(mine)} {before}; "
                    "one image has one URI and size"
                )
            merged[name] = mine or theirs
        return ImageView(**merged)


def image_view(
    record: Mapping[str, Any], where: str, *, uri_key: str | None = "image_uri"
) -> ImageView:
    """The image's URI (under `uri_key`) and size given in `record`; checked for their types."""
    uri = record.get(uri_key, "") if uri_key else ""
    if not isinstance(uri, str):
        raise InputError(f"{where}: {uri_key} must be a string (a URI or a path), got {show(uri)}")
    size = {}
    for name in ("width", "height"):
        value = record.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{where}: {name} must be pixels, an integer >= 0, got {show(value)}")
        size[name] = value
    if (size["width"] > 0) != (size["height"] > 0):
        given = "width" if size["width"] else "height"
        raise InputError(
            f"{where}: {given} without {'height' if given == 'width' else 'width'}; "
            "give the image's width and height together"
        )
    return ImageView(uri, size["width"], size["height"])


def no_records(path: Path) -> InputError:
    """The error for an input file with nothing in it."""
    return InputError(f"{path}: no records (the file is empty or has only blank lines)")


def image_id(record: Mapping[str, Any], where: str) -> str:
    """The image_id of a record as a string (COCO's are integers)."""
    value = record.get("image_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InputError(f"{where}: image_id must be a string or an integer, got {show(value)}")
    return str(value)


@dataclass(frozen=True, slots=True)
class BoxFile:
    """The boxes of one file by image, in the file's order, and the notes to print."""

    images: dict[str, list[Box]]
    notes: list[str]
    #: Where each image is and its size, for the images that say so.
    views: dict[str, ImageView] = field(default_factory=dict)


def read_boxes(path: Path, *, prediction: bool, rules: BoxRules | None = None) -> BoxFile:
    """Reads an evalstream JSON Lines box file into {image_id: boxes}, keeping the file's order.

    Crowd ground truth (``"iscrowd": 1``) is left out, with a note.
    """
    rules = rules or BoxRules()
    keys = KeyCheck(path, rules)
    images: dict[str, list[Box]] = {}
    views: dict[str, ImageView] = {}
    crowd = 0
    records = 0
    box_keys = BOX_KEYS if prediction else GROUND_TRUTH_KEYS
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            records += 1
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not JSON ({exc.msg})") from exc
            if isinstance(record, list):
                raise InputError(
                    f"{where}: a JSON array; is this a COCO results file? (--format coco)"
                )
            if not isinstance(record, dict) or "image_id" not in record:
                hint = ""
                if isinstance(record, dict) and ("annotations" in record or "images" in record):
                    hint = "; this looks like a COCO dataset (--format coco)"
                raise InputError(f"{where}: each line must be an object with an image_id{hint}")
            key = image_id(record, where)
            boxes = images.setdefault(key, [])
            if IMAGE_KEYS & record.keys():
                view = image_view(record, where)
                views[key] = views[key].merge(view, where) if key in views else view
            if "boxes" in record:
                keys.check(record, frozenset(("image_id", "boxes")) | IMAGE_KEYS, where)
                if not isinstance(record["boxes"], list):
                    raise InputError(f"{where}: boxes must be a list of box objects")
                entries = [(f"{where} box {i}", b) for i, b in enumerate(record["boxes"])]
                known = box_keys
            else:
                entries = [(where, record)]
                known = box_keys | {"image_id"} | IMAGE_KEYS
            for at, entry in entries:
                if not isinstance(entry, dict):
                    raise InputError(f"{at}: a box must be an object, got {show(entry)}")
                if entry is not record and IMAGE_KEYS & entry.keys():
                    raise InputError(
                        f"{at}: {', '.join(sorted(IMAGE_KEYS & entry.keys()))} describe the "
                        "image: give them beside image_id, not in a box"
                    )
                keys.check(entry, known, at)
                if not prediction and is_crowd(entry, at):
                    crowd += 1
                    continue
                boxes.append(make_box(entry, at, prediction=prediction, rules=rules))
    if not records:
        raise no_records(path)
    notes = keys.notes()
    if crowd:
        notes.append(crowd_note(path, crowd))
    return BoxFile(images, notes, views)


def crowd_note(path: Path, count: int) -> str:
    """Says that crowd ground truth was left out, and what that changes."""
    return (
        f"note: {path}: {count} crowd box(es) (iscrowd 1) left out of the ground truth; "
        "evalstream has no crowd matching, so a prediction on a crowd region counts as a "
        "false positive (pycocotools would ignore it)"
    )


def pair_images(
    predictions: dict[str, list[Box]],
    ground_truth: dict[str, list[Box]],
    views: Mapping[str, ImageView] | None = None,
) -> list[ImageBoxes]:
    """Joins both files by image_id, ground-truth order first, with each image's view."""
    ids = list(ground_truth) + [i for i in predictions if i not in ground_truth]
    views = views or {}
    blank = ImageView()
    return [
        ImageBoxes(
            i,
            tuple(predictions.get(i, ())),
            tuple(ground_truth.get(i, ())),
            (v := views.get(i, blank)).image_uri,
            v.width,
            v.height,
        )
        for i in ids
    ]


@dataclass(frozen=True, slots=True)
class TextFile:
    """The records of a score-text input file, with what each line says beside its text."""

    values: list[Any]
    ids: list[str]
    #: The question (prompt) of each line, "" where none is given (JSONL ``question``).
    questions: list[str]
    #: The image of each line, "" where none is given (JSONL ``image_uri``).
    image_uris: list[str]


def read_text_file(path: Path, key: str) -> TextFile:
    """Lines of a .txt file, or `key` (and specimen_id, question, image_uri) of each JSONL line.

    A file with no records (empty, or only blank lines) is an InputError.
    """
    text = TextFile([], [], [], [])
    with path.open(encoding="utf-8") as f:
        if path.suffix.lower() != ".jsonl":
            for line in f:
                text.values.append(line.rstrip("\n"))
            if not any(v.strip() for v in text.values):
                raise no_records(path)
            blank = [""] * len(text.values)
            return TextFile(text.values, blank, blank, blank)
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
            text.values.append(record[key])
            text.ids.append(str(record.get("specimen_id", record.get("id", ""))))
            for name, column in (("question", text.questions), ("image_uri", text.image_uris)):
                value = record.get(name, "")
                if not isinstance(value, str):
                    raise InputError(f"{path}:{number}: {name} must be a string, got {show(value)}")
                column.append(value)
    if not text.values:
        raise no_records(path)
    return text


def text_column(name: str, predictions: TextFile, references: TextFile) -> list[str] | None:
    """A per-line column given by either file (None when neither gives one); a clash is refused."""
    ours, theirs = getattr(predictions, name), getattr(references, name)
    if not any(ours) and not any(theirs):
        return None
    for line, (a, b) in enumerate(zip(ours, theirs, strict=True), 1):
        if a and b and a != b:
            raise InputError(
                f"record {line}: the predictions give the {name[:-1]} {a!r} but the "
                f"references {b!r}; give it in one file, or the same in both"
            )
    return [a or b for a, b in zip(ours, theirs, strict=True)]


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
    if not rows.rows:
        raise no_records(path)
    return rows
