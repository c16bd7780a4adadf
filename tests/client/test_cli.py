"""The `evalstream` CLI against a real server."""

from __future__ import annotations

import io
import json
from pathlib import Path

from evalstream.cli import main


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _files(tmp_path: Path) -> tuple[Path, Path]:
    preds = _write(
        tmp_path / "p.jsonl",
        [
            {
                "image_id": "a",
                "boxes": [
                    {"bbox": [0, 0, 10, 10], "label": "dog", "confidence": 0.9},
                    {"bbox": [0, 0, 10, 5], "label": "dog", "confidence": 0.8},
                ],
            },
            {
                "image_id": "a",
                "x1": 20,
                "y1": 20,
                "x2": 30,
                "y2": 28,
                "label": "cat",
                "confidence": 0.7,
            },
            {"image_id": "b", "bbox": [0, 0, 5, 5], "label": "person", "confidence": 0.6},
        ],
    )
    gt = _write(
        tmp_path / "g.jsonl",
        [
            {
                "image_id": "a",
                "boxes": [
                    {"bbox": [0, 0, 10, 10], "label": "dog"},
                    {"bbox": [20, 20, 30, 30], "label": "cat"},
                ],
            }
        ],
    )
    return preds, gt


def test_score_boxes_prints_a_table(live_server, tmp_path: Path) -> None:
    preds, gt = _files(tmp_path)
    out = io.StringIO()
    code = main(
        [
            "--target",
            live_server.target,
            "score-boxes",
            "--predictions",
            str(preds),
            "--ground-truth",
            str(gt),
            "--iou",
            "0.5,0.95",
            "--pr-curve",
        ],
        out=out,
    )
    text = out.getvalue()
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0] == "2 images, 6 boxes"
    assert lines[1].split()[:4] == ["IoU", "TP", "FP", "FN"]
    assert lines[2].split()[:4] == ["0.5", "2", "2", "0"]  # as the hand-worked scene
    assert lines[3].split()[:4] == ["0.95", "1", "3", "1"]
    assert "F1-optimal confidence" in text


def test_score_boxes_json(live_server, tmp_path: Path) -> None:
    preds, gt = _files(tmp_path)
    out = io.StringIO()
    assert (
        main(
            [
                "--target",
                live_server.target,
                "score-boxes",
                "--predictions",
                str(preds),
                "--ground-truth",
                str(gt),
                "--json",
                "--confidence",
                "0.75",
            ],
            out=out,
        )
        == 0
    )
    report = json.loads(out.getvalue())
    first = report["overall"][0]
    assert (first["iou_threshold"], first["tp"], first["fp"], first["fn"]) == (0.5, 1, 1, 1)
    assert [i["image_id"] for i in report["images"]] == ["a", "b"]


def test_bad_box_file_names_the_line(live_server, tmp_path: Path, capsys) -> None:
    preds = _write(tmp_path / "p.jsonl", [{"image_id": "a", "bbox": [0, 0, 1]}])
    gt = _write(tmp_path / "g.jsonl", [])
    assert (
        main(
            [
                "--target",
                live_server.target,
                "score-boxes",
                "--predictions",
                str(preds),
                "--ground-truth",
                str(gt),
            ]
        )
        == 2
    )
    assert "p.jsonl:1" in capsys.readouterr().err


def test_server_refusal_shows_the_field(live_server, tmp_path: Path, capsys) -> None:
    preds = _write(
        tmp_path / "p.jsonl",
        [{"image_id": "a", "bbox": [5, 0, 1, 1], "label": "a", "confidence": 0.5}],
    )
    gt = _write(tmp_path / "g.jsonl", [{"image_id": "a", "bbox": [0, 0, 1, 1], "label": "a"}])
    assert (
        main(
            [
                "--target",
                live_server.target,
                "score-boxes",
                "--predictions",
                str(preds),
                "--ground-truth",
                str(gt),
            ]
        )
        == 1
    )
    assert "images[0].predictions[0].x2" in capsys.readouterr().err


def test_health_exit_code(live_server) -> None:
    out = io.StringIO()
    assert main(["--target", live_server.target, "health"], out=out) == 0
    assert out.getvalue().strip() == "SERVING"


def test_unreachable_server_is_a_clear_error(capsys) -> None:
    assert main(["--target", "127.0.0.1:1", "--timeout", "2", "health"]) == 1
    err = capsys.readouterr().err
    assert "UNAVAILABLE" in err or "DEADLINE_EXCEEDED" in err
