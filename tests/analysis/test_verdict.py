"""Verdict rules (one test per rule), evidence, the incremental analyzer, properties."""

from __future__ import annotations

import numpy as np
import pytest
from evalstream_server.analysis import curve_state, evidence, verdict, verdict_config
from evalstream_server.analysis.verdict import (
    ADVICE,
    STATES,
    RunAnalyzer,
    VerdictConfig,
    build_analyzer,
    verdict_from_series,
)
from evalstream_server.store._types import CheckpointRow, SeriesData
from hypothesis import given, settings
from hypothesis import strategies as st

STEPS = np.arange(10, 10_010, 10)
EVALS = np.arange(500, 10_001, 500)


def _s(split: str, steps: np.ndarray, values: np.ndarray) -> SeriesData:
    return SeriesData(split, "loss", steps, np.asarray(values, dtype=float), None, len(steps))


def _decay(
    steps: np.ndarray, start: float = 2.5, floor: float = 0.3, tau: float = 1500
) -> np.ndarray:
    return floor + (start - floor) * np.exp(-steps / tau)


def _noise(values: np.ndarray, level: float, seed: int = 0) -> np.ndarray:
    return values * (1 + level * np.random.default_rng(seed).standard_normal(len(values)))


def _verdict(train: np.ndarray | None, val: np.ndarray | None = None, **cfg: object):  # type: ignore[no-untyped-def]
    return verdict_from_series(
        None if train is None else _s("train", STEPS, train),
        None if val is None else _s("validation", EVALS, val),
        (),
        VerdictConfig.from_mapping(cfg),
    )


def test_verdict_healthy_learning_and_plateau() -> None:
    v = _verdict(_noise(_decay(STEPS), 0.03), _decay(EVALS) * 1.05)
    assert v.state == "healthy" and v.advice == () and v.severity == ""
    assert v.loss_context.initial_band == "typical_untrained"
    v2 = _verdict(_decay(STEPS, tau=8000))
    assert v2.state == "healthy" and v2.summary.startswith("Learning")


def test_verdict_insufficient_data() -> None:
    v = verdict_from_series(_s("train", STEPS[:5], _decay(STEPS[:5])), None)
    assert v.state == "insufficient_data"
    assert verdict_from_series(None, None).state == "insufficient_data"


def test_verdict_diverged_nan() -> None:
    train = _decay(STEPS)
    train[700] = np.nan
    v = _verdict(train)
    assert v.state == "diverged" and v.evidence.first_nonfinite_step == int(STEPS[700])
    assert [a.action for a in v.advice] == [a.action for a in ADVICE["diverged"]]


def test_verdict_diverged_blow_up() -> None:
    train = _decay(STEPS)
    train[800:] *= np.exp(np.arange(200) / 40)
    assert _verdict(train).state == "diverged"


def test_verdict_unstable_spikes() -> None:
    train = _noise(_decay(STEPS), 0.02)
    train[[400, 650]] *= 4.0
    v = _verdict(train)
    assert v.state == "unstable" and v.evidence.spike_steps == (int(STEPS[400]), int(STEPS[650]))
    assert _verdict(train, spike_sigma=1e6).state == "healthy"


def test_verdict_spikes_in_warmup_ignored() -> None:
    train = _noise(_decay(STEPS), 0.02)
    train[40] *= 4.0  # step 410 < 5% of 10000
    assert _verdict(train).state == "healthy"


def test_verdict_not_learning() -> None:
    v = _verdict(_noise(np.full(len(STEPS), 2.3), 0.02))
    assert v.state == "not_learning" and v.advice[0].action == "check_learning_rate"


def test_verdict_overfitting_with_severity_and_stop_step() -> None:
    val = 0.5 + 0.3 * ((EVALS - 4000) / 6000.0) ** 2
    v = _verdict(_decay(STEPS, floor=0.05), val)
    assert v.state == "overfitting" and v.severity in ("moderate", "severe")
    assert v.evidence.best_validation_step == 4000
    assert v.advice[0].action == "stop_earlier" and "4000" in v.advice[0].text
    assert v.early_stopping.best_step == 4000 and v.early_stopping.should_stop
    assert v.evidence.gap_trend is not None and v.evidence.gap_trend > 0


