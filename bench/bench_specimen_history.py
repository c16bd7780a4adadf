"""One specimen across steps and runs through the service: GetSpecimenHistory and CompareSpecimens.

Target (issue "Read everything back"): GetSpecimenHistory of one specimen over 100
evaluation steps at most 20 ms p99. A run of ``--steps`` (100) evaluation steps x
``--specimens`` (1,000) grounding specimens (two boxes each, the 12 per-specimen
scores of the default thresholds, flags) is written with the store into the data
directory, then a real `evalstream-server` subprocess serves it and the thin client
reads random specimens' histories, one call at a time. A second such run lets
CompareSpecimens of 2 runs at each run's best checkpoint (``best=True``: the
verdict's monitor, here ``validation/bbox_f1@0.5``) be timed the same way.

    python bench/bench_specimen_history.py [--steps 100] [--specimens 1000] [--calls 300]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import Server  # noqa: E402
from evalstream import Client  # noqa: E402
from evalstream_server.store import NewRun, SpecimenRecord, SQLiteStore  # noqa: E402

TARGET_P99_MS = 20.0
MONITOR = "validation/bbox_f1@0.5"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _specimen(i: int, step: int, rng: random.Random) -> SpecimenRecord:
    shift = rng.uniform(0, 20) * (1 - step / 10_000)
    scores = {
        f"{name}@{t}": rng.random()
        for name in ("precision", "recall", "f1", "mean_iou")
        for t in (0.5, 0.75, 0.95)
    }
    return SpecimenRecord(
        f"img-{i:05d}",
        predicted_boxes=((10 + shift, 10, 60 + shift, 80, "cup", rng.random()),),
        ground_truth_boxes=(
            (10.0, 10.0, 60.0, 80.0, "cup", 0.0),
            (100.0, 5.0, 140.0, 50.0, "mug", 0.0),
        ),
        scores=scores,
        flags=("missed_detection",) if shift > 10 else (),
    )


def populate(data_dir: Path, *, steps: int, specimens: int, runs: int = 2) -> list[str]:
    """Writes `runs` runs of `steps` x `specimens` specimens (and an F1 per step); their ids."""
    rng = random.Random(0)
    ids = []
    with SQLiteStore(data_dir / "evalstream.db", synchronous="NORMAL") as store:
        for r in range(runs):
            run = store.create_run(
                NewRun(project="bench", name=f"specimens-{r}", verdict_config={"monitor": MONITOR})
            )
            for k in range(steps):
                step = (k + 1) * 100
                records = [_specimen(i, step, rng) for i in range(specimens)]
                store.record_specimens(run.id, "validation", step, records)
                # F1 rises, then falls: each run's best checkpoint is inside the run.
                f1 = 0.8 - abs(k - steps * (0.4 + 0.2 * r)) / (2 * steps)
                store.log_checkpoint(run.id, "validation", step, {"bbox_f1@0.5": f1})
            ids.append(run.id)
    return ids


def _timed(calls: int, call: object) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return times


def run_specimen_history_bench(args: argparse.Namespace) -> dict[str, float]:
    """Prints the figures (used by bench/run.py) and returns them."""
    steps = getattr(args, "history_steps", 100)
    specimens = getattr(args, "history_specimens", 1_000)
    calls = getattr(args, "history_calls", 300)
    with tempfile.TemporaryDirectory(prefix="evalstream-bench-specimens-") as tmp:
        start = time.perf_counter()
        ids = populate(Path(tmp), steps=steps, specimens=specimens)
        written = time.perf_counter() - start
        server = Server(Path(tmp), ("--bertscore-model", "none", "--text-workers", "0"))
        try:
            with Client(server.target) as client:
                rng = random.Random(1)

                def history() -> None:
                    sid = f"img-{rng.randrange(specimens):05d}"
                    got = client.specimen_history(ids[0], sid)
                    if len(got) != steps:
                        raise RuntimeError(f"{sid}: {len(got)} steps, expected {steps}")

                def compare() -> None:
                    sid = f"img-{rng.randrange(specimens):05d}"
                    got = client.compare_specimens(ids, sid, best=True)
                    if not all(r.present for r in got):
                        raise RuntimeError(f"{sid}: {[r.note for r in got]}")

                _timed(10, history)  # warm the connection and the page cache
                h = _timed(calls, history)
                _timed(5, compare)  # builds each run's verdict analyzer once
                c = _timed(calls, compare)
                best = [r.step for r in client.compare_specimens(ids, "img-00000", best=True)]
        finally:
            server.close()
    figures = {
        "p50_ms": _pct(h, 50) * 1e3,
        "p99_ms": _pct(h, 99) * 1e3,
        "compare_p50_ms": _pct(c, 50) * 1e3,
        "compare_p99_ms": _pct(c, 99) * 1e3,
    }
    print(
        f"\none specimen across steps and runs (through the service; 2 runs of {steps} steps x "
        f"{specimens:,} specimens, {2 * steps * specimens:,} specimens written in "
        f"{written:.1f} s; {calls} calls each, random specimens)"
    )
    ratio = figures["p99_ms"] / TARGET_P99_MS
    print(
        f"  GetSpecimenHistory of one specimen over {steps} steps: p50 {figures['p50_ms']:.2f} ms, "
        f"p99 {figures['p99_ms']:.2f} ms (target p99 <= {TARGET_P99_MS:g} ms: "
        f"{ratio:.2f}x of it, {'met' if ratio <= 1 else 'MISSED'})"
    )
    print(
        f"  CompareSpecimens of 2 runs, best=True (best steps {best} by {MONITOR}): "
        f"p50 {figures['compare_p50_ms']:.2f} ms, p99 {figures['compare_p99_ms']:.2f} ms"
    )
    if not all(math.isfinite(v) for v in figures.values()):
        raise RuntimeError(f"bad figures {figures}")
    return figures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--history-steps", type=int, default=100, help="evaluation steps per run")
    parser.add_argument("--history-specimens", type=int, default=1_000, help="specimens per step")
    parser.add_argument("--history-calls", type=int, default=300, help="calls per figure")


if __name__ == "__main__":
    from _machine import header

    print(header(), flush=True)
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    run_specimen_history_bench(parser.parse_args())
