"""BERTScore against bert-score 0.3.13 (|Δ| <= 1e-4, fp32), batching invariance, aggregates.

The reference runs on the same model directory as ours: a tiny random BERT
written locally (no hub), and, in the slow test, the fetched MiniLM model.

bert-score 0.3.13 with transformers 5: ``sent_encode`` calls
``tokenizer.build_inputs_with_special_tokens([])`` for an empty sentence, and
transformers 5 tokenizers no longer have that method (AttributeError). The
``reference`` fixture patches ``sent_encode`` to return [CLS, SEP] there, which
is what that method returned in transformers 4.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from evalstream_server.config import load_model_dir
from evalstream_server.metrics.text._types import TextPair
from evalstream_server.metrics.text.bertscore import (
    NAMES,
    BaselineNotFound,
    BertScoreAccumulator,
)
from evalstream_server.runtime.batcher import DynamicBatcher
from evalstream_server.runtime.models import (
    DEFAULT_LAYER,
    LoadedModel,
    default_model_dir,
    load_model,
    write_tiny_bert,
)

TOL = 1e-4  # against bert-score, fp32
INVARIANCE_TOL = 1e-5  # the same pair in different batches, streams, threads
LAYER = 2



@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("bertscore") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return load_model(
        str(tiny_dir),
        layer=LAYER,
        device="cpu",
        model_dir=tmp_path_factory.mktemp("d"),
        dtype="fp32",
    )


@pytest.fixture
def batcher(tiny: LoadedModel) -> Iterator[DynamicBatcher]:
    with DynamicBatcher(tiny, max_delay=0.001) as b:
        yield b


@pytest.fixture(scope="session")
def reference() -> Any:
    """``bert_score.score``, patched for empty sentences under transformers 5 (see module doc)."""
    import bert_score
    import bert_score.utils as bs_utils

    original = bs_utils.sent_encode

    def sent_encode(tokenizer: Any, sent: str) -> list[int]:
        if sent.strip() == "":
            return [tokenizer.cls_token_id, tokenizer.sep_token_id]
        return list(original(tokenizer, sent))

    bs_utils.sent_encode = sent_encode
    yield bert_score.score
    bs_utils.sent_encode = original


def _pairs(cands: Sequence[str], refs: Sequence[Sequence[str]]) -> list[TextPair]:
    return [TextPair(c, tuple(r)) for c, r in zip(cands, refs, strict=True)]


def _assert_agree(ours: Any, theirs: Any, tol: float = TOL) -> None:
    """Values within ``tol``. Where bert-score gives NaN (a side whose idf weights sum
    to 0) ours is undefined, and so is our F1, for which bert-score reports 0."""
    p, r, f = theirs
    for i, scores in enumerate(ours.pairs):
        undefined = math.isnan(float(p[i])) or math.isnan(float(r[i]))
        for k, (score, expected) in enumerate(zip(scores, (p[i], r[i], f[i]), strict=True)):
            expected = float(expected)
            assert score.name == NAMES[k]
            if math.isnan(expected) or (k == 2 and undefined):
                assert score.value is None and "sum to 0" in score.reason, (i, score)
                assert k < 2 or expected == 0.0
                continue
            assert score.value is not None, (i, score)
            assert abs(score.value - expected) <= tol, (i, score.name, score.value, expected)


LONG = " ".join(["the quick brown fox jumps over the lazy dog"] * 6)

CASES = {
    "plain": (
        ["the cat sat on the mat", "a dog", "quick brown fox"],
        [["the cat is on a mat"], ["the dog"], ["lazy dog"]],
    ),
    "unicode": (
        ["Héllo wörld 中文 日本", "Straße жя λ", "emoji 🙂 stays unknown"],
        [["hello world 中 文"], ["strasse я"], ["emoji stays"]],
    ),
    "empty_candidate": (["", "   ", "the cat"], [["the cat"], ["a dog"], ["the cat"]]),
    "empty_reference": (["the cat", "a dog", "red car"], [[""], ["a dog"], [" "]]),
    "repeated_words": (
        ["dog dog dog dog dog", "the the the cat", "yes yes no"],
        [["a dog"], ["the cat"], ["no yes no yes"]],
    ),
    "truncated": ([LONG, "the cat", LONG + " extra"], [["the fox"], [LONG], [LONG]]),
    "several_references": (
        ["the cat sat on the mat", "what color is the car", "two men"],
        [
            ["the cat is on a mat", "a dog sat", "mat"],
            ["red", "the car is blue", "blue car"],
            ["two men", "a man and a woman"],
        ],
    ),
    "mixed_reference_counts": (
        ["left of the tree", "big house", "one child", "green road"],
        [
            ["left"],
            ["small house", "big red house"],
            ["a child", "one", "three children"],
            ["road"],
        ],
    ),
}


@pytest.mark.parametrize("idf", [False, True], ids=["no_idf", "idf"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bertscore_agrees_with_bert_score(
    case: str, idf: bool, batcher: DynamicBatcher, tiny_dir: Path, reference: Any
) -> None:
    cands, refs = CASES[case]
    theirs = reference(
        list(cands), [list(r) for r in refs], model_type=str(tiny_dir), num_layers=LAYER,
        idf=idf, lang=None, nthreads=0,
    )  # fmt: skip
    ours = BertScoreAccumulator(batcher, idf=idf).update(_pairs(cands, refs))
    _assert_agree(ours, theirs)


def test_bertscore_single_references_as_strings_agree(
    batcher: DynamicBatcher, tiny_dir: Path, reference: Any
) -> None:
    cands = ["the cat sat", "a lazy dog", "blue"]
    refs = ["the cat is here", "the dog", "blue car"]
    theirs = reference(cands, refs, model_type=str(tiny_dir), num_layers=LAYER, nthreads=0)
    ours = BertScoreAccumulator(batcher).update(_pairs(cands, [[r] for r in refs]))
    _assert_agree(ours, theirs)


def test_bertscore_empty_scores_zero(batcher: DynamicBatcher) -> None:
    out = BertScoreAccumulator(batcher).update([TextPair("", ("the cat",)), TextPair("a", ("",))])
    assert [[s.value for s in pair] for pair in out.pairs] == [[0.0] * 3, [0.0] * 3]
    assert out.pairs[0][2].band == "poor"


def test_bertscore_several_references_take_max_of_each(batcher: DynamicBatcher) -> None:
    acc = BertScoreAccumulator(batcher)
    refs = ("the cat is on a mat", "a dog sat")
    (both,) = acc.score_pairs([TextPair("the cat sat", refs)])
    singles = [acc.score_pairs([TextPair("the cat sat", (r,))])[0][0] for r in refs]
    for k in range(3):
        assert both[0].values()[k] == max(s.values()[k] or 0.0 for s in singles)


def test_bertscore_idf_single_pair_recall_undefined(batcher: DynamicBatcher) -> None:
    # One reference: each of its tokens occurs in every document, idf 0 everywhere.
    out = BertScoreAccumulator(batcher, idf=True).update([TextPair("the cat sat", ("a dog",))])
    precision, recall, f1 = out.pairs[0]
    assert precision.value is not None
    assert recall.value is None and f1.value is None
    assert "sum to 0" in recall.reason and recall.band == ""
    assert out.batch[1].value is None and "no pair of the batch" in out.batch[1].reason


def test_bertscore_truncation_is_flagged(batcher: DynamicBatcher) -> None:
    out = BertScoreAccumulator(batcher).update(
        [TextPair(LONG, ("the fox", LONG)), TextPair("the cat", ("the cat",))]
    )
    assert out.pairs[0][2].reason == "truncated to 32 tokens: prediction, reference 1"
    assert out.pairs[1][2].reason == ""
    assert out.pairs[0][2].value is not None


def test_bertscore_no_reference_refused(batcher: DynamicBatcher) -> None:
    with pytest.raises(ValueError, match=r"pairs\[1\].references"):
        BertScoreAccumulator(batcher).update([TextPair("a", ("b",)), TextPair("c", ())])


def test_bertscore_signature(batcher: DynamicBatcher) -> None:
    from importlib.metadata import version

    import torch

    signature = BertScoreAccumulator(batcher).signature
    torch_version = torch.__version__.split("+")[0]
    assert signature == (
        "model:tiny-bert|layer:2|idf:no|rescaled:no|tok:BertTokenizer|"
        f"version:bert-score-{version('bert-score')}|torch-{torch_version}|dtype:fp32|device:cpu"
    )
    # The installed distribution, not bert_score.__version__ (0.3.13 still says 0.3.12).
    assert "bert-score-0.3.12" not in signature
    assert "idf:yes" in BertScoreAccumulator(batcher, idf=True).signature


def test_bertscore_rescale_refused_without_baseline(batcher: DynamicBatcher) -> None:
    missing = r"missing file .*rescale_baseline/en/tiny-bert\.tsv"
    with pytest.raises(BaselineNotFound, match=missing):
        BertScoreAccumulator(batcher, rescale_with_baseline=True)


def test_bertscore_rescale_agrees_with_bert_score(
    batcher: DynamicBatcher, tiny_dir: Path, reference: Any, tmp_path: Path
) -> None:
    baseline = tmp_path / "baseline.tsv"
    baseline.write_text(
        "LAYER,P,R,F\n0,0.1,0.2,0.3\n1,0.5,0.55,0.6\n2,0.7,0.72,0.71\n3,0.8,0.8,0.8\n"
    )
    cands, refs = CASES["several_references"]
    theirs = reference(
        list(cands), [list(r) for r in refs], model_type=str(tiny_dir), num_layers=LAYER,
        lang="en", rescale_with_baseline=True, baseline_path=str(baseline), nthreads=0,
    )  # fmt: skip
    acc = BertScoreAccumulator(batcher, rescale_with_baseline=True, baseline_file=baseline)
    _assert_agree(acc.update(_pairs(cands, refs)), theirs)
    assert "|rescaled:yes-custom|" in acc.signature


def test_bertscore_batch_and_running_means(batcher: DynamicBatcher) -> None:
    acc = BertScoreAccumulator(batcher)
    assert all(s.value is None for s in acc.running)
    first = acc.update(_pairs(*CASES["plain"]))
    second = acc.update(_pairs(*CASES["repeated_words"]))
    values = [[s.value or 0.0 for s in pair] for pair in first.pairs + second.pairs]
    for k in range(3):
        column = [v[k] for v in values]
        assert math.isclose(first.batch[k].value or 0, sum(column[:3]) / 3, abs_tol=1e-12)
        assert math.isclose(acc.running[k].value or 0, sum(column) / 6, abs_tol=1e-12)
    assert acc.running[2].band in ("excellent", "good", "moderate", "poor")


def _all_pairs() -> list[TextPair]:
    out: list[TextPair] = []
    for name in sorted(CASES):
        out += _pairs(*CASES[name])
    return out


def test_bertscore_batching_invariance(tiny: LoadedModel) -> None:
    pairs = _all_pairs()
    with DynamicBatcher(tiny, max_delay=0.0, cache_size=0) as b:
        alone = [BertScoreAccumulator(b).update([p]).pairs[0] for p in pairs]
    results: dict[int, Any] = {}

    def stream(worker: int, batch: DynamicBatcher) -> None:
        acc = BertScoreAccumulator(batch)
        chunk = 1 + worker % 5
        for start in range(0, len(pairs), chunk):
            for i, scores in enumerate(acc.update(pairs[start : start + chunk]).pairs):
                results[worker * 1000 + start + i] = scores

    with DynamicBatcher(tiny, max_delay=0.002, max_tokens_per_batch=256, cache_size=0) as b:
        threads = [threading.Thread(target=stream, args=(w, b)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert len(results) == 8 * len(pairs)
    for key, scores in results.items():
        expected = alone[key % 1000]
        for got, want in zip(scores, expected, strict=True):
            assert want.value is not None and got.value is not None
            assert abs(got.value - want.value) <= INVARIANCE_TOL, (key, got, want)


def test_bertscore_bf16_drift_small(tiny_dir: Path, tmp_path: Path) -> None:
    pairs = _pairs(*CASES["several_references"])
    out: dict[str, list[float]] = {}
    for dtype in ("fp32", "bf16"):
        model = load_model(
            str(tiny_dir), layer=LAYER, device="cpu", model_dir=tmp_path, dtype=dtype
        )
        with DynamicBatcher(model, max_delay=0.0) as b:
            acc = BertScoreAccumulator(b)
            out[dtype] = [s.value or 0.0 for pair in acc.update(pairs).pairs for s in pair]
            assert f"dtype:{dtype}" in acc.signature
    drift = max(abs(a - b) for a, b in zip(out["fp32"], out["bf16"], strict=True))
    assert drift < 0.05


def _minilm_dir() -> Path:
    return default_model_dir(load_model_dir(None))


@pytest.mark.slow
@pytest.mark.skipif(
    not _minilm_dir().is_dir(),
    reason=f"MiniLM model not fetched into {_minilm_dir()} (run `evalstream-server fetch-model`, "
    "or set EVALSTREAM_MODEL_DIR to the model cache holding it)",
)
@pytest.mark.parametrize("idf", [False, True], ids=["no_idf", "idf"])
def test_bertscore_agrees_with_bert_score_on_minilm(
    idf: bool, reference: Any, tmp_path: Path
) -> None:
    model_dir = _minilm_dir()
    model = load_model(str(model_dir), layer=None, device="cpu", model_dir=tmp_path, dtype="fp32")
    assert model.info.layer == DEFAULT_LAYER
    cands: list[str] = []
    refs: list[list[str]] = []
    for name in sorted(CASES):
        cands += CASES[name][0]
        refs += [list(r) for r in CASES[name][1]]
    cands.append(" ".join(["a long answer about the picture"] * 120))  # > 512 tokens
    refs.append(["a long answer"])
    theirs = reference(
        cands, refs, model_type=str(model_dir), num_layers=DEFAULT_LAYER, idf=idf, nthreads=0
    )
    with DynamicBatcher(model, max_delay=0.001) as b:
        ours = BertScoreAccumulator(b, idf=idf).update(_pairs(cands, refs))
    _assert_agree(ours, theirs)
    assert ours.pairs[-1][0].reason == "truncated to 512 tokens: prediction"
