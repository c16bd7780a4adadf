"""The browser views on a 10,000,000-point series: the chart's read, and the page open to drawn.

Target (issue 17, "See it"): a series of 10 million points opens in under a second,
the server downsampling it to the chart's width. A run with a 10,000,000-point
training loss is logged through the client (``Run.log_many`` of numpy arrays, its
fast path) into a real `evalstream-server` child process with ``--http-port``; then:

- (a) ``GET /api/v1/runs/{run}/curves?max_points=1400`` (what the Metrics view asks
  for: about the chart's width in pixels), on one keep-alive connection, the JSON
  decoded; beside it, as the reference measured in the same run, the same
  downsampled read through the gRPC client (``run.curves(max_points=1400)``),
  and the ratio of the two;
- (b) headless Chromium (the system's, through Playwright, as tests/browser does)
  opens ``/runs/{run}`` in a fresh browser context each time (no cache, a first
  visit) and the time is taken from navigation start to the Metrics view's
  ``performance.mark("evalstream:charts-drawn")``, set once the loss chart is
  first drawn (``div.chart[data-chart="loss"]`` then has ``data-drawn="1"``). The
  run's first open is reported on its own: the server then also computes the run's
  first verdict (it reads the whole run, seconds for 10 million points), which the
  page asks for once the chart is drawn; the opens after it are the percentiles.

Without chromium (or Playwright) the bench stops at once and says what to install.

    python bench/run.py --only web [--web-calls 200] [--web-opens 20]
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import Server  # noqa: E402
from evalstream import Client  # noqa: E402

TARGET_S = 1.0
POINTS = 10_000_000
MAX_POINTS = 1_400
#: tests/browser/conftest.py's flags: headless, no sandbox (containers), no GPU, quiet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
DRAWN_MARK = "evalstream:charts-drawn"
DRAWN_CHART = 'div.chart[data-chart="loss"][data-drawn="1"]'
#: The verdict banner, once the verdict reached the page.
VERDICT_SHOWN = "#verdict .banner[data-verdict]"


class MissingBrowser(SystemExit):
    """Chromium or Playwright is not installed: the page cannot be measured."""


def chromium() -> str:
    """The system's chromium (``EVALSTREAM_CHROMIUM`` overrides); MissingBrowser otherwise."""
    path = os.environ.get("EVALSTREAM_CHROMIUM") or shutil.which("chromium")
    if not path:
        raise MissingBrowser(
            "bench web: no chromium on PATH; install it (apt-get install -y chromium) or "
            "set EVALSTREAM_CHROMIUM to its path"
        )
    try:
        import playwright.sync_api  # noqa: F401, PLC0415 - only this bench needs it
    except ImportError as exc:
        raise MissingBrowser(
            "bench web: Playwright is not installed (pip install playwright; its "
            "browser download is not needed: the system's chromium is used)"
        ) from exc
    return path


