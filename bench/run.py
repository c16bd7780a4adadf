"""`make bench`: evalstream's throughput beside reference implementations, in one run.

Box scoring, on the same synthetic detections (bench_boxes_inprocess.make_detections):

1. through the service: a real `evalstream-server` subprocess on a free port,
   fed by the thin client in batches (wire, validation, matching, encoding);
2. the same computation in-process (BoxAccumulator.update);
3. pycocotools' COCOeval.evaluate() at IoU 0.5, the reference figure.

All three at IoU 0.5 (the service also at the default 0.5/0.75/0.95). Figures
are boxes (predictions + ground truth) per second, best of `--repeat` runs.

    make bench                      # 2000 images
    make bench ARGS="--images 500"
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import header  # noqa: E402
from _server import Server  # noqa: E402
from bench_boxes_inprocess import make_detections, run_inprocess, run_pycocotools  # noqa: E402
from bench_postgres import add_arguments as add_postgres_arguments  # noqa: E402
from bench_postgres import run_postgres_bench  # noqa: E402
from bench_specimen_history import add_arguments as add_history_arguments  # noqa: E402
from bench_specimen_history import run_specimen_history_bench  # noqa: E402
from bench_text_service import add_arguments as add_text_arguments  # noqa: E402
from bench_text_service import run_text_bench  # noqa: E402
from bench_verdict_service import run_verdict_bench  # noqa: E402
from evalstream import Box as ClientBox  # noqa: E402
from evalstream import Client  # noqa: E402
from evalstream import ImageBoxes as ClientImage  # noqa: E402
from evalstream_server.metrics.boxes import BoxOptions  # noqa: E402


def _best(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


def run_runs_bench(args: argparse.Namespace) -> None:
    """The Runs service against the issue's targets (bench_runs_service.py), through the service."""
    import bench_runs_service

    print()
    print(
        "runs, through the service (each on a fresh evalstream-server, synchronous=FULL; "
        f"{os.cpu_count()} cores shared by server and load generators):"
    )
    results = bench_runs_service.run_all(seconds=args.runs_seconds)
    for line in bench_runs_service.format_report(results):
        print(f"  {line}")


def run_alerts_bench(args: argparse.Namespace) -> None:
    """Alerting's cost to ingest, and a NaN to its alert (bench_alerts.py), through the service."""
    import bench_alerts

    print()
    print(
        "alerts, through the service (fresh evalstream-servers and a local webhook receiver; "
        f"{os.cpu_count()} cores shared by all):"
    )
    for line in bench_alerts.format_report(bench_alerts.run_all(seconds=args.runs_seconds)):
        print(f"  {line}")


def run_export_bench(args: argparse.Namespace) -> None:
    """A 100-million-point run exported to CSV by the CLI (bench_export.py), through the service."""
    import bench_export

    print()
    print(
        f"export, through the service (evalstream-server and the CLI as subprocesses; "
        f"{os.cpu_count()} cores shared by both):"
    )
    for wall_times in (True, False):  # run.log records wall times; a raw stream may not
        result = bench_export.run_export_bench(args.export_points, wall_times=wall_times)
        for line in bench_export.format_report(result):
            print(f"  {line}")


def run_curves_bench(args: argparse.Namespace) -> None:
    """GetCurves zoomed into a 10,000,000-point series (bench_curves_read.py)."""
    import bench_curves_read

    print()
    print("curves read, through the service (a fresh evalstream-server):")
    for line in bench_curves_read.format_report(bench_curves_read.run_all()):
        print(f"  {line}")


def run_integrations_bench(args: argparse.Namespace) -> None:
    """The Trainer callback's cost per logging step while the server is busy."""
    import bench_integrations

    print()
    print(
        "Trainer callback on_log, wall time from call to return (a busy evalstream-server "
        "and its load generator as child processes on one core, the trainer on the others):"
    )
    for line in bench_integrations.format_report(bench_integrations.run_all()):
        print(f"  {line}")


