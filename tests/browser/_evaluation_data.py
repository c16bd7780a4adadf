"""Runs with evaluation steps and specimens, written by the real client, for the view tests."""

from __future__ import annotations

from dataclasses import dataclass

from evalstream import Box, Client, ImageBoxes

PROJECT = "vision"
MONITOR = {"monitor": "validation/bbox_f1@0.5"}


@dataclass(frozen=True)
class Written:
    grounding: str  # run id: boxes at steps 100 and 200
    other: str  # run id: the same images, another learning rate, at step 200
    vqa: str  # run id: VQA answers at step 100


def write_runs(target: str) -> Written:
    """Two grounding runs (differing in learning_rate) and a VQA run."""
    with Client(target) as client:
        a = client.create_run(
            PROJECT,
            "grounding-a",
            task="phrase_grounding",
            hyperparameters={"learning_rate": 1e-4, "batch_size": 8},
            verdict_config=MONITOR,
        )
        b = client.create_run(
            PROJECT,
            "grounding-b",
            task="phrase_grounding",
            hyperparameters={"learning_rate": 3e-4, "batch_size": 8},
            verdict_config=MONITOR,
        )
        cup, dog = Box(10, 10, 60, 60, label="cup"), Box(0, 0, 40, 40, label="dog")
        # Step 100: img1's cup is predicted far away (missed + false positive).
        client.score_boxes(
            [
                ImageBoxes(
                    "img1", (Box(100, 100, 150, 150, "cup", 0.7),), (cup,), width=200, height=160
                ),
                ImageBoxes("img2", (Box(0, 0, 40, 40, "dog", 0.9),), (dog,), width=200, height=160),
            ],
            checkpoint=a.checkpoint(100),
        )
        # Step 200: img1's cup is found.
        client.score_boxes(
            [
                ImageBoxes(
                    "img1", (Box(12, 11, 60, 62, "cup", 0.95),), (cup,), width=200, height=160
                ),
                ImageBoxes("img2", (Box(0, 0, 40, 40, "dog", 0.9),), (dog,), width=200, height=160),
            ],
            checkpoint=a.checkpoint(200),
        )
        client.score_boxes(
            [ImageBoxes("img1", (Box(20, 30, 70, 90, "cup", 0.8),), (cup,), width=200, height=160)],
            checkpoint=b.checkpoint(200),
        )
        v = client.create_run(PROJECT, "vqa-a", task="vqa")
        client.score_text(
            ["two cats", "a red bus"],
            [["two cats", "2 cats"], ["a blue bus"]],
            specimen_ids=["q1", "q2"],
            questions=["How many cats are there?", "What colour is the bus?"],
            metrics=["bleu", "rouge"],
            checkpoint=v.checkpoint(100),
        )
        return Written(a.id, b.id, v.id)


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A PNG of one colour (no imaging library needed)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )
