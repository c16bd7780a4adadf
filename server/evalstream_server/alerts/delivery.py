"""Alert delivery: a bounded queue, worker threads, timeouts and retries with backoff.

A POST is retried on network errors, timeouts, 5xx and 429 (waiting ``Retry-After``
seconds when the receiver says so, capped), with exponential backoff; another 4xx
is final (the receiver refused the message: sending it again would not help). When
the queue is full a new alert is dropped and counted, never blocking the caller.
The stdlib's ``urllib`` sends (no extra dependency); alerts are rare, so a few
threads suffice.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Delivery", "DeliveryError", "DeliveryMetrics", "Dispatcher", "RetryPolicy"]

log = logging.getLogger("evalstream.alerts")

#: Longest wait a receiver's Retry-After may ask for, in seconds.
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How deliveries are tried: `retries` more times after the first, backing off."""

    retries: int = 4
    backoff_seconds: float = 1.0  # first wait; doubles per retry
    max_backoff_seconds: float = 60.0
    timeout_seconds: float = 5.0  # per POST (connect and read)

    def delay(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (1-based).

        Example:
            >>> policy = RetryPolicy(backoff_seconds=0.5, max_backoff_seconds=3)
            >>> [policy.delay(a) for a in (1, 2, 3, 4)]
            [0.5, 1.0, 2.0, 3]
        """
        return min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)


@dataclass(frozen=True, slots=True)
class DeliveryMetrics:
    """Where outcomes are counted (the server passes its Prometheus counters' ``inc``)."""

    sent: Callable[[str], None] = lambda fmt: None  # format
    failed: Callable[[str], None] = lambda reason: None  # reason
    dropped: Callable[[], None] = lambda: None
    retried: Callable[[], None] = lambda: None


@dataclass(order=True)
class Delivery:
    """One payload for one URL, with its tries so far."""

    due: float
    seq: int
    url: str = field(compare=False)
    format: str = field(compare=False)  # "json" or "slack": counted by
    body: bytes = field(compare=False)
    attempts: int = field(default=0, compare=False)


class DeliveryError(Exception):
    def __init__(self, reason: str, retry: bool, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry, self.after = reason, retry, after


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return min(max(float(raw), 0.0), MAX_RETRY_AFTER) if raw is not None else None
    except ValueError:
        return None  # an HTTP date: not worth parsing, backoff instead


def post_json(url: str, body: bytes, timeout: float) -> None:
    """POSTs `body`; raises `DeliveryError` unless the receiver answered 2xx."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "evalstream-alerts"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - http(s) only
            reply.read(65536)
    except urllib.error.HTTPError as exc:
        status = exc.code
        retry = status >= 500 or status == 429
        kind = "http_5xx" if status >= 500 else "http_429" if status == 429 else "http_4xx"
        raise DeliveryError(kind, retry, _retry_after(exc.headers) if retry else None) from exc
    except TimeoutError as exc:
        raise DeliveryError("timeout", True) from exc
    except urllib.error.URLError as exc:
        timed_out = isinstance(exc.reason, (TimeoutError, socket.timeout))
        raise DeliveryError("timeout" if timed_out else "network", True) from exc
    except OSError as exc:  # reset, refused after connect, ...
        raise DeliveryError("network", True) from exc


class Dispatcher:
    """A bounded queue of deliveries served by `workers` threads.

    `submit` never blocks: beyond `max_queue` waiting deliveries (retries included)
    a new one is dropped and counted. `close(grace)` stops taking new ones and gives
    those pending until `grace` seconds to go out; what is left is counted failed
    with reason ``shutdown``.
    """

    def __init__(
        self,
        *,
        policy: RetryPolicy = RetryPolicy(),
        max_queue: int = 1000,
        workers: int = 2,
        metrics: DeliveryMetrics = DeliveryMetrics(),
        send: Callable[[str, bytes, float], None] = post_json,
    ) -> None:
        self._policy = policy
        self._max_queue = max_queue
        self._metrics = metrics
        self._send = send
        self._heap: list[Delivery] = []
        self._busy = 0
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._closing = False
        self._deadline = float("inf")
        self._threads = [
            threading.Thread(target=self._work, name=f"alerts-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def depth(self) -> int:
        """Deliveries waiting or being sent."""
        with self._cond:
            return len(self._heap) + self._busy

    def submit(self, url: str, fmt: str, payload: dict[str, Any]) -> bool:
        """Queues a POST of `payload`; False (and counted dropped) when full or closing."""
        body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
        with self._cond:
            if self._closing or len(self._heap) + self._busy >= self._max_queue:
                dropped = True
            else:
                dropped = False
                heapq.heappush(
                    self._heap, Delivery(time.monotonic(), next(self._seq), url, fmt, body)
                )
                self._cond.notify()
        if dropped:
            self._metrics.dropped()
            log.warning("alert dropped: the queue is full", extra={"fields": {"url": _shown(url)}})
        return not dropped

    def close(self, grace: float) -> None:
        """Stops taking alerts; pending ones get until `grace` seconds to go out."""
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + grace
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=max(grace, 0) + self._policy.timeout_seconds + 1)

    def _next(self) -> Delivery | None:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._closing and (now >= self._deadline or not self._heap):
                    return None
                if self._heap and self._heap[0].due <= now:
                    self._busy += 1
                    return heapq.heappop(self._heap)
                wait = self._heap[0].due - now if self._heap else None
                if self._closing:
                    wait = min(wait if wait is not None else 1.0, self._deadline - now)
                self._cond.wait(wait)

    def _work(self) -> None:
        while True:
            item = self._next()
            if item is None:
                break
            try:
                self._try(item)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()
        with self._cond:  # the grace period is over: what is left is lost
            left, self._heap = self._heap, []
        for item in left:
            self._metrics.failed("shutdown")
            log.warning(
                "alert not sent: shutting down", extra={"fields": {"url": _shown(item.url)}}
            )

    def _try(self, item: Delivery) -> None:
        item.attempts += 1
        try:
            self._send(item.url, item.body, self._policy.timeout_seconds)
        except DeliveryError as outcome:
            if outcome.retry and item.attempts <= self._policy.retries:
                wait = outcome.after if outcome.after is not None else None
                item.due = time.monotonic() + (
                    wait if wait is not None else self._policy.delay(item.attempts)
                )
                self._metrics.retried()
                with self._cond:
                    heapq.heappush(self._heap, item)
                    self._cond.notify()
                return
            self._metrics.failed(outcome.reason)
            log.warning(
                "alert not delivered",
                extra={
                    "fields": {
                        "url": _shown(item.url),
                        "reason": outcome.reason,
                        "attempts": item.attempts,
                    }
                },
            )
            return
        except Exception:  # noqa: BLE001 - a bug must not kill the worker
            self._metrics.failed("error")
            log.exception("alert delivery failed", extra={"fields": {"url": _shown(item.url)}})
            return
        self._metrics.sent(item.format)


def _shown(url: str) -> str:
    """A URL for logs: scheme and host only (webhook paths are often secrets)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rpartition('@')[2]}/..."
