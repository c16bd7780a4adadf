"""A generated corpus of loss curves with known states, to measure the verdict's accuracy.

Shapes follow what training logs look like (e.g. Hugging Face ``Trainer``'s
``log_history``) and the product's reading of them, one family per verdict
state; healthy runs decay exponentially or by a power law (Kaplan et al. 2020,
"Scaling Laws for Neural Language Models") under a learning-rate schedule, with
noise. Loss scales differ: starting levels are log-uniform in [0.3, 8].
Everything is seeded: ``make_curve(state, seed)`` is deterministic. Run as a
module to print the accuracy per state.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from evalstream_server.analysis.verdict import (
    STATES,
    Verdict,
    VerdictConfig,
    verdict_from_series,
)
from evalstream_server.store._types import SeriesData

__all__ = [
    "CORPUS_STATES",
    "CorpusCurve",
    "accuracy",
    "format_accuracy",
    "generate_corpus",
    "make_curve",
    "sparse_evaluations",
]

FloatArray = npt.NDArray[np.float64]

#: Every verdict state has curves in the corpus.
CORPUS_STATES: tuple[str, ...] = STATES


@dataclass(frozen=True, slots=True, eq=False)
class CorpusCurve:
    """One generated run with its true state.

    Attributes:
        state: The state the curve was generated as.
        seed: Seed it was generated from.
        description: The generator's parameters, for failure reports.
        train: Training loss series.
        validation: Validation loss series, or None.
    """

    state: str
    seed: int
    description: str
    train: SeriesData
    validation: SeriesData | None


def _series(split: str, steps: np.ndarray, values: FloatArray) -> SeriesData:
    return SeriesData(split, "loss", steps.astype(np.int64), values, None, len(steps))


def _schedule(rng: np.random.Generator, t: FloatArray, total: float) -> tuple[FloatArray, str]:
    """Learning-rate multiplier over steps ``t`` and its name."""
    kind = str(rng.choice(["constant", "cosine", "step"]))
    warm = total * rng.uniform(0.01, 0.05) if rng.random() < 0.6 else 0.0
    if kind == "constant":
        lr = np.ones_like(t)
    elif kind == "cosine":
        lr = 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * t / total))
    else:
        lr = np.where(t < 0.5 * total, 1.0, np.where(t < 0.75 * total, 0.1, 0.01))
    if warm:
        lr = lr * np.clip(t / warm, 0.02, 1.0)
    return lr, f"{kind}{'+warmup' if warm else ''}"


def _healthy_base(
    rng: np.random.Generator,
    t: FloatArray,
    total: float,
    start: float,
    floor_frac: tuple[float, float],
) -> tuple[FloatArray, FloatArray, str]:
    """Clean training loss as a function of the cumulative learning rate, and the lr."""
    lr, sched = _schedule(rng, t, total)
    # Cumulative learning rate in units of "steps at full lr" (trapezoid from step 0).
    dt = np.diff(np.concatenate([[0.0], t]))
    cum = np.cumsum(lr * dt)
    horizon = float(cum[-1])
    floor = start * rng.uniform(*floor_frac)
    if rng.random() < 0.5:
        tau = horizon * rng.uniform(0.03, 0.3)
        shape = np.exp(-cum / tau)
        name = f"exp(tau={tau / horizon:.2f})"
    else:
        t0 = horizon * rng.uniform(0.005, 0.04)
        alpha = rng.uniform(0.7, 1.5)
        shape = (1 + cum / t0) ** -alpha
        name = f"power(alpha={alpha:.2f})"
    # An lr-proportional excess: a step-decay drop lowers the loss visibly.
    excess = 0.08 * floor * lr
    return floor + (start - floor) * shape + excess, lr, f"{name},{sched}"


def _grid(rng: np.random.Generator) -> tuple[float, FloatArray, FloatArray]:
    total = float(rng.choice([2000, 5000, 20000, 100000]))
    n_train = int(rng.choice([150, 400, 1500, 5000, 20000]))
    n_train = min(n_train, int(total))
    n_eval = int(rng.integers(10, 61))
    t = np.linspace(total / n_train, total, n_train).round()
    te = np.linspace(total / n_eval, total, n_eval).round()
    return total, t, te


def _noisy(rng: np.random.Generator, clean: FloatArray, sigma: float) -> FloatArray:
    return clean * (1.0 + sigma * rng.standard_normal(len(clean)))


def make_curve(state: str, seed: int) -> CorpusCurve:
    """Generates one run of the given state, deterministically from ``seed``.

    Raises:
        ValueError: ``state`` is not one of :data:`CORPUS_STATES`.

    Example:
        >>> c = make_curve("overfitting", 3)
        >>> c.state, c.train.split, c.validation is not None
        ('overfitting', 'train', True)
    """
    if state not in CORPUS_STATES:
        raise ValueError(f"unknown state {state!r}; valid states: {', '.join(CORPUS_STATES)}")
    rng = np.random.default_rng([CORPUS_STATES.index(state), seed])
    total, t, te = _grid(rng)
    start = float(np.exp(rng.uniform(np.log(0.3), np.log(8.0))))
    sigma = float(rng.uniform(0.005, 0.08))
    sigma_v = float(rng.uniform(0.002, 0.03))
    desc = f"n={len(t)},evals={len(te)},start={start:.3g},noise={sigma:.3f}"
    val: FloatArray | None = None

    if state == "insufficient_data":
        n = int(rng.integers(2, 9))
        t = t[:n]
        clean = start * np.exp(-np.arange(n) / 20.0)
        train = _noisy(rng, clean, sigma)
        te = te[:0]
    elif state in ("healthy", "unstable", "overfitting", "diverged"):
        floor = (0.02, 0.2) if state == "overfitting" else (0.05, 0.35)
        clean, _, name = _healthy_base(rng, t, total, start, floor)
        desc += f",{name}"
        gap = rng.uniform(0.0, 0.15)
        clean_v = np.interp(te, t, clean) * (1 + gap)
        train = _noisy(rng, clean, sigma)
        if state == "overfitting":
            t_o = total * rng.uniform(0.3, 0.6)
            amp = rng.uniform(0.15, 0.8)
            p = rng.uniform(1.0, 2.0)
            ramp = np.clip((te - t_o) / (total - t_o), 0, None) ** p
            # Scale the ramp so that the curve really ends `amp` above its minimum
            # (the still-decreasing base would otherwise hide part of the rise).
            coef = amp * float(np.interp(t_o, te, clean_v))
            for _ in range(4):
                shaped = clean_v + coef * ramp
                got = (shaped[-1] - shaped.min()) / shaped.min()
                coef *= amp / max(got, 1e-3)
            clean_v = clean_v + coef * ramp
            desc += f",turn={t_o / total:.2f},rise={amp:.2f}"
        elif state == "unstable":
            k = int(rng.integers(1, 7))
            lo = max(int(0.08 * len(t)), 1)
            where = rng.choice(np.arange(lo, len(t) - 3), size=k, replace=False)
            for i in where:
                width = int(rng.integers(1, 4))
                train[i : i + width] *= rng.uniform(1.8, 5.0)
            desc += f",spikes={k}"
        elif state == "diverged":
            at = int(len(t) * rng.uniform(0.3, 0.9))
            if rng.random() < 0.5:
                train[at:] = np.nan if rng.random() < 0.7 else np.inf
                clean_v = np.where(te >= t[at], np.nan, clean_v)
                desc += f",nan_from={t[at]:.0f}"
            else:
                factor = rng.uniform(3.0, 50.0)
                grow = np.ones_like(t)
                span = len(t) - at
                base_end = clean[-1]
                rate = np.log(factor * start / base_end) / span
                grow[at:] = np.exp(rate * np.arange(1, span + 1))
                train = train * grow
                clean_v = clean_v * np.interp(te, t, grow)
                desc += f",explode_from={t[at]:.0f},x{factor:.0f}"
        val = _noisy(rng, clean_v, sigma_v)
    elif state == "underfitting":
        d = rng.uniform(0.10, 0.30)
        tau = total * rng.uniform(0.03, 0.2)
        clean = start * (1 - d * (1 - np.exp(-t / tau)))
        train = _noisy(rng, clean, sigma)
        val = _noisy(rng, np.interp(te, t, clean) * (1 + rng.uniform(0.0, 0.04)), sigma_v)
        desc += f",decrease={d:.2f},tau={tau / total:.2f}"
    else:  # not_learning
        drift = rng.uniform(-0.02, 0.02)
        clean = start * (1 + drift * t / total)
        train = _noisy(rng, clean, sigma)
        val = _noisy(rng, start * (1.05 + drift * te / total), sigma_v)
        desc += f",drift={drift:+.3f}"
    validation = _series("validation", te, val) if val is not None and len(te) else None
    return CorpusCurve(state, seed, desc, _series("train", t, train), validation)


def generate_corpus(
    n_per_state: int = 50, *, seed: int = 0, states: Sequence[str] = CORPUS_STATES
) -> list[CorpusCurve]:
    """``n_per_state`` curves of each state, seeds ``seed .. seed + n_per_state - 1``.

    Example:
        >>> len(generate_corpus(2, states=("healthy", "diverged")))
        4
    """
    return [make_curve(s, seed + i) for s in states for i in range(n_per_state)]


def sparse_evaluations(curve: CorpusCurve, n: int) -> CorpusCurve:
    """The same run with at most ``n`` validation evaluations, evenly spaced, the last kept.

    Real runs often evaluate rarely (every epoch, or every few thousand steps);
    this thins the corpus's 10-60 evaluations to measure the verdict there.

    Example:
        >>> full = make_curve("overfitting", 3)
        >>> c = sparse_evaluations(full, 8)
        >>> len(c.validation.steps), bool(c.validation.steps[-1] == full.validation.steps[-1])
        (8, True)
    """
    v = curve.validation
    if v is None or len(v.steps) <= n:
        return curve
    keep = np.unique(np.linspace(len(v.steps) - 1, 0, n).round().astype(int))
    thinned = replace(v, steps=v.steps[keep], values=v.values[keep], total_points=len(keep))
    return replace(curve, validation=thinned)


def accuracy(
    curves: Sequence[CorpusCurve], config: VerdictConfig | None = None
) -> tuple[dict[str, dict[str, int]], list[tuple[CorpusCurve, Verdict]]]:
    """Confusion counts (true state -> predicted state -> count) and the misses.

    Example:
        >>> confusion, misses = accuracy(generate_corpus(1, states=("not_learning",)))
        >>> sum(confusion["not_learning"].values())
        1
    """
    confusion: dict[str, dict[str, int]] = {}
    misses: list[tuple[CorpusCurve, Verdict]] = []
    for c in curves:
        v = verdict_from_series(c.train, c.validation, (), config)
        row = confusion.setdefault(c.state, {})
        row[v.state] = row.get(v.state, 0) + 1
        if v.state != c.state:
            misses.append((c, v))
    return confusion, misses


def format_accuracy(confusion: dict[str, dict[str, int]]) -> str:
    """A table of per-state accuracy and the wrong answers.

    Example:
        >>> print(format_accuracy({"healthy": {"healthy": 9, "unstable": 1}}))
        state              correct  total  accuracy  wrong answers
        healthy                  9     10     90.0%  unstable:1
    """
    lines = [f"{'state':<18} {'correct':>7} {'total':>6} {'accuracy':>9}  wrong answers"]
    for state, row in confusion.items():
        total = sum(row.values())
        ok = row.get(state, 0)
        wrong = ", ".join(f"{k}:{n}" for k, n in sorted(row.items()) if k != state)
        lines.append(f"{state:<18} {ok:>7} {total:>6} {ok / total:>9.1%}  {wrong}".rstrip())
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Prints the accuracy per state and the first 40 misses."""
    parser = argparse.ArgumentParser(description="Verdict accuracy on the generated corpus.")
    parser.add_argument("--per-state", type=int, default=100, help="curves per state (100)")
    parser.add_argument(
        "--evaluations",
        type=int,
        default=0,
        help="thin each run to at most this many validation evaluations (0: as generated)",
    )
    args = parser.parse_args(argv)
    curves = generate_corpus(args.per_state)
    if args.evaluations:
        curves = [sparse_evaluations(c, args.evaluations) for c in curves]
    conf, missed = accuracy(curves)
    print(format_accuracy(conf))
    for curve, verdict in missed[:40]:
        print(
            f"{curve.state}#{curve.seed} -> {verdict.state}: "
            f"{curve.description} | {verdict.summary}"
        )


if __name__ == "__main__":
    main()
