"""Fixtures for the runtime tests: a tiny random BERT written locally (no hub)."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalstream_server.runtime.models import LoadedModel, load_model, write_tiny_bert

TINY_LAYER = 2


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-layer, 32-wide random BERT with a WordPiece tokenizer, max length 32."""
    return write_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_model(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The tiny BERT loaded at layer 2 on the CPU in fp32."""
    return load_model(
        str(tiny_bert_dir),
        layer=TINY_LAYER,
        device="cpu",
        data_dir=tmp_path_factory.mktemp("data"),
        dtype="fp32",
    )
