"""Fixtures for the runtime tests: a tiny random BERT written locally (no hub)."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalstream_server.runtime.models import LoadedModel, load_model

TINY_LAYER = 2  # the tiny BERT itself is the session fixture tiny_bert_dir in tests/conftest.py


@pytest.fixture(scope="session")
def tiny_model(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """The tiny BERT loaded at layer 2 on the CPU in fp32."""
    return load_model(
        str(tiny_bert_dir),
        layer=TINY_LAYER,
        device="cpu",
        model_dir=tmp_path_factory.mktemp("models"),
        dtype="fp32",
    )
