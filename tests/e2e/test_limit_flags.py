"""Refusals at a size or concurrency limit name the flag (and variable) that raises it."""

from __future__ import annotations

import pytest
from evalstream import Box, Client, ImageBoxes, errors
from evalstream_server.api.scoring import _BOX_LIMITS
from evalstream_server.api.text import _TEXT_LIMITS
from evalstream_server.config import Config, parser, raise_hint
from evalstream_server.limits import ConcurrencyLimit

SMALL = {
    "max_images_per_batch": 2,
    "max_boxes_per_image": 1,
    "max_pairs_per_batch": 1,
    "max_chars_per_text": 8,
}


def _described(info: pytest.ExceptionInfo[errors.InvalidArgument]) -> dict[str, str]:
    return {v.field: v.description for v in info.value.violations} or {"": info.value.message}


@pytest.mark.parametrize("live_server", [SMALL], indirect=True)
def test_box_and_text_size_limits_name_their_flags(live_server) -> None:
    dog = Box(0, 0, 10, 10, "dog", 0.9)
    with Client(live_server.target) as client:
        with pytest.raises(errors.InvalidArgument) as info:
            client.score_boxes([ImageBoxes(str(i)) for i in range(3)], batch_size=3)
        assert "raise it with --max-images-per-batch / EVALSTREAM_MAX_IMAGES_PER_BATCH" in str(
            info.value
        )
        with pytest.raises(errors.InvalidArgument) as info:
            client.score_boxes([ImageBoxes("a", predictions=(dog, dog))])
        assert _described(info)["images[0].predictions"].endswith(
            "at most 1 per image; raise it with --max-boxes-per-image / "
            "EVALSTREAM_MAX_BOXES_PER_IMAGE"
        )
        with pytest.raises(errors.InvalidArgument) as info:
            client.score_text(["a", "b"], ["a", "b"], metrics=["bleu"], batch_size=2)
        assert "--max-pairs-per-batch / EVALSTREAM_MAX_PAIRS_PER_BATCH" in str(info.value)
        with pytest.raises(errors.InvalidArgument) as info:
            client.score_text(["a long answer"], ["short"], metrics=["bleu"])
        assert _described(info)["pairs[0].prediction"].endswith(
            "raise it with --max-chars-per-text / EVALSTREAM_MAX_CHARS_PER_TEXT"
        )


def test_concurrency_refusals_name_their_flags() -> None:
    limit = ConcurrencyLimit(1, per_token=1)
    assert limit._enter(b"a") is None
    refusal = limit._enter(b"b")
    assert refusal and "raise it with --max-concurrent-rpcs / EVALSTREAM_MAX_CONCURRENT_RPCS" in (
        refusal
    )
    limit = ConcurrencyLimit(10, per_token=1)
    assert limit._enter(b"a") is None
    refusal = limit._enter(b"a")
    assert refusal and (
        "--max-concurrent-rpcs-per-token / EVALSTREAM_MAX_CONCURRENT_RPCS_PER_TOKEN" in refusal
    )


def test_every_named_limit_is_a_flag_the_server_takes() -> None:
    flags = {a.option_strings[0] for a in parser()._actions if a.option_strings}
    for field in [*_BOX_LIMITS.values(), *_TEXT_LIMITS.values(), "max_points_per_chunk"]:
        assert hasattr(Config(), field)
        assert raise_hint(field).split()[3] in flags


@pytest.mark.parametrize("live_server", [{"max_message_bytes": 100_000}], indirect=True)
def test_message_size_refusals_say_whose_limit_and_how_to_raise_it(live_server) -> None:
    from evalstream._base import SERVER_MESSAGE_LIMIT_HINT

    assert SERVER_MESSAGE_LIMIT_HINT == raise_hint("max_message_bytes")  # cannot drift
    answers, refs = ["word " * 1900] * 64, ["word"] * 64  # one message of about 600 kB
    with Client(live_server.target) as client, pytest.raises(errors.ResourceExhausted) as info:
        client.score_text(answers, refs, metrics=["bleu"])
    assert info.value.message.endswith(
        "the limit is the server's: raise it with --max-message-bytes / "
        "EVALSTREAM_MAX_MESSAGE_BYTES"
    )
    with Client(live_server.target, max_message_bytes=50_000) as client:
        with pytest.raises(errors.ResourceExhausted) as info:
            client.score_text(answers, refs, metrics=["bleu"])
    assert "this client's: raise it with Client(max_message_bytes=...)" in info.value.message
