"""Box files as users write them: evalstream JSON Lines with COCO's keys, and COCO's own files.

Every file here is small enough to work out by hand; the COCO reader is checked
against pycocotools' ``COCO`` and ``COCO.loadRes`` on a generated dataset.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from evalstream import Box
from evalstream.cli import build_parser, main
from evalstream.cli._box_files import BoxInputs, read_box_files
from evalstream.cli._inputs import BoxRules, InputError

#: No server listens here: input errors must stop the command before it connects.
NOWHERE = ["--target", "127.0.0.1:1", "--timeout", "2"]


def _jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _json(path: Path, data: Any, *, indent: int | None = 2) -> Path:
    path.write_text(json.dumps(data, indent=indent))
    return path


GT_LINE = {"image_id": "a", "bbox": [0, 0, 10, 10], "label": "dog"}


def _refused(tmp_path: Path, capsys, preds: list[Any], *flags: str, gt: Any = None) -> str:
    """Runs score-boxes on a predictions file; asserts exit 2 and returns stderr."""
    p = _jsonl(tmp_path / "p.jsonl", preds)
    g = _jsonl(tmp_path / "g.jsonl", gt if gt is not None else [GT_LINE])
    code = main(
        [*NOWHERE, "score-boxes", "--predictions", str(p), "--ground-truth", str(g), *flags]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def _read(tmp_path: Path, preds: list[Any], gt: list[Any], **rules: Any) -> BoxInputs:
    p = _jsonl(tmp_path / "p.jsonl", preds)
    g = _jsonl(tmp_path / "g.jsonl", gt)
    return read_box_files(p, g, fmt="jsonl", rules=BoxRules(**rules))


# --- evalstream JSON Lines ---------------------------------------------------------------


def test_jsonl_coco_keys_give_label_and_confidence(tmp_path: Path) -> None:
    inputs = _read(
        tmp_path,
        [
            {"image_id": "a", "bbox": [0, 0, 10, 10], "category": "dog", "score": 0.4},
            {"image_id": "a", "bbox": [1, 1, 5, 5], "category_id": 3, "confidence": 0.25},
            {"image_id": "a", "x1": 2, "y1": 3, "x2": 4, "y2": 5, "phrase": "a cup", "score": 1},
        ],
        [{"image_id": "a", "boxes": [{"bbox": [0, 0, 10, 10], "category": "dog"}]}],
    )
    (image,) = inputs.images
    assert image.predictions == (
        Box(0, 0, 10, 10, label="dog", confidence=0.4),
        Box(1, 1, 5, 5, label="3", confidence=0.25),
        Box(2, 3, 4, 5, label="a cup", confidence=1.0),
    )
    assert image.ground_truth == (Box(0, 0, 10, 10, label="dog"),)
    assert inputs.notes == []


def test_jsonl_xywh_bbox(tmp_path: Path) -> None:
    inputs = _read(
        tmp_path,
        [{"image_id": "a", "bbox": [10, 20, 30, 40], "label": "x", "score": 0.5}],
        [{"image_id": "a", "bbox": [1, 2, 3, 4], "label": "x"}],
        bbox_format="xywh",
    )
    assert inputs.images[0].predictions == (Box(10, 20, 40, 60, label="x", confidence=0.5),)
    assert inputs.images[0].ground_truth == (Box(1, 2, 4, 6, label="x"),)


def test_prediction_without_confidence_is_refused(tmp_path: Path, capsys) -> None:
    err = _refused(
        tmp_path, capsys, [GT_LINE, {"image_id": "b", "bbox": [0, 0, 1, 1], "label": "dog"}]
    )
    assert "p.jsonl:1:" in err and "confidence" in err and "--assume-confidence 1.0" in err


def test_assume_confidence_fills_only_the_missing(tmp_path: Path) -> None:
    inputs = _read(
        tmp_path,
        [
            {"image_id": "a", "bbox": [0, 0, 1, 1], "label": "dog"},
            {"image_id": "a", "bbox": [0, 0, 2, 2], "label": "dog", "score": 0.3},
        ],
        [GT_LINE],
        assume_confidence=0.75,
    )
    assert [b.confidence for b in inputs.images[0].predictions] == [0.75, 0.3]


def test_ground_truth_needs_no_confidence_and_ignores_one(tmp_path: Path) -> None:
    inputs = _read(
        tmp_path,
        [{"image_id": "a", "bbox": [0, 0, 1, 1], "label": "dog", "score": 0.5}],
        [GT_LINE, {"image_id": "a", "bbox": [0, 0, 3, 3], "label": "dog", "confidence": 0.2}],
    )
    assert inputs.images[0].ground_truth == (
        Box(0, 0, 10, 10, label="dog"),
        Box(0, 0, 3, 3, label="dog"),
    )


def test_box_without_label_is_refused_with_its_index(tmp_path: Path, capsys) -> None:
    line = {
        "image_id": "a",
        "boxes": [
            {"bbox": [0, 0, 1, 1], "label": "dog", "confidence": 0.5},
            {"bbox": [0, 0, 2, 2], "confidence": 0.5},
        ],
    }
    err = _refused(tmp_path, capsys, [line])
    assert "p.jsonl:1 box 1:" in err and "label" in err
    assert '--assume-label ""' in err and "--class-agnostic" in err


def test_ground_truth_without_label_is_refused(tmp_path: Path, capsys) -> None:
    pred = {"image_id": "a", "bbox": [0, 0, 1, 1], "label": "dog", "score": 0.5}
    err = _refused(tmp_path, capsys, [pred], gt=[{"image_id": "a", "bbox": [0, 0, 1, 1]}])
    assert "g.jsonl:1:" in err and "--assume-label" in err


def test_ground_truth_crowd_boxes_are_left_out_with_a_note(tmp_path: Path, capsys) -> None:
    crowd = GT_LINE | {"bbox": [50, 50, 60, 60], "iscrowd": 1}
    inputs = _read(tmp_path, [GT_LINE | {"score": 0.5}], [GT_LINE | {"iscrowd": 0}, crowd])
    assert inputs.images[0].ground_truth == (Box(0, 0, 10, 10, "dog"),)
    (note,) = inputs.notes
    assert "g.jsonl: 1 crowd box(es)" in note
    err = _refused(tmp_path, capsys, [GT_LINE | {"score": 0.5}], gt=[GT_LINE | {"iscrowd": 2}])
    assert "g.jsonl:1: iscrowd must be 0 or 1, got 2" in err
    err = _refused(tmp_path, capsys, [GT_LINE | {"score": 0.5, "iscrowd": 0}])
    assert "p.jsonl:1: unknown key 'iscrowd'" in err


def test_assume_label_and_class_agnostic_make_labels_unnecessary(tmp_path: Path) -> None:
    preds = [{"image_id": "a", "bbox": [0, 0, 1, 1], "score": 0.5}]
    gt = [{"image_id": "a", "bbox": [0, 0, 1, 1], "label": "dog"}]
    assumed = _read(tmp_path, preds, gt, assume_label="dog")
    assert assumed.images[0].predictions[0].label == "dog"
    agnostic = _read(tmp_path, preds, gt, class_agnostic=True)
    assert agnostic.images[0].predictions[0].label == ""
    assert agnostic.notes == []


def test_unknown_key_is_refused(tmp_path: Path, capsys) -> None:
    pred = {"image_id": "a", "bbox": [0, 0, 1, 1], "label": "dog", "score": 0.5, "conf": 0.9}
    err = _refused(tmp_path, capsys, [GT_LINE | {"score": 0.5}, pred])
    assert "p.jsonl:2:" in err and "'conf'" in err and "--ignore-unknown-keys" in err


def test_unknown_key_of_an_image_line_is_refused(tmp_path: Path, capsys) -> None:
    # width, height and image_uri describe the image: "depth" is not a key.
    line = {"image_id": "a", "boxes": [], "depth": 3}
    err = _refused(tmp_path, capsys, [line])
    assert "p.jsonl:1:" in err and "'depth'" in err


def test_ignore_unknown_keys_drops_them_with_a_note(tmp_path: Path) -> None:
    pred = {"image_id": "a", "bbox": [0, 0, 1, 1], "label": "dog", "score": 0.5, "conf": 0.9}
    inputs = _read(tmp_path, [pred, pred], [GT_LINE], ignore_unknown_keys=True)
    assert inputs.images[0].predictions == (Box(0, 0, 1, 1, "dog", 0.5),) * 2
    assert len(inputs.notes) == 1
    assert "p.jsonl" in inputs.notes[0] and "'conf' (2x)" in inputs.notes[0]


@pytest.mark.parametrize(
    ("box", "says"),
    [
        ({"label": "dog", "category_id": 1, "score": 0.5}, "both label and category_id"),
        ({"category": "dog", "phrase": "a dog", "score": 0.5}, "both phrase and category"),
        ({"label": "dog", "confidence": 0.5, "score": 0.5}, "both confidence and score"),
        ({"label": "dog", "score": 0.5, "x1": 0}, "both bbox and x1"),
    ],
)
def test_conflicting_keys_are_refused(tmp_path: Path, capsys, box: dict, says: str) -> None:
    err = _refused(tmp_path, capsys, [{"image_id": "a", "bbox": [0, 0, 1, 1], **box}])
    assert "p.jsonl:1:" in err and says in err


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('{"image_id": "a", "bbox": [0, NaN, 1, 1], "label": "d", "score": 0.5}', "bbox[1] is nan"),
        ('{"image_id": "a", "bbox": [0, 0, 1, 1], "label": "d", "score": Infinity}',
         "score is inf"),
        ('{"image_id": "a", "x1": 0, "y1": 0, "x2": -Infinity, "y2": 1, "label": "d", '
         '"score": 0.5}', "x2 is -inf"),
        ('{"image_id": "a", "bbox": [0, 0, "1", 1], "label": "d", "score": 0.5}', "bbox[2] must"),
        ('{"image_id": "a", "bbox": [0, 0, 1], "label": "d", "score": 0.5}', "4 numbers"),
        ('{"image_id": "a", "bbox": [0, 0, 1, 1e400], "label": "d", "score": 0.5}',
         "bbox[3] is inf"),
        ('{"image_id": "a", "bbox": [0, 0, 1, 1' + "0" * 400 + '], "label": "d", "score": 0.5}',
         "bbox[3] is an integer too large for a float; numbers must be finite"),
        ('{"image_id": "a", "x1": 0, "y1": 0, "label": "d", "score": 0.5}', "without x2, y2"),
        ('{"image_id": "a", "bbox": [0, 0, 1, 1], "label": "d", "score": 1.5}', "outside [0, 1]"),
        ('{"image_id": "a", "bbox": [0, 0, 1, 1], "label": 7, "score": 0.5}', "category_id"),
    ],
)  # fmt: skip
def test_bad_numbers_and_shapes_are_refused_with_the_line(
    tmp_path: Path, capsys, line: str, says: str
) -> None:
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps(GT_LINE | {"score": 0.5}) + "\n\n" + line + "\n")
    g = _jsonl(tmp_path / "g.jsonl", [GT_LINE])
    assert main([*NOWHERE, "score-boxes", "--predictions", str(p), "--ground-truth", str(g)]) == 2
    err = capsys.readouterr().err
    assert "p.jsonl:3:" in err and says in err


def test_disjoint_labels_are_warned_about(tmp_path: Path) -> None:
    inputs = _read(
        tmp_path,
        [{"image_id": "a", "bbox": [0, 0, 10, 10], "category_id": 1, "score": 0.9}],
        [GT_LINE],
    )
    (note,) = inputs.notes
    assert "no predicted label is a ground-truth label" in note and "'1'" in note
    assert "'dog'" in note and "--class-agnostic" in note


# --- empty files --------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
@pytest.mark.parametrize("which", ["predictions", "ground-truth"])
def test_empty_box_file_exits_2(tmp_path: Path, capsys, content: str, which: str) -> None:
    files = {
        "predictions": _jsonl(tmp_path / "p.jsonl", [GT_LINE | {"score": 0.5}]),
        "ground-truth": _jsonl(tmp_path / "g.jsonl", [GT_LINE]),
    }
    files[which].write_text(content)
    args = [f"--{k}={v}" for k, v in files.items()]
    assert main([*NOWHERE, "score-boxes", *args]) == 2
    assert f"{files[which]}: no records" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "content"), [("p.txt", ""), ("p.txt", "\n\n"), ("p.jsonl", "\n")])
def test_empty_text_file_exits_2(tmp_path: Path, capsys, name: str, content: str) -> None:
    p = tmp_path / name
    p.write_text(content)
    r = tmp_path / "r.txt"
    r.write_text("a reference\n")
    assert main([*NOWHERE, "score-text", "--predictions", str(p), "--references", str(r)]) == 2
    assert f"{p}: no records" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "content"), [("x.csv", "step,split,value\n"), ("x.jsonl", "")])
def test_empty_points_file_exits_2(tmp_path: Path, capsys, name: str, content: str) -> None:
    f = tmp_path / name
    f.write_text(content)
    assert main([*NOWHERE, "runs", "import", str(f), "--run", "r"]) == 2
    assert f"{f}: no records" in capsys.readouterr().err


def test_bbox_format_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["score-boxes"]
    text = " ".join(sub.format_help().split())
    assert "xyxy = corners [x1, y1, x2, y2] (default), xywh = COCO's [x, y, width, height]" in text
    assert "COCO files are always xywh" in text


# --- COCO -------------------------------------------------------------------------------

#: A hand-worked COCO pair. At IoU 0.5: image 1 dog (IoU 1) and cat (IoU 80/100) are TPs,
#: the dog box on the cat is a FP; image 2's dog box has IoU 100/400 with the dog: FP and FN;
#: the box on image 2's crowd cat is a FP (crowd left out); image 3 has no ground truth: FP.
#: TP 2, FP 4, FN 1: precision 1/3, recall 2/3, F1 4/9.
DATASET = {
    "info": {"description": "hand-worked"},
    "images": [{"id": 1, "file_name": "1.jpg"}, {"id": 2}, {"id": 3}],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 0},
        {"id": 11, "image_id": 1, "category_id": 2, "bbox": [20, 20, 10, 10], "area": 100},
        {"id": 12, "image_id": 2, "category_id": 1, "bbox": [0, 0, 20, 20], "iscrowd": 0},
        {"id": 13, "image_id": 2, "category_id": 2, "bbox": [50, 50, 10, 10], "iscrowd": 1},
    ],
    "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}],
}
RESULTS = [
    {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},
    {"image_id": 1, "category_id": 2, "bbox": [20, 20, 10, 8], "score": 0.8},
    {"image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10], "score": 0.7},
    {"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.6},
    {"image_id": 2, "category_id": 2, "bbox": [50, 50, 10, 10], "score": 0.5},
    {"image_id": 3, "category_id": 1, "bbox": [5, 5, 5, 5], "score": 0.4},
]


def _coco(tmp_path: Path, dataset: Any = DATASET, results: Any = RESULTS) -> tuple[Path, Path]:
    return _json(tmp_path / "gt.json", dataset), _json(tmp_path / "res.json", results)


@pytest.mark.parametrize("fmt", ["auto", "coco"])
def test_coco_pair_is_read_by_category_name(tmp_path: Path, fmt: str) -> None:
    gt, res = _coco(tmp_path)
    inputs = read_box_files(res, gt, fmt=fmt)
    assert inputs.format == "coco"
    assert [i.image_id for i in inputs.images] == ["1", "2", "3"]
    one, two, three = inputs.images
    assert one.ground_truth == (Box(0, 0, 10, 10, "dog"), Box(20, 20, 30, 30, "cat"))
    assert one.predictions == (
        Box(0, 0, 10, 10, "dog", 0.9),
        Box(20, 20, 30, 28, "cat", 0.8),
        Box(20, 20, 30, 30, "dog", 0.7),
    )
    assert two.ground_truth == (Box(0, 0, 20, 20, "dog"),)  # the crowd cat left out
    assert three.ground_truth == () and three.predictions == (Box(5, 5, 10, 10, "dog", 0.4),)
    (note,) = inputs.notes
    assert "gt.json: 1 crowd box(es)" in note and "false positive" in note


def test_coco_one_line_dataset_is_detected(tmp_path: Path) -> None:
    gt = _json(tmp_path / "gt.json", DATASET, indent=None)
    res = _json(tmp_path / "res.json", RESULTS, indent=None)
    assert read_box_files(res, gt).format == "coco"


def test_coco_image_without_annotations_is_scored_with_no_ground_truth(tmp_path: Path) -> None:
    gt, res = _coco(tmp_path, DATASET | {"images": [*DATASET["images"], {"id": 4}]})
    inputs = read_box_files(res, gt)
    assert [(i.image_id, i.predictions, i.ground_truth) for i in inputs.images][-1] == ("4", (), ())


def test_coco_results_for_unknown_images_are_refused(tmp_path: Path, capsys) -> None:
    extra = [
        {"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},
        {"image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},
    ]
    gt, res = _coco(tmp_path, results=RESULTS + extra)
    assert (
        main([*NOWHERE, "score-boxes", "--predictions", str(res), "--ground-truth", str(gt)]) == 2
    )
    err = capsys.readouterr().err
    assert "res.json: results for 2 image id(s) that the dataset does not list: 7, 9" in err


def test_coco_result_without_score_is_refused(tmp_path: Path) -> None:
    gt, res = _coco(tmp_path, results=[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}])
    with pytest.raises(InputError, match=r"res.json: results\[0\]: .*--assume-confidence 1.0"):
        read_box_files(res, gt)
    inputs = read_box_files(res, gt, rules=BoxRules(assume_confidence=1.0))
    assert inputs.images[0].predictions == (Box(0, 0, 1, 1, "dog", 1.0),)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"category_id": 5}, r"category_id 5 is not in the dataset's categories \(1, 2\)"),
        ({"bbox": [0, 0, -1, 1]}, "width -1.0, height 1.0 < 0"),
        ({"label": "dog"}, "unknown key 'label'"),
        ({"score": float("nan")}, "score is nan"),
    ],
)
def test_coco_bad_result_is_refused_with_its_index(tmp_path: Path, change: dict, says: str) -> None:
    gt, res = _coco(tmp_path, results=[RESULTS[0], RESULTS[1] | change])
    with pytest.raises(InputError, match=rf"res.json: results\[1\]: .*{says}"):
        read_box_files(res, gt)


def test_coco_bad_annotation_names_index_and_id(tmp_path: Path) -> None:
    anns = [*DATASET["annotations"], {"id": 99, "image_id": 8, "category_id": 1, "bbox": [0] * 4}]
    gt, res = _coco(tmp_path, DATASET | {"annotations": anns})
    with pytest.raises(InputError, match=r"annotations\[4\] \(id 99\): image_id 8 is not in"):
        read_box_files(res, gt)


def test_coco_beside_jsonl_is_refused(tmp_path: Path) -> None:
    gt, _ = _coco(tmp_path)
    preds = _jsonl(tmp_path / "p.jsonl", [GT_LINE | {"score": 0.5}])
    with pytest.raises(InputError, match="gt.json is COCO JSON but .*p.jsonl is JSON Lines"):
        read_box_files(preds, gt)


def test_coco_format_refuses_jsonl_and_xyxy(tmp_path: Path) -> None:
    gt, res = _coco(tmp_path)
    preds = _jsonl(tmp_path / "p.jsonl", [GT_LINE | {"score": 0.5}, GT_LINE | {"score": 0.1}])
    with pytest.raises(InputError, match="p.jsonl: not a COCO results list"):
        read_box_files(preds, gt, fmt="coco")
    with pytest.raises(InputError, match="--bbox-format xyxy does not apply"):
        read_box_files(res, gt, rules=BoxRules(bbox_format="xyxy"))


def test_jsonl_format_on_a_coco_dataset_says_so(tmp_path: Path) -> None:
    gt = _json(tmp_path / "gt.json", DATASET, indent=None)
    preds = _jsonl(tmp_path / "p.jsonl", [GT_LINE | {"score": 0.5}])
    with pytest.raises(InputError, match="gt.json:1: .*looks like a COCO dataset"):
        read_box_files(preds, gt, fmt="jsonl")


def test_coco_pair_scored_by_a_live_server(live_server, tmp_path: Path, capsys) -> None:
    gt, res = _coco(tmp_path)
    out = io.StringIO()
    args = ["--predictions", str(res), "--ground-truth", str(gt), "--iou", "0.5", "--json"]
    code = main(["--target", live_server.target, "score-boxes", *args], out=out)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "1 crowd box(es)" in err
    report = json.loads(out.getvalue())
    assert [i["image_id"] for i in report["images"]] == ["1", "2", "3"]
    (at_50,) = report["overall"]
    assert (at_50["tp"], at_50["fp"], at_50["fn"]) == (2, 4, 1)
    assert at_50["precision"]["value"] == pytest.approx(1 / 3)
    assert at_50["recall"]["value"] == pytest.approx(2 / 3)
    assert at_50["f1"]["value"] == pytest.approx(4 / 9)


def test_jsonl_with_coco_keys_scored_by_a_live_server(live_server, tmp_path: Path) -> None:
    """The first-hour trap: `category` was dropped, so every prediction missed (F1 0, silently).

    Dog and cat match their ground truth (TP 2); the cat on the dog is a FP.
    """
    preds = _jsonl(
        tmp_path / "p.jsonl",
        [
            {"image_id": "a", "bbox": [0, 0, 10, 10], "category": "dog", "score": 0.9},
            {"image_id": "a", "bbox": [20, 20, 30, 30], "category": "cat", "score": 0.8},
            {"image_id": "a", "bbox": [0, 0, 10, 10], "category": "cat", "score": 0.3},
        ],
    )
    gt = _jsonl(
        tmp_path / "g.jsonl",
        [
            {"image_id": "a", "bbox": [0, 0, 10, 10], "label": "dog"},
            {"image_id": "a", "bbox": [20, 20, 30, 30], "label": "cat"},
        ],
    )
    out = io.StringIO()
    args = ["--predictions", str(preds), "--ground-truth", str(gt), "--iou", "0.5", "--json"]
    assert main(["--target", live_server.target, "score-boxes", *args], out=out) == 0
    (at_50,) = json.loads(out.getvalue())["overall"]
    assert (at_50["tp"], at_50["fp"], at_50["fn"]) == (2, 1, 0)


# --- against pycocotools ---------------------------------------------------------------


def _generated(seed: int = 14) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A random COCO dataset (crowds, empty images, fractional boxes) and results on it."""
    rng = random.Random(seed)
    categories = [{"id": c, "name": n} for c, n in ((1, "person"), (3, "car"), (18, "dog"))]
    images = [{"id": 100 + i, "width": 640, "height": 480} for i in range(25)]

    def bbox() -> list[float]:
        return [round(rng.uniform(0, 600), 2), round(rng.uniform(0, 440), 2)] + [
            round(rng.uniform(0, 80), 2) for _ in range(2)
        ]

    annotations = [
        {
            "id": n + 1,
            "image_id": rng.choice(images[:20])["id"],  # the last 5 images have none
            "category_id": rng.choice(categories)["id"],
            "bbox": bbox(),
            "area": 1.0,
            "iscrowd": int(rng.random() < 0.1),
        }
        for n in range(120)
    ]
    results = [
        {
            "image_id": rng.choice(images)["id"],
            "category_id": rng.choice(categories)["id"],
            "bbox": bbox(),
            "score": round(rng.random(), 3),
        }
        for _ in range(200)
    ]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def test_coco_reader_agrees_with_pycocotools(tmp_path: Path) -> None:
    coco_module = pytest.importorskip("pycocotools.coco")
    dataset, results = _generated()
    gt, res = _coco(tmp_path, dataset, results)
    inputs = read_box_files(res, gt)

    coco = coco_module.COCO(str(gt))
    detections = coco.loadRes(str(res))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}

    def corners(ann: dict[str, Any]) -> tuple[float, float, float, float, str]:
        x, y, w, h = ann["bbox"]
        return (x, y, x + w, y + h, names[ann["category_id"]])

    want = {}
    for img in coco.getImgIds():
        truth = coco.loadAnns(coco.getAnnIds(imgIds=[img], iscrowd=False))
        preds = detections.loadAnns(detections.getAnnIds(imgIds=[img]))
        want[str(img)] = (
            sorted(corners(a) for a in truth),
            sorted((*corners(a), a["score"]) for a in preds),
        )
    got = {
        i.image_id: (
            sorted((b.x1, b.y1, b.x2, b.y2, b.label) for b in i.ground_truth),
            sorted((b.x1, b.y1, b.x2, b.y2, b.label, b.confidence) for b in i.predictions),
        )
        for i in inputs.images
    }
    assert list(got) == [str(i["id"]) for i in dataset["images"]]
    assert got == want
    crowds = len(coco.getAnnIds(iscrowd=True))
    assert crowds > 0 and f"{crowds} crowd box(es)" in inputs.notes[0]
    assert sum(len(t) for t, _ in got.values()) == 120 - crowds
    assert sum(not t for t, _ in got.values()) >= 5  # images without annotations are kept


@pytest.mark.parametrize("value", ["1.5", "nan", "-0.1", "high"])
def test_assume_confidence_must_be_in_unit_interval(tmp_path: Path, capsys, value: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["score-boxes", "--predictions=p", "--ground-truth=g",
                                   "--assume-confidence", value])  # fmt: skip
    assert exit_.value.code == 2
    assert f"expected a number in [0, 1], got {value!r}" in capsys.readouterr().err