def run_web_bench(args: argparse.Namespace) -> None:
    """The browser views on a 10,000,000-point series (bench_web.py), through the HTTP API."""
    import bench_web

    print()
    print(
        "browser views, through the HTTP API (evalstream-server as a subprocess, headless "
        f"chromium; {os.cpu_count()} cores shared by both):"
    )
    result = bench_web.run_all(calls=args.web_calls, opens=args.web_opens)
    for line in bench_web.format_report(result):
        print(f"  {line}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only",
        choices=(
            "boxes",
            "runs",
            "text",
            "verdicts",
            "curves",
            "specimens",
            "export",
            "alerts",
            "integrations",
            "web",
            "postgres",
        ),
        default=None,
        help="one part only (default all)",
    )
    parser.add_argument("--runs-seconds", type=float, default=5.0, help="per runs measurement")
    parser.add_argument("--watchers", type=int, default=100, help="WatchVerdict watchers")
    parser.add_argument("--rounds", type=int, default=5, help="WatchVerdict rounds")
    parser.add_argument(
        "--export-points", type=int, default=100_000_000, help="points of the exported run"
    )
    parser.add_argument("--web-calls", type=int, default=200, help="curve reads, web bench")
    parser.add_argument("--web-opens", type=int, default=20, help="page opens, web bench")
    add_text_arguments(parser)
    add_history_arguments(parser)
    add_postgres_arguments(parser)
    args = parser.parse_args(argv)
    if args.only in (None, "web"):
        import bench_web

        bench_web.chromium()  # without it, say what to install before anything runs
    print(header(), flush=True)
    if args.only == "runs":
        run_runs_bench(args)
        return
    if args.only == "text":
        run_text_bench(args)
        return
    if args.only == "verdicts":
        run_verdict_bench(args)
        return
    if args.only == "export":
        run_export_bench(args)
        return
    if args.only == "curves":
        run_curves_bench(args)
        return
    if args.only == "integrations":
        run_integrations_bench(args)
        return
    if args.only == "specimens":
        run_specimen_history_bench(args)
        return
    if args.only == "alerts":
        run_alerts_bench(args)
        return
    if args.only == "web":
        run_web_bench(args)
        return
    if args.only == "postgres":
        run_postgres_bench(args, required=True)
        return

    images, coco_gt, coco_dt = make_detections(args.images, args.seed)
    n_boxes = sum(len(i.predictions) + len(i.ground_truth) for i in images)
    client_images = [
        ClientImage(
            i.image_id,
            tuple(ClientBox(b.x1, b.y1, b.x2, b.y2, b.label, b.confidence) for b in i.predictions),
            tuple(ClientBox(b.x1, b.y1, b.x2, b.y2, b.label, b.confidence) for b in i.ground_truth),
        )
        for i in images
    ]
    print(
        f"box scoring: {args.images} images, {n_boxes} boxes "
        f"({len(coco_dt)} predictions), best of {args.repeat}"
    )

    rows: list[tuple[str, float]] = []
    rows.append(
        (
            "pycocotools COCOeval.evaluate() @0.5 (reference)",
            _best(args.repeat, lambda: run_pycocotools(coco_gt, coco_dt)),
        )
    )
    rows.append(
        (
            "evalstream in-process @0.5",
            _best(args.repeat, lambda: run_inprocess(images, BoxOptions(iou_thresholds=(0.5,)))),
        )
    )
    rows.append(
        (
            "evalstream in-process @0.5/0.75/0.95",
            _best(args.repeat, lambda: run_inprocess(images, BoxOptions())),
        )
    )

    data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"evalstream-bench-{os.getpid()}"
    server = Server(data_dir, ("--bertscore-model", "none", "--text-workers", "0"))
    try:
        with Client(server.target) as client:

            def through_service(**options: Any) -> Callable[[], float]:
                def run() -> float:
                    start = time.perf_counter()
                    client.score_boxes(
                        client_images, batch_size=args.batch_size, omit_images=True, **options
                    )
                    return time.perf_counter() - start

                return run

            client.score_boxes(client_images[:10])  # warm the connection
            rows.append(
                (
                    f"evalstream service @0.5 (batches of {args.batch_size})",
                    _best(args.repeat, through_service(iou_thresholds=[0.5])),
                )
            )
            rows.append(
                ("evalstream service @0.5/0.75/0.95", _best(args.repeat, through_service()))
            )
    finally:
        server.close()

    reference = rows[0][1]
    width = max(len(name) for name, _ in rows)
    print(f"{'':{width}}  {'seconds':>9}  {'boxes/s':>11}  {'vs pycocotools':>14}")
    for name, seconds in rows:
        rate, ratio = n_boxes / seconds, reference / seconds
        print(f"{name:{width}}  {seconds:9.3f}  {rate:11,.0f}  {ratio:13.2f}x")
    if args.only is None:
        run_runs_bench(args)
        run_verdict_bench(args)
        run_curves_bench(args)
        run_specimen_history_bench(args)
        run_text_bench(args)
        run_export_bench(args)
        run_alerts_bench(args)
        run_web_bench(args)
        run_postgres_bench(args, required=False)


if __name__ == "__main__":
    main()
