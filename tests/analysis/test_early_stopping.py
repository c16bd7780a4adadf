"""early_stopping: Keras/Lightning semantics (min_delta, patience, mode, start step)."""

from __future__ import annotations

import math

import pytest
from evalstream_server.analysis.early_stopping import early_stopping


def test_early_stopping_patience_exhausted() -> None:
    es = early_stopping([1, 2, 3, 4, 5], [1.0, 0.8, 0.9, 0.85, 0.95], patience=3)
    assert (es.best_step, es.best_value, es.evaluations_since_best) == (2, 0.8, 3)
    assert es.steps_since_best == 3 and es.should_stop


def test_early_stopping_not_yet() -> None:
    es = early_stopping([1, 2, 3, 4], [1.0, 0.8, 0.9, 0.85], patience=3)
    assert not es.should_stop and es.evaluations_since_best == 2


def test_early_stopping_min_delta_ignores_tiny_gains() -> None:
    # 0.79 and 0.785 beat 0.8 by less than min_delta: not improvements (Keras).
    es = early_stopping([1, 2, 3, 4], [0.8, 0.79, 0.785, 0.782], min_delta=0.05, patience=3)
    assert es.best_step == 1 and es.should_stop


def test_early_stopping_mode_max() -> None:
    es = early_stopping([1, 2, 3], [0.5, 0.7, 0.6], mode="max", patience=1)
    assert es.best_step == 2 and es.best_value == 0.7 and es.should_stop


def test_early_stopping_start_step_and_nonfinite() -> None:
    es = early_stopping([1, 2, 3, 4], [0.1, 0.9, math.nan, 0.95], start_step=2, patience=2)
    assert es.best_step == 2 and es.evaluations_since_best == 2 and es.should_stop


def test_early_stopping_empty() -> None:
    es = early_stopping([], [])
    assert es.best_step is None and es.best_value is None and not es.should_stop


def test_early_stopping_bad_arguments() -> None:
    with pytest.raises(ValueError, match="mode"):
        early_stopping([1], [1.0], mode="down")
    with pytest.raises(ValueError, match="patience"):
        early_stopping([1], [1.0], patience=-1)
    with pytest.raises(ValueError, match="2 steps but 1 values"):
        early_stopping([1, 2], [1.0])
