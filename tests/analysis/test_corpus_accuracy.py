"""Verdict accuracy on the generated corpus: >= 95% per state, no overfitting on healthy curves."""

from __future__ import annotations

from evalstream_server.analysis.curves_corpus import (
    CORPUS_STATES,
    accuracy,
    format_accuracy,
    generate_corpus,
    sparse_evaluations,
)

N_PER_STATE = 60


def test_corpus_accuracy_per_state() -> None:
    confusion, misses = accuracy(generate_corpus(N_PER_STATE, seed=1000))
    print("\n" + format_accuracy(confusion))
    for curve, verdict in misses:
        print(f"  miss {curve.state}#{curve.seed} -> {verdict.state}: {curve.description}")
    assert set(confusion) == set(CORPUS_STATES)
    for state, row in confusion.items():
        total = sum(row.values())
        assert row.get(state, 0) / total >= 0.95, (state, row)
    assert confusion["healthy"].get("overfitting", 0) == 0


def test_corpus_is_deterministic() -> None:
    a = generate_corpus(2, seed=5, states=("healthy",))
    b = generate_corpus(2, seed=5, states=("healthy",))
    assert all((x.train.values == y.train.values).all() for x, y in zip(a, b, strict=True))


def test_corpus_sparse_evaluations_latest_rise_finds_overfitting() -> None:
    # 8 validation evaluations per run: 3 of them span most of the run, so their median
    # lags; the latest evaluation's rise rules (smooth_min_evaluations = 10). Measured:
    # overfitting 90% (the smoothed rise found 55%), no healthy run called overfitting.
    curves = [sparse_evaluations(c, 8) for c in generate_corpus(N_PER_STATE, seed=1000)]
    confusion, _ = accuracy(curves)
    assert confusion["overfitting"].get("overfitting", 0) / N_PER_STATE >= 0.85
    assert confusion["healthy"].get("overfitting", 0) == 0
    for state in ("healthy", "underfitting", "not_learning", "unstable", "diverged"):
        assert confusion[state].get(state, 0) / N_PER_STATE >= 0.95, (state, confusion[state])