def test_verdict_overfitting_mild() -> None:
    val = 0.5 + 0.04 * np.clip((EVALS - 5000) / 5000.0, 0, None)
    v = _verdict(_decay(STEPS, floor=0.05), val)
    assert (v.state, v.severity) == ("overfitting", "mild")


def test_verdict_overfitting_from_checkpoints_only() -> None:
    table = [(500, 0.75, 0.72), (1000, 0.85, 0.80), (1500, 0.92, 0.78), (2000, 0.97, 0.74)]
    rows = [CheckpointRow("train", s, {"f1": t}, {}) for s, t, _ in table]
    rows += [CheckpointRow("validation", s, {"f1": v}, {}) for s, _, v in table]
    v = verdict_from_series(None, None, rows, VerdictConfig(monitor="validation/f1", mode="max"))
    assert (v.state, v.severity) == ("overfitting", "severe")
    assert [c.grade for c in v.checkpoints][-2:] == ["overfitting", "severe_overfitting"]
    assert v.early_stopping.best_step == 1000 and v.as_of_step == 2000


def test_verdict_underfitting() -> None:
    train = 2.5 * (1 - 0.2 * (1 - np.exp(-STEPS / 1000)))
    val = 2.5 * (1 - 0.2 * (1 - np.exp(-EVALS / 1000))) * 1.02
    v = _verdict(_noise(train, 0.02), val)
    assert v.state == "underfitting" and v.advice[0].action == "train_longer"


def test_verdict_evidence_numbers() -> None:
    v = _verdict(_decay(STEPS), _decay(EVALS) + 0.1)
    ev = v.evidence
    assert ev.train_relative_decrease is not None and ev.train_relative_decrease > 0.5
    assert ev.gap == pytest.approx(0.1, abs=0.01)
    assert ev.train_recent_slope is not None and ev.train_recent_slope < 0
    assert v.as_of_step == 10_000 and v.state in STATES


def test_verdict_module_reexports_its_parts() -> None:
    assert verdict.VerdictConfig is verdict_config.VerdictConfig
    assert verdict.IncrementalCurveState is curve_state.IncrementalCurveState
    for name in ("ADVICE", "LOSS_CAVEAT", "STATES", "Advice", "Evidence", "LossContext", "Verdict"):
        assert getattr(verdict, name) is getattr(evidence, name)
    assert all(hasattr(verdict, name) for name in verdict.__all__)


def test_analyzer_rejects_invalid_config() -> None:
    with pytest.raises(ValueError, match="invalid verdict config"):
        RunAnalyzer(VerdictConfig(mode="x"))
    with pytest.raises(ValueError, match="invalid verdict config"):
        RunAnalyzer(VerdictConfig()).verdict(VerdictConfig(patience=-1))


def test_incremental_matches_from_scratch() -> None:
    train = _noise(_decay(STEPS), 0.05, seed=3)
    val = 0.5 + 0.3 * ((EVALS - 4000) / 6000.0) ** 2
    whole = verdict_from_series(_s("train", STEPS, train), _s("validation", EVALS, val))
    inc = RunAnalyzer(VerdictConfig())
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, len(STEPS)), size=30, replace=False))
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(STEPS)], strict=True):
        assert inc.add_points("train", "loss", STEPS[lo:hi], train[lo:hi])
    inc.add_points("validation", "loss", EVALS, val)
    assert inc.verdict() == whole


def test_stale_on_out_of_order_points() -> None:
    analyzer = build_analyzer([_s("train", STEPS, _decay(STEPS))], [], VerdictConfig())
    assert not analyzer.add_points("train", "loss", np.array([50]), np.array([1.0]))
    assert analyzer.stale
    assert not analyzer.add_points("train", "loss", np.array([20_000]), np.array([1.0]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), level=st.floats(0.0, 0.05), floor=st.floats(0.0, 0.3))
def test_property_only_improving_is_never_overfitting(
    seed: int, level: float, floor: float
) -> None:
    rng = np.random.default_rng(seed)
    train = np.minimum.accumulate(_noise(_decay(STEPS, floor=floor + 0.01), level, seed))
    val = np.minimum.accumulate(
        _decay(EVALS, floor=floor + 0.05) * (1 + 0.05 * rng.random(len(EVALS)))
    )
    assert _verdict(train, val).state != "overfitting"


