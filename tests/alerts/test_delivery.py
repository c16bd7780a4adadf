"""The alert dispatcher against a local HTTP receiver: retries, backoff, no retry on 4xx, bound."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter

from evalstream_server.alerts.delivery import DeliveryMetrics, Dispatcher, RetryPolicy

FAST = RetryPolicy(retries=3, backoff_seconds=0.05, timeout_seconds=2.0)


class Counted:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.metrics = DeliveryMetrics(
            sent=lambda fmt: self.counts.update([f"sent:{fmt}"]),
            failed=lambda reason: self.counts.update([f"failed:{reason}"]),
            dropped=lambda: self.counts.update(["dropped"]),
            retried=lambda: self.counts.update(["retried"]),
        )


def _settle(d: Dispatcher, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while d.depth() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_delivery_posts_json_body(receiver) -> None:
    c = Counted()
    d = Dispatcher(policy=FAST, metrics=c.metrics)
    assert d.submit(receiver.url("/hook"), "json", {"state": "diverged", "as_of_step": 7})
    posts = receiver.wait_for(1)
    _settle(d)
    d.close(0)
    assert [(p.path, p.body) for p in posts] == [("/hook", {"state": "diverged", "as_of_step": 7})]
    assert posts[0].headers["Content-Type"] == "application/json"
    assert c.counts == Counter({"sent:json": 1})


def test_delivery_retries_5xx_then_succeeds(receiver) -> None:
    receiver.statuses = [500, 503]
    c = Counted()
    d = Dispatcher(policy=FAST, metrics=c.metrics)
    start = time.monotonic()
    d.submit(receiver.url("/hook"), "json", {"n": 1})
    assert len(receiver.wait_for(3)) == 3
    _settle(d)
    d.close(0)
    # Backoff 0.05 s then 0.1 s between the three tries.
    assert time.monotonic() - start >= 0.15
    assert c.counts == Counter({"sent:json": 1, "retried": 2})


def test_delivery_respects_retry_after_on_429(receiver) -> None:
    receiver.statuses = [429]
    receiver.retry_after = "0.5"
    c = Counted()
    d = Dispatcher(policy=FAST, metrics=c.metrics)
    d.submit(receiver.url("/hook"), "json", {"n": 1})
    first = receiver.wait_for(1)
    assert len(first) == 1
    t0 = time.monotonic()
    assert len(receiver.wait_for(2)) == 2
    assert time.monotonic() - t0 >= 0.4  # Retry-After, not the 0.05 s backoff
    _settle(d)
    d.close(0)
    assert c.counts == Counter({"sent:json": 1, "retried": 1})


def test_delivery_4xx_is_not_retried(receiver) -> None:
    receiver.statuses = [404]
    c = Counted()
    d = Dispatcher(policy=FAST, metrics=c.metrics)
    d.submit(receiver.url("/gone"), "slack", {"text": "x"})
    receiver.wait_for(1)
    _settle(d)
    time.sleep(0.2)  # a retry would come after 0.05 s
    d.close(0)
    assert len(receiver.posts) == 1
    assert c.counts == Counter({"failed:http_4xx": 1})


def test_delivery_gives_up_after_retries_on_dead_receiver() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = Counted()
    d = Dispatcher(policy=RetryPolicy(retries=2, backoff_seconds=0.01), metrics=c.metrics)
    d.submit(f"http://127.0.0.1:{port}/hook", "json", {"n": 1})
    deadline = time.monotonic() + 5
    while not c.counts["failed:network"] and time.monotonic() < deadline:
        time.sleep(0.01)
    d.close(0)
    assert c.counts == Counter({"failed:network": 1, "retried": 2})


def test_delivery_queue_bound_drops_and_counts() -> None:
    release = threading.Event()
    sent: list[bytes] = []

    def send(url: str, body: bytes, timeout: float) -> None:
        release.wait(5)
        sent.append(body)

    c = Counted()
    d = Dispatcher(policy=FAST, max_queue=3, workers=1, metrics=c.metrics, send=send)
    accepted = [d.submit("http://x.example/", "json", {"n": i}) for i in range(5)]
    assert accepted == [True, True, True, False, False]
    assert d.depth() == 3
    release.set()
    _settle(d)
    d.close(0)
    assert len(sent) == 3
    assert c.counts == Counter({"sent:json": 3, "dropped": 2})


def test_delivery_close_gives_pending_a_grace_then_counts_them_failed() -> None:
    def send(url: str, body: bytes, timeout: float) -> None:
        from evalstream_server.alerts.delivery import DeliveryError

        raise DeliveryError("http_5xx", True)

    c = Counted()
    policy = RetryPolicy(retries=5, backoff_seconds=10.0)
    d = Dispatcher(policy=policy, metrics=c.metrics, send=send)
    d.submit("http://x.example/", "json", {"n": 1})
    deadline = time.monotonic() + 5
    while not c.counts["retried"] and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.monotonic()
    d.close(0.2)  # the retry is due in 10 s: not within the grace
    assert time.monotonic() - start < 3
    assert c.counts == Counter({"retried": 1, "failed:shutdown": 1})
    assert not d.submit("http://x.example/", "json", {"n": 2})
