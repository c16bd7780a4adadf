"""The command line's images and questions: read from box, COCO and text files, shown back."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from evalstream import Client
from evalstream.cli import main

#: A directory that exists wherever the tests run, as the server's image root.
IMAGE_ROOT = Path(__file__).parent
#: No server listens here: input errors must stop the command before it connects.
NOWHERE = ["--target", "127.0.0.1:1", "--timeout", "2"]


def _jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def _specimens(target: str, run_id: str, step: int) -> tuple[str, list[dict[str, Any]]]:
    """`runs specimens` as a table and as JSON (sorted by id)."""
    table, raw = io.StringIO(), io.StringIO()
    args = ["--target", target, "runs", "specimens", run_id, "--step", str(step)]
    assert main(args, out=table) == 0
    assert main([*args, "--json"], out=raw) == 0
    return table.getvalue(), sorted(json.loads(raw.getvalue()), key=lambda s: s["specimen_id"])


def test_jsonl_box_files_give_each_image_its_uri_and_size(live_server, tmp_path: Path) -> None:
    gt = _jsonl(
        tmp_path / "gt.jsonl",
        [
            {
                "image_id": "a",
                "image_uri": "https://images.example.org/a.jpg",
                "width": 640,
                "height": 480,
                "boxes": [{"bbox": [0, 0, 10, 10], "label": "dog"}],
            },
            {"image_id": "b", "bbox": [0, 0, 10, 10], "label": "cat"},
        ],
    )
    # One box per line: the image's keys sit beside image_id, on any of its lines.
    pred = _jsonl(
        tmp_path / "pred.jsonl",
        [
            {"image_id": "b", "bbox": [0, 0, 10, 10], "label": "cat", "confidence": 0.8},
            {"image_id": "b", "image_uri": "s3://bucket/b.jpg", "width": 32, "height": 24,
             "bbox": [1, 1, 9, 9], "label": "cat", "confidence": 0.5},
        ],
    )  # fmt: skip
    with Client(live_server.target) as client:
        run = client.create_run("cli-images", "jsonl")
    argv = ["--target", live_server.target, "score-boxes", "--predictions", str(pred)]
    argv += ["--ground-truth", str(gt), "--run", run.id, "--step", "7"]
    assert main(argv, out=io.StringIO()) == 0
    table, specimens = _specimens(live_server.target, run.id, 7)
    assert "image: https://images.example.org/a.jpg (640x480)" in table
    assert "image: s3://bucket/b.jpg (32x24)" in table
    assert [(s["image_uri"], s["width"], s["height"]) for s in specimens] == [
        ("https://images.example.org/a.jpg", 640, 480),
        ("s3://bucket/b.jpg", 32, 24),
    ]


COCO_DATASET = {
    "images": [
        {"id": 1, "file_name": "000001.jpg", "width": 640, "height": 427,
         "coco_url": "http://images.cocodataset.org/val2017/000001.jpg"},
        {"id": 2, "file_name": "000002.jpg", "width": 500, "height": 375},
    ],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10]}],
    "categories": [{"id": 3, "name": "car"}],
}  # fmt: skip
COCO_RESULTS = [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.9}]


def _score_coco(target: str, tmp_path: Path, run_id: str, step: int, *flags: str) -> int:
    gt = _json(tmp_path / "instances.json", COCO_DATASET)
    pred = _json(tmp_path / "results.json", COCO_RESULTS)
    argv = ["--target", target, "score-boxes", "--predictions", str(pred), "--ground-truth"]
    argv += [str(gt), "--run", run_id, "--step", str(step), *flags]
    return main(argv, out=io.StringIO())


def test_coco_datasets_give_the_coco_url_and_size(live_server, tmp_path: Path) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("cli-images", "coco")
    assert _score_coco(live_server.target, tmp_path, run.id, 1) == 0
    _, specimens = _specimens(live_server.target, run.id, 1)
    assert [(s["image_uri"], s["width"], s["height"]) for s in specimens] == [
        ("http://images.cocodataset.org/val2017/000001.jpg", 640, 427),
        ("", 500, 375),  # no coco_url: the size alone
    ]


@pytest.mark.parametrize("live_server", [{"image_root": IMAGE_ROOT}], indirect=True)
def test_coco_file_names_are_paths_under_the_image_root(live_server, tmp_path: Path) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("cli-images", "coco-files")
    flags = ("--coco-image", "file_name")
    assert _score_coco(live_server.target, tmp_path, run.id, 2, *flags) == 0
    _, specimens = _specimens(live_server.target, run.id, 2)
    assert [s["image_uri"] for s in specimens] == ["000001.jpg", "000002.jpg"]


def test_coco_file_names_without_an_image_root_are_refused_by_the_server(
    live_server, tmp_path: Path, capsys
) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("cli-images", "coco-refused")
    flags = ("--coco-image", "file_name")
    assert _score_coco(live_server.target, tmp_path, run.id, 3, *flags) == 1
    err = capsys.readouterr().err
    assert "images[0].image_uri" in err and "--image-root" in err


def test_score_text_reads_questions_and_images_per_line(live_server, tmp_path: Path) -> None:
    pred = _jsonl(
        tmp_path / "answers.jsonl",
        [
            {"specimen_id": "q1", "prediction": "two", "question": "How many cats?"},
            {"specimen_id": "q2", "prediction": "red"},
        ],
    )
    # The references file (a VQA dataset) may carry them too.
    refs = _jsonl(
        tmp_path / "refs.jsonl",
        [
            {"references": ["two"], "image_uri": "https://images.example.org/1.jpg"},
            {"references": ["blue"], "question": "What colour is the cup?"},
        ],
    )
    with Client(live_server.target) as client:
        run = client.create_run("cli-images", "text")
    argv = ["--target", live_server.target, "score-text", "--predictions", str(pred)]
    argv += ["--references", str(refs), "--metrics", "bleu", "--run", run.id, "--step", "4"]
    assert main(argv, out=io.StringIO()) == 0
    table, specimens = _specimens(live_server.target, run.id, 4)
    assert "question: How many cats?" in table
    assert "image: https://images.example.org/1.jpg" in table
    assert [(s["question"], s["image_uri"]) for s in specimens] == [
        ("How many cats?", "https://images.example.org/1.jpg"),
        ("What colour is the cup?", ""),
    ]


@pytest.mark.parametrize(
    ("gt_line", "says"),
    [
        ({"image_id": "a", "width": 640, "boxes": []}, "width without height"),
        ({"image_id": "a", "width": -3, "height": 2, "boxes": []}, "width must be pixels"),
        ({"image_id": "a", "image_uri": 7, "boxes": []}, "image_uri must be a string"),
        (
            {"image_id": "a", "boxes": [{"bbox": [0, 0, 1, 1], "label": "x", "width": 3}]},
            "describe the image",
        ),
        ({"image_id": "a", "image_url": "x", "boxes": []}, "unknown key 'image_url'"),
    ],
)
def test_bad_image_keys_in_box_files_name_the_line(
    tmp_path: Path, capsys, gt_line: dict[str, Any], says: str
) -> None:
    gt = _jsonl(tmp_path / "gt.jsonl", [gt_line])
    pred = _jsonl(tmp_path / "p.jsonl", [{"image_id": "a", "boxes": []}])
    argv = [*NOWHERE, "score-boxes", "--predictions", str(pred), "--ground-truth", str(gt)]
    assert main(argv, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert f"{gt}:1" in err and says in err


def test_one_image_given_two_uris_is_refused(tmp_path: Path, capsys) -> None:
    gt = _jsonl(
        tmp_path / "gt.jsonl", [{"image_id": "a", "image_uri": "s3://b/1.jpg", "boxes": []}]
    )
    pred = _jsonl(
        tmp_path / "p.jsonl", [{"image_id": "a", "image_uri": "s3://b/2.jpg", "boxes": []}]
    )
    argv = [*NOWHERE, "score-boxes", "--predictions", str(pred), "--ground-truth", str(gt)]
    assert main(argv, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert (
        f'{pred}: image \'a\': image_uri "s3://b/2.jpg", but "s3://b/1.jpg" in the ground truth'
        in err
    )


def test_step_without_run_is_refused(tmp_path: Path, capsys) -> None:
    pred = _jsonl(tmp_path / "p.jsonl", ["a"])
    argv = [*NOWHERE, "score-text", "--predictions", str(pred), "--references", str(pred)]
    assert main([*argv, "--step", "3"], out=io.StringIO()) == 2
    assert "--step needs --run" in capsys.readouterr().err