CANONICAL = {
    "healthy": (_decay(STEPS), _decay(EVALS) * 1.05),
    "overfitting": (_decay(STEPS, floor=0.05), 0.5 + 0.3 * ((EVALS - 4000) / 6000.0) ** 2),
    "not_learning": (np.full(len(STEPS), 2.3), np.full(len(EVALS), 2.4)),
    "underfitting": (
        2.5 * (1 - 0.2 * (1 - np.exp(-STEPS / 1000))),
        2.5 * (1 - 0.2 * (1 - np.exp(-EVALS / 1000))) * 1.02,
    ),
}


@settings(max_examples=40, deadline=None)
@given(
    state=st.sampled_from(sorted(CANONICAL)),
    seed=st.integers(0, 10_000),
    amplitude=st.floats(0.0, 0.02),
)
def test_property_noise_below_threshold_keeps_state(
    state: str, seed: int, amplitude: float
) -> None:
    # Bounded noise (|e| <= 2%) can never reach the spike threshold (6 sigmas and 25%).
    train, val = CANONICAL[state]
    rng = np.random.default_rng(seed)
    noisy = train * (1 + amplitude * rng.uniform(-1, 1, len(train)))
    assert _verdict(train, val).state == state
    assert _verdict(noisy, val).state == state


# Hand-worked runs of issue 14: train loss falls throughout; validation is evaluated
# every 500 steps (8 evaluations: sparse) and is lowest (1.00) at step 1000.
HW_STEPS = np.arange(10, 4001, 10)
HW_EVALS = np.arange(500, 4001, 500)
HW_VAL = np.array([1.40, 1.00, 1.00, 1.04, 1.08, 1.10, 1.13, 1.34])
# Latest: (1.34 - 1.00) / 1.00 = 34%. Smoothed: the 3-point rolling medians are
# 1.40 1.00 1.00 1.04 1.08 1.10 1.13 1.34 (lowest 1.00); the median of the last 3
# evaluations (1.10, 1.13, 1.34) is 1.13: 13%. The thresholds: severe from 30%.


def _hw_train() -> SeriesData:
    return _s("train", HW_STEPS, 0.3 + 2.2 * np.exp(-HW_STEPS / 800))


def test_verdict_rise_severity_and_summary_quote_the_same_figure() -> None:
    v = verdict_from_series(_hw_train(), _s("validation", HW_EVALS, HW_VAL))
    # 8 evaluations < smooth_min_evaluations (10): the latest evaluation's rise rules.
    assert (v.state, v.severity) == ("overfitting", "severe")
    assert (
        "Validation loss is 34% above its best (step 1000; latest evaluation; "
        "13% smoothed over the last 3)"
    ) in v.summary
    assert v.summary.endswith("severe overfitting.")
    assert v.evidence.best_validation_step == 1000
    # With enough evaluations to smooth, the smoothed 13% rules, and is quoted first.
    v = verdict_from_series(
        _hw_train(),
        _s("validation", HW_EVALS, HW_VAL),
        (),
        VerdictConfig(smooth_min_evaluations=8),
    )
    assert (v.state, v.severity) == ("overfitting", "mild")
    assert (
        "Validation loss is 13% above its best (step 1000; smoothed over the last 3 "
        "evaluations; latest evaluation 34%)"
    ) in v.summary


def _wer_rows(values: list[float], name: str = "wer") -> list[CheckpointRow]:
    return [
        CheckpointRow("validation", int(s), {name: w}, {})
        for s, w in zip(HW_EVALS, values, strict=True)
    ]


def test_verdict_loss_only_overfitting_follows_the_monitor() -> None:
    # A speech fine-tune: validation loss rises after step 1000 (34%), WER keeps
    # improving to step 3000 (0.22), then 0.225 and 0.224: 2 evaluations since its
    # best, under the patience of 3.
    rows = _wer_rows([0.40, 0.30, 0.26, 0.24, 0.23, 0.22, 0.225, 0.224])
    v = verdict_from_series(
        _hw_train(),
        _s("validation", HW_EVALS, HW_VAL),
        rows,
        VerdictConfig(monitor="validation/wer"),
    )
    assert (v.state, v.severity) == ("overfitting", "mild")
    assert v.summary.startswith(
        "Overfitting in loss only: validation loss is 34% above its best (step 1000; "
        "latest evaluation; 13% smoothed over the last 3) while validation/wer kept "
        "improving (best 0.22 at step 3000)"
    )
    assert v.early_stopping.best_step == 3000 and not v.early_stopping.should_stop
    assert v.advice[0].action == "follow_monitor" and "step 3000" in v.advice[0].text
    assert not any("1000" in a.text for a in v.advice)
    assert v.evidence.best_validation_step == 1000  # the loss's own best, as documented


