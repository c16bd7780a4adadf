"""Specimens a reviewer can look at: the image (URI, size) and the question, sent and read back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from evalstream import AsyncClient, Box, Client, ImageBoxes
from evalstream.errors import InvalidArgument

CUP = Box(10, 10, 50, 50, label="cup", confidence=0.9)
TRUE_CUP = Box(10, 10, 50, 50, label="cup")
#: A directory that exists wherever the tests run, as the server's image root.
IMAGE_ROOT = Path(__file__).parent


def _image(image_id: str, uri: str = "", width: int = 0, height: int = 0) -> ImageBoxes:
    return ImageBoxes(image_id, (CUP,), (TRUE_CUP,), image_uri=uri, width=width, height=height)


def _refusal(info: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    return {v.field: v.description for v in info.value.violations}


def test_box_images_are_stored_and_read_back(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("images", "boxes")
        client.score_boxes(
            [
                _image("a", "https://images.example.org/val/1.jpg", 640, 480),
                _image("b", "s3://bucket/val/2.jpg"),
                _image("c"),
                _image("d", "file:///data/coco/3.jpg", 320, 200),
            ],
            batch_size=2,
            checkpoint=run.checkpoint(10),
        )
        found = {s.specimen_id: s for s in run.specimens(10)}
    assert (found["a"].image_uri, found["a"].width, found["a"].height) == (
        "https://images.example.org/val/1.jpg",
        640,
        480,
    )
    assert (found["b"].image_uri, found["b"].width, found["b"].height) == (
        "s3://bucket/val/2.jpg",
        0,
        0,
    )
    assert (found["c"].image_uri, found["c"].width, found["c"].height, found["c"].question) == (
        "",
        0,
        0,
        "",
    )
    assert (found["d"].image_uri, found["d"].width) == ("file:///data/coco/3.jpg", 320)


def test_text_questions_and_images_are_stored_and_read_back(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("images", "vqa")
        client.score_text(
            ["two", "red"],
            [["two"], ["blue"]],
            specimen_ids=["q1", "q2"],
            questions=["How many cats are there?", "What colour is the cup?"],
            image_uris=["https://images.example.org/1.jpg", ""],
            metrics=["bleu"],
            checkpoint=run.checkpoint(20),
        )
        found = {s.specimen_id: s for s in run.specimens(20)}
    assert found["q1"].question == "How many cats are there?"
    assert found["q1"].image_uri == "https://images.example.org/1.jpg"
    assert (found["q2"].question, found["q2"].image_uri) == ("What colour is the cup?", "")


def test_the_async_client_sends_questions_too(live_server) -> None:
    async def main() -> dict[str, str]:
        async with AsyncClient(live_server.target) as client:
            run = await client.create_run("images", "async")
            await client.score_text(
                ["yes"],
                ["yes"],
                specimen_ids=["q"],
                questions=["Is it a dog?"],
                metrics=["bleu"],
                checkpoint=run.checkpoint(1),
            )
            return {s.specimen_id: s.question async for s in run.specimens(1)}

    assert asyncio.run(main()) == {"q": "Is it a dog?"}


def test_stream_text_pairs_may_carry_a_question_and_an_image(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("images", "stream")
        batch = [("two", ["two"], "q1", "How many?", "s3://b/1.jpg")]
        list(client.stream_text([batch], metrics=["bleu"], checkpoint=run.checkpoint(5)))
        (specimen,) = run.specimens(5)
    assert (specimen.question, specimen.image_uri) == ("How many?", "s3://b/1.jpg")


def test_question_and_image_uri_lengths_are_checked_on_the_client_side_of_the_lists(
    live_server,
) -> None:
    with Client(live_server.target) as client:
        with pytest.raises(ValueError, match="2 predictions but 1 questions"):
            client.score_text(["a", "b"], ["a", "b"], questions=["q"])
        with pytest.raises(ValueError, match="2 predictions but 3 image uris"):
            client.score_text(["a", "b"], ["a", "b"], image_uris=["x", "y", "z"])


@pytest.mark.parametrize(
    ("image", "field", "says"),
    [
        (_image("x", "ftp://host/1.jpg"), "images[1].image_uri", "scheme 'ftp'"),
        (_image("x", "https:///1.jpg"), "images[1].image_uri", "no host"),
        (_image("x", "val/1.jpg"), "images[1].image_uri", "--image-root"),
        (_image("x", "/data/1.jpg"), "images[1].image_uri", "absolute path"),
        (_image("x", "file:"), "images[1].image_uri", "names no file"),
        (_image("x", "https://h/" + "a" * 2048), "images[1].image_uri", "at most 2048"),
        (_image("x", width=-1, height=10), "images[1].width", "negative"),
        (_image("x", width=640), "images[1].height", "without height"),
        (_image("x", height=480), "images[1].width", "without width"),
    ],
)
def test_bad_image_fields_are_refused_naming_the_field(live_server, image, field, says) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("images", "refused")
        ok = [_image(f"ok{i}", f"https://h/{i}.jpg", 1, 1) for i in range(3)]
        with pytest.raises(InvalidArgument) as info:
            # The first batch is accepted and recorded; the second is refused.
            client.score_boxes([*ok, image], batch_size=2, checkpoint=run.checkpoint(1))
        assert info.value.code == "INVALID_ARGUMENT"
        refused = _refusal(info)
        assert list(refused) == [field]
        assert says in refused[field]
        # Nothing accepted is lost, and the server keeps serving.
        assert sorted(s.specimen_id for s in run.specimens(1)) == ["ok0", "ok1"]
        # Without a checkpoint the fields are checked all the same.
        with pytest.raises(InvalidArgument) as info:
            client.score_boxes([image])
        assert list(_refusal(info)) == [field.replace("[1]", "[0]")]


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("val/../../etc/passwd", "'..'"),
        ("..", "'..'"),
        ("val\\1.jpg", "backslash"),
        ("C:\\images\\1.jpg", "scheme 'c'"),
        ("val/1\n.jpg", "control character"),
    ],
)
@pytest.mark.parametrize("live_server", [{"image_root": IMAGE_ROOT}], indirect=True)
def test_relative_paths_escaping_the_image_root_are_refused(live_server, uri, says) -> None:
    with Client(live_server.target) as client:
        with pytest.raises(InvalidArgument) as info:
            client.score_boxes([_image("a", uri)])
    refused = _refusal(info)
    assert list(refused) == ["images[0].image_uri"]
    assert says in refused["images[0].image_uri"]


@pytest.mark.parametrize("live_server", [{"image_root": IMAGE_ROOT}], indirect=True)
def test_a_server_with_an_image_root_accepts_relative_paths(live_server) -> None:
    with Client(live_server.target) as client:
        run = client.create_run("images", "relative")
        client.score_boxes([_image("a", "val2017/1.jpg", 8, 6)], checkpoint=run.checkpoint(3))
        client.score_text(
            ["x"], ["x"], image_uris=["vqa/2.jpg"], metrics=["bleu"], checkpoint=run.checkpoint(4)
        )
        (boxes,) = run.specimens(3)
        (text,) = run.specimens(4)
    assert (boxes.image_uri, boxes.width, boxes.height) == ("val2017/1.jpg", 8, 6)
    assert text.image_uri == "vqa/2.jpg"


def test_relative_text_images_and_long_questions_are_refused_naming_the_pair(live_server) -> None:
    with Client(live_server.target) as client:
        with pytest.raises(InvalidArgument) as info:
            client.score_text(
                ["a", "b"],
                ["a", "b"],
                questions=["", "q" * 8193],
                image_uris=["img/1.jpg", ""],
                metrics=["bleu"],
            )
    refused = _refusal(info)
    assert set(refused) == {"pairs[0].image_uri", "pairs[1].question"}
    assert "--image-root / EVALSTREAM_IMAGE_ROOT" in refused["pairs[0].image_uri"]
    assert "at most 8192" in refused["pairs[1].question"]
