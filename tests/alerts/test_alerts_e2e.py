"""Alerts through a real server: a run that diverges POSTs once to each webhook."""

from __future__ import annotations

import asyncio
import math
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from evalstream import AsyncClient, Client, errors
from evalstream_server.app import Deps, build_server
from evalstream_server.config import Config

from ..conftest import start_server

FAST = {
    "bertscore_model": "none",
    "text_workers": 0,
    "alert_debounce_seconds": 0.05,
    "alert_backoff_seconds": 0.05,
    "alert_timeout_seconds": 2.0,
}


@contextmanager
def server(data_dir: Path, **overrides: Any) -> Iterator[tuple[str, Deps, str]]:
    """A server with alert settings; yields (target, deps, metrics URL)."""
    config = Config(
        port=0, metrics_port=-1, http_port=-1, data_dir=data_dir, **{**FAST, **overrides}
    )
    deps = Deps.open(config)
    http, metrics_port = deps.metrics.serve_http("127.0.0.1", 0)
    running, port = build_server(config, deps)
    try:
        yield f"127.0.0.1:{port}", deps, f"http://127.0.0.1:{metrics_port}/metrics"
    finally:
        running.stop(0).wait()
        deps.close()
        http.shutdown()


def _diverge(client: Client, name: str, **kw: Any) -> str:
    run = client.create_run("vision", name, **kw)
    run.log_many(range(50), [2.0 - 0.01 * i for i in range(50)])
    run.log_many(range(50, 53), [math.nan, math.nan, math.nan])
    run.flush(10)
    return run.id


def test_diverged_run_posts_one_alert_to_each_webhook(receiver, tmp_path: Path) -> None:
    with server(
        tmp_path,
        alert_webhooks=(receiver.url("/server"),),
        alert_slack_webhooks=(receiver.url("/slack"),),
        alert_run_webhook_hosts=("127.0.0.1",),
    ) as (target, _deps, _metrics):
        with Client(target) as client:
            before = time.time()
            run_id = _diverge(
                client, "nan", alert_webhooks=[{"url": receiver.url("/run"), "format": "json"}]
            )
            posts = receiver.wait_for(3)
            # More NaN points while it stays diverged: no second alert.
            run = client.get_run(run_id)
            run.log_many(range(53, 60), [math.inf] * 7)
            run.flush(10)
            time.sleep(0.5)
    assert sorted(p.path for p in receiver.posts) == ["/run", "/server", "/slack"]
    by_path = {p.path: p.body for p in posts}
    alert = by_path["/server"]
    assert by_path["/run"] == alert
    assert (alert["run_id"], alert["project"], alert["name"]) == (run_id, "vision", "nan")
    assert alert["state"] == "diverged"
    assert alert["previous_state"] in ("unknown", "healthy", "insufficient_data")
    assert alert["as_of_step"] >= 50
    # The first NaN is at step 50 (docs/reference/verdict-rules.md: diverged).
    assert alert["summary"] == "The loss became NaN or infinite at step 50."
    assert all({"action", "text"} == set(a) for a in alert["advice"])
    assert "check_data_nans" in [a["action"] for a in alert["advice"]]
    assert before - 1 <= alert["server_time"] <= time.time() + 1
    slack = by_path["/slack"]
    assert set(slack) == {"text", "blocks"}
    assert slack["text"].startswith(f"evalstream: run vision/nan ({run_id}) is diverged")


def test_alert_retried_after_5xx_then_delivered(receiver, tmp_path: Path) -> None:
    receiver.statuses = [500, 500]
    with server(tmp_path, alert_webhooks=(receiver.url("/hook"),)) as (target, deps, _m):
        with Client(target) as client:
            _diverge(client, "retry")
            assert len(receiver.wait_for(3)) == 3
        registry = deps.metrics.registry
        deadline = time.monotonic() + 5
        while not registry.get_sample_value("evalstream_alerts_sent_total", {"format": "json"}):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert registry.get_sample_value("evalstream_alerts_retried_total") == 2