def test_verdict_overfitting_with_a_stalled_monitor_deploys_the_monitors_best() -> None:
    # BLEU (higher is better) peaks at step 2000 and falls for 4 evaluations: both
    # the loss and the monitor overfit; the checkpoint to deploy is BLEU's best.
    rows = _wer_rows([0.20, 0.25, 0.28, 0.30, 0.29, 0.28, 0.27, 0.26], name="bleu")
    v = verdict_from_series(
        _hw_train(),
        _s("validation", HW_EVALS, HW_VAL),
        rows,
        VerdictConfig(monitor="validation/bleu", mode="max"),
    )
    assert (v.state, v.severity) == ("overfitting", "severe")
    assert "validation/bleu has not improved since step 2000" in v.summary
    assert v.advice[0].action == "stop_earlier"
    assert v.advice[0].text == (
        "Stop earlier: deploy the checkpoint at the best validation/bleu (step 2000)."
    )


def test_verdict_mode_follows_the_monitors_name_when_not_given() -> None:
    # BLEU without mode: higher is better (its best is 0.30 at step 2000, not 0.20 at
    # step 500); WER without mode: lower is better.
    bleu = _wer_rows([0.20, 0.25, 0.28, 0.30, 0.29, 0.28, 0.27, 0.26], name="bleu")
    v = verdict_from_series(
        _hw_train(),
        _s("validation", HW_EVALS, HW_VAL),
        bleu,
        VerdictConfig.from_mapping({"monitor": "validation/bleu"}),
    )
    es = v.early_stopping
    assert (es.mode, es.best_step, es.best_value) == ("max", 2000, 0.30)
    wer = _wer_rows([0.40, 0.30, 0.26, 0.24, 0.23, 0.22, 0.225, 0.224])
    v = verdict_from_series(None, None, wer, VerdictConfig(monitor="wer"))
    assert (v.early_stopping.mode, v.early_stopping.best_step) == ("min", 3000)
    assert verdict_from_series(None, None).early_stopping.mode == "min"  # validation/loss


def test_verdict_monitor_not_logged_is_said() -> None:
    v = verdict_from_series(
        _hw_train(),
        _s("validation", HW_EVALS, HW_VAL),
        (),
        VerdictConfig(monitor="validation/foo"),
    )
    assert v.early_stopping.best_step is None
    assert (
        "Early stopping is off: monitor 'validation/foo' is not logged yet "
        "(series: train/loss, validation/loss; checkpoint metrics: none)."
    ) in v.summary


def test_monitor_problem_lists_what_the_run_logs() -> None:
    analyzer = build_analyzer(
        [_hw_train(), _s("validation", HW_EVALS, HW_VAL)],
        _wer_rows([0.4] * 8),
        VerdictConfig(),
    )
    logged = analyzer.logged()
    assert logged.series == ("train/loss", "validation/loss")
    assert logged.metrics == ("validation/wer",)
    assert verdict.monitor_problem("validation/wer", logged) is None
    assert verdict.monitor_problem("wer", logged) is None  # a bare name is on validation
    assert verdict.monitor_problem("validation/foo", logged) == (
        "monitor 'validation/foo' is not logged by this run; series: train/loss, "
        "validation/loss; checkpoint metrics: validation/wer"
    )
    # Nothing on the test split yet: it may be logged later.
    assert verdict.monitor_problem("test/wer", logged) is None


def test_verdict_config_monitor_split_must_exist() -> None:
    assert VerdictConfig(monitor="valdation/wer").validate() == [
        "monitor 'valdation/wer' names split 'valdation'; the splits are train, "
        "validation, test (e.g. 'validation/wer')"
    ]