def write_run(target: str, points: int) -> str:
    """A run whose train/loss series has `points` points, logged by the client; its id."""
    rng = np.random.default_rng(0)
    with Client(target) as client:
        run = client.create_run("bench", f"web-{time.time_ns()}")
        for start in range(0, points, 1_000_000):
            steps = np.arange(start, min(start + 1_000_000, points), dtype=np.int64)
            values = 2.5 * np.exp(-steps / (points / 6)) + 0.2 + rng.normal(0, 0.01, len(steps))
            run.log_many(steps, values)
        run.flush(timeout=900)
    return run.id


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {
        "n": len(seconds),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def bench_reads(
    target: str, http_url: str, run_id: str, *, points: int, calls: int
) -> dict[str, Any]:
    """p50/p99 of the downsampled read over HTTP (JSON decoded) and over gRPC."""
    api = urllib.parse.urlsplit(http_url)
    path = f"/api/v1/runs/{run_id}/curves?max_points={MAX_POINTS}"
    connection = http.client.HTTPConnection(api.hostname, api.port, timeout=60)
    http_times, grpc_times = [], []
    try:
        with Client(target) as client:
            run = client.get_run(run_id)
            for i in range(calls + 5):  # the first calls warm connections and caches
                t0 = time.perf_counter()
                connection.request("GET", path)
                reply = connection.getresponse()
                body = json.loads(reply.read())
                elapsed = time.perf_counter() - t0
                if reply.status != 200:
                    raise RuntimeError(f"GET {path}: {reply.status} {body}")
                (series,) = body["series"]
                if series["total_points"] != points or len(series["steps"]) > MAX_POINTS:
                    raise RuntimeError(f"GET {path}: {series['total_points']} points")
                t1 = time.perf_counter()
                (s,) = run.curves(max_points=MAX_POINTS)
                grpc_elapsed = time.perf_counter() - t1
                if len(s.steps) != len(series["steps"]):
                    raise RuntimeError("HTTP and gRPC downsampled differently")
                if i >= 5:
                    http_times.append(elapsed)
                    grpc_times.append(grpc_elapsed)
    finally:
        connection.close()
    return {"http": _percentiles(http_times), "grpc": _percentiles(grpc_times)}


def bench_page(
    base: str, run_id: str, *, opens: int, executable: str
) -> tuple[float, float, dict[str, float]]:
    """Navigation start to the charts-drawn mark: the first open of the run (cold: the
    run's first verdict, which reads the whole run, is computed on the server while the
    chart loads), the seconds until that verdict reached the page, and `opens` opens
    after it (warm), a fresh context each."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    url = f"{base}/runs/{run_id}"
    times: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            first = verdict_s = 0.0
            for i in range(opens + 1):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                errors: list[str] = []
                page = context.new_page()
                page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                page.on(
                    "console",
                    lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None,
                )
                try:
                    page.goto(url, wait_until="commit")
                    # A selector, not wait_for_function: the page's CSP forbids eval.
                    page.wait_for_selector(DRAWN_CHART, state="attached", timeout=30_000)
                    drawn_ms = _mark(page, url)
                    if i == 0:  # the verdict banner: the server is idle again after it
                        page.wait_for_selector(VERDICT_SHOWN, state="attached", timeout=60_000)
                        verdict_s = page.evaluate("performance.now()") / 1e3
                finally:
                    context.close()
                if errors:
                    raise RuntimeError(f"{url}: the page logged errors: {errors[:3]}")
                if i == 0:
                    first = drawn_ms / 1e3
                else:
                    times.append(drawn_ms / 1e3)
        finally:
            browser.close()
    return first, verdict_s, _percentiles(times)


def _mark(page: Any, url: str) -> float:
    """The charts-drawn mark's time since navigation start, in ms (waiting briefly for it)."""
    deadline = time.monotonic() + 10
    while True:
        found = page.evaluate(f"performance.getEntriesByName({DRAWN_MARK!r}).map(e => e.startTime)")
        if found:
            return float(found[0])
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: the chart is drawn but {DRAWN_MARK!r} was never marked")
        time.sleep(0.01)


def run_all(*, points: int = POINTS, calls: int = 200, opens: int = 20) -> dict[str, Any]:
    executable = chromium()  # before minutes of logging: fail at once without it
    with tempfile.TemporaryDirectory(prefix="evalstream-bench-web-") as d:
        flags = ("--bertscore-model", "none", "--text-workers", "0", "--http-port", "0")
        with Server(Path(d), flags) as server:
            if not server.http_url:
                raise RuntimeError("evalstream-server logged no HTTP URL")
            base = server.http_url.removesuffix("/api/v1/")
            t0 = time.perf_counter()
            run_id = write_run(server.target, points)
            written = time.perf_counter() - t0
            result = bench_reads(server.target, server.http_url, run_id, points=points, calls=calls)
            first, verdict_s, warm = bench_page(base, run_id, opens=opens, executable=executable)
            result["page"] = warm
            result["first_open_s"], result["first_verdict_s"] = first, verdict_s
    result["points"] = points
    result["write_s"] = written
    return result


def format_report(r: dict[str, Any]) -> list[str]:
    http, grpc, page = r["http"], r["grpc"], r["page"]
    page_ratio = page["p99_ms"] / (TARGET_S * 1e3)
    return [
        f"(a) GET /api/v1/runs/{{run}}/curves?max_points={MAX_POINTS} of a {r['points']:,}-point "
        f"series, JSON decoded, {http['n']} calls: p50 {http['p50_ms']:.1f} ms, "
        f"p99 {http['p99_ms']:.1f} ms",
        f"    reference, the same read through the gRPC client (run.curves): "
        f"p50 {grpc['p50_ms']:.1f} ms, p99 {grpc['p99_ms']:.1f} ms; HTTP/gRPC "
        f"p50 {http['p50_ms'] / grpc['p50_ms']:.2f}x, p99 {http['p99_ms'] / grpc['p99_ms']:.2f}x",
        f"(b) /runs/{{run}} in headless Chromium, navigation start to the loss chart drawn, "
        f"{page['n']} opens (fresh context each): p50 {page['p50_ms']:.0f} ms, "
        f"p99 {page['p99_ms']:.0f} ms; target < {TARGET_S * 1e3:.0f} ms; ratio "
        f"{page_ratio:.2f} ({'met' if page_ratio < 1 else 'not met'})",
        f"    the run's first open (its first verdict computed meanwhile): chart drawn in "
        f"{r['first_open_s'] * 1e3:.0f} ms "
        f"({'met' if r['first_open_s'] < TARGET_S else 'not met'}), "
        f"verdict shown at {r['first_verdict_s']:.1f} s",
        f"    series logged through the client in {r['write_s']:.1f} s",
    ]


def main(argv: list[str] | None = None) -> None:
    import argparse  # noqa: PLC0415

    from _machine import header  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=POINTS)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--opens", type=int, default=20)
    args = parser.parse_args(argv)
    print(header(), flush=True)
    for line in format_report(run_all(points=args.points, calls=args.calls, opens=args.opens)):
        print(line)


if __name__ == "__main__":
    main()