def test_dead_receiver_counts_failure_in_metrics(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    with server(tmp_path, alert_webhooks=(dead,), alert_retries=1) as (target, _deps, metrics):
        with Client(target) as client:
            _diverge(client, "dead")
        deadline = time.monotonic() + 10
        line = 'evalstream_alerts_failed_total{reason="network"} 1.0'
        while line not in (text := urllib.request.urlopen(metrics).read().decode()):
            assert time.monotonic() < deadline, text[-2000:]
            time.sleep(0.05)
        assert "evalstream_alerts_retried_total 1.0" in text
        assert "evalstream_alerts_dropped_total 0.0" in text


def test_run_webhooks_refused_unless_the_server_allows_the_host(tmp_path: Path) -> None:
    with server(tmp_path, alert_run_webhook_hosts=("hooks.example.com",)) as (target, _d, _m):
        with Client(target) as client:
            with pytest.raises(errors.InvalidArgument) as info:
                client.create_run(
                    "p",
                    "a",
                    alert_webhooks=["https://hooks.example.com/x", "http://169.254.169.254/"],
                )
            [v] = info.value.violations
            assert v.field == "alert_webhooks[1].url"
            assert "--alert-run-webhook-hosts" in v.description
            with pytest.raises(errors.InvalidArgument) as info:
                client.create_run("p", "b", alert_webhooks=["ftp://hooks.example.com/x"])
            assert info.value.violations[0].field == "alert_webhooks[0].url"
            assert "http or https" in info.value.violations[0].description
            with pytest.raises(errors.InvalidArgument) as info:
                client.create_run("p", "c", alert_webhooks=["https://hooks.example.com/"] * 9)
            assert info.value.violations[0].field == "alert_webhooks"
            ok = client.create_run("p", "d", alert_webhooks=["https://hooks.example.com/x"])
            assert ok.id


def test_run_webhooks_refused_by_default(tmp_path: Path) -> None:
    with server(tmp_path) as (target, _d, _m):
        with Client(target) as client:
            with pytest.raises(errors.InvalidArgument) as info:
                client.create_run("p", "a", alert_webhooks=["https://hooks.example.com/x"])
            assert info.value.violations[0].field == "alert_webhooks[0].url"
            assert "accepts no per-run webhooks" in info.value.violations[0].description

        async def create() -> None:
            async with AsyncClient(target) as client:
                await client.create_run(
                    "p", "b", alert_webhooks=[{"url": "https://h.example/", "format": "slack"}]
                )

        with pytest.raises(errors.InvalidArgument) as info:
            asyncio.run(create())
        assert info.value.violations[0].field == "alert_webhooks[0].url"


def test_async_client_sends_run_webhooks(receiver, tmp_path: Path) -> None:
    async def diverge(target: str) -> str:
        async with AsyncClient(target) as client:
            run = await client.create_run(
                "p", "async", alert_webhooks=[{"url": receiver.url("/run"), "format": "slack"}]
            )
            run.log_many(range(50), [2.0 - 0.01 * i for i in range(50)])
            run.log_many(range(50, 52), [math.nan, math.nan])
            await run.flush(10)
            return run.id

    with server(tmp_path, alert_run_webhook_hosts=("127.0.0.1",)) as (target, _d, _m):
        run_id = asyncio.run(diverge(target))
        posts = receiver.wait_for(1)
    assert [p.path for p in posts] == ["/run"]
    assert posts[0].body["text"].startswith(f"evalstream: run p/async ({run_id}) is diverged")


def test_restarted_server_does_not_alert_again(receiver, tmp_path: Path) -> None:
    hooks = {"alert_webhooks": (receiver.url("/hook"),)}
    with server(tmp_path, **hooks) as (target, _deps, _m):
        with Client(target) as client:
            run_id = _diverge(client, "before")
            assert len(receiver.wait_for(1)) == 1
    with server(tmp_path, **hooks) as (target, _deps, _m):
        with Client(target) as client:
            run = client.get_run(run_id)
            run.log_many(range(60, 65), [math.nan] * 5)  # still diverged
            run.flush(10)
            _diverge(client, "after")  # a new run alerts as usual
            posts = receiver.wait_for(2)
            time.sleep(0.3)
    assert [p.body["name"] for p in receiver.posts] == ["before", "after"]
    assert posts[1].body["previous_state"] == "unknown"


@pytest.mark.slow
def test_server_process_reads_alert_flags_and_variables(receiver, tmp_path, monkeypatch) -> None:
    """`evalstream-server` with --alert-webhook and EVALSTREAM_ALERT_SLACK_WEBHOOK; the
    webhook paths (secrets) stay out of its logs."""
    monkeypatch.setenv("EVALSTREAM_ALERT_SLACK_WEBHOOK", receiver.url("/slack/SECRET"))
    sp = start_server(
        tmp_path,
        extra=(
            "--bertscore-model", "none", "--text-workers", "0",
            "--alert-webhook", receiver.url("/json/SECRET"),
            "--alert-debounce-seconds", "0.05",
        ),
    )  # fmt: skip
    try:
        with Client(sp.target) as client:
            run_id = _diverge(client, "process")
        posts = receiver.wait_for(2)
    finally:
        sp.signal(signal.SIGTERM)
        assert sp.wait(30) == 0
    assert sorted(p.path for p in posts) == ["/json/SECRET", "/slack/SECRET"]
    alerts = [line for line in sp.lines if line.get("msg") == "alert"]
    assert [(a["run_id"], a["state"]) for a in alerts] == [(run_id, "diverged")]
    assert not any("SECRET" in line for line in sp.raw)