def test_verdict_with_the_loss_as_monitor_says_which_metrics_kept_improving() -> None:
    # The same speech fine-tune with no monitor set (the loss): still overfitting as the
    # loss reads, but the summary names WER, which kept improving to step 3000 (2
    # evaluations since, under the patience of 3), and how to follow it instead.
    wer = _wer_rows([0.40, 0.30, 0.26, 0.24, 0.23, 0.22, 0.225, 0.224])
    v = verdict_from_series(_hw_train(), _s("validation", HW_EVALS, HW_VAL), wer)
    assert (v.state, v.severity) == ("overfitting", "severe")
    assert v.summary.endswith(
        "Meanwhile validation/wer (best 0.22 at step 3000) kept improving: if that is what "
        'you deploy on, monitor it (monitor="validation/wer") and the verdict and the best '
        "checkpoint follow it."
    )
    # A metric whose best came before the loss's (BLEU peaks at step 500) is not named.
    bleu = _wer_rows([0.30, 0.29, 0.28, 0.27, 0.26, 0.25, 0.24, 0.23], name="bleu")
    v = verdict_from_series(_hw_train(), _s("validation", HW_EVALS, HW_VAL), bleu)
    assert "Meanwhile" not in v.summary and v.summary.endswith("severe overfitting.")


# ---------------------------------------------------------------- saved checkpoint paths


def test_verdict_names_the_directory_saved_at_the_best_step() -> None:
    val = 0.5 + 0.3 * ((EVALS - 4000) / 6000.0) ** 2
    series = [_s("train", STEPS, _decay(STEPS, floor=0.05)), _s("validation", EVALS, val)]
    paths = {3500: "out/checkpoint-3500", 4000: "out/checkpoint-4000"}
    v = build_analyzer(series, [], VerdictConfig(), paths).verdict()
    assert v.early_stopping.best_step == 4000
    assert v.early_stopping.best_checkpoint_path == "out/checkpoint-4000"
    assert v.advice[0].text == (
        "Stop earlier: deploy the checkpoint at the best validation step (4000), "
        "saved in out/checkpoint-4000."
    )
    # Only the path saved at exactly that step: none there, none named.
    analyzer = build_analyzer(series, [], VerdictConfig(), {3500: "out/checkpoint-3500"})
    v = analyzer.verdict()
    assert v.early_stopping.best_checkpoint_path == ""
    assert v.advice[0].text == (
        "Stop earlier: deploy the checkpoint at the best validation step (4000)."
    )
    analyzer.set_saved_checkpoints(paths)
    assert analyzer.verdict().early_stopping.best_checkpoint_path == "out/checkpoint-4000"


def test_verdict_checkpoint_grades_carry_their_paths() -> None:
    table = [(500, 0.75, 0.72), (1000, 0.85, 0.80), (1500, 0.92, 0.78), (2000, 0.97, 0.74)]
    rows = [CheckpointRow("train", s, {"f1": t}, {}) for s, t, _ in table]
    rows += [CheckpointRow("validation", s, {"f1": v}, {}) for s, _, v in table]
    paths = {1000: "s3://b/ckpt-1000", 2000: "out/ckpt-2000", 2500: "out/ckpt-2500"}
    cfg = VerdictConfig(monitor="validation/f1", mode="max")
    v = build_analyzer([], rows, cfg, paths).verdict()
    assert [(c.step, c.path) for c in v.checkpoints] == [
        (500, ""),
        (1000, "s3://b/ckpt-1000"),
        (1500, ""),
        (2000, "out/ckpt-2000"),
    ]
    assert v.early_stopping.best_checkpoint_path == "s3://b/ckpt-1000"
    assert v.advice[0].text == (
        "Stop earlier: deploy the checkpoint at the best validation/f1 (step 1000), "
        "saved in s3://b/ckpt-1000."
    )


def test_verdict_follow_monitor_advice_names_the_monitors_best_directory() -> None:
    rows = _wer_rows([0.40, 0.30, 0.26, 0.24, 0.23, 0.22, 0.225, 0.224])
    series = [_hw_train(), _s("validation", HW_EVALS, HW_VAL)]
    paths = {1000: "out/checkpoint-1000", 3000: "out/checkpoint-3000"}
    v = build_analyzer(series, rows, VerdictConfig(monitor="validation/wer"), paths).verdict()
    assert v.advice[0].action == "follow_monitor"
    assert "(best so far: step 3000, saved in out/checkpoint-3000)" in v.advice[0].text
    assert "checkpoint-1000" not in " ".join(a.text for a in v.advice)
    assert v.early_stopping.best_checkpoint_path == "out/checkpoint-3000"
