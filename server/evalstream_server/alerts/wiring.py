"""Builds the alert monitor and its dispatcher from the server's configuration."""

from __future__ import annotations

from collections.abc import Callable

from evalstream_server.alerts.delivery import DeliveryMetrics, Dispatcher, RetryPolicy
from evalstream_server.alerts.monitor import AlertMonitor
from evalstream_server.api.verdicts import VerdictHub
from evalstream_server.config import Config
from evalstream_server.observability import ServiceMetrics
from evalstream_server.store import Store, Webhook

__all__ = ["SHUTDOWN_GRACE", "start_alerts"]

#: Most seconds pending alerts get to go out when the server stops (and --grace-seconds).
SHUTDOWN_GRACE = 2.0


def start_alerts(
    config: Config,
    store: Store,
    verdicts: VerdictHub,
    metrics: ServiceMetrics,
) -> Callable[[], None] | None:
    """Starts alerting when any webhook can be configured; returns what stops it, else None.

    The monitor is told of writes through the ``VerdictHub``'s hooks (it keeps its own
    analyzers: the hub's are fed on the ack path, and only for runs someone looks at).
    """
    if not config.alerts_enabled:
        return None
    dispatcher = Dispatcher(
        policy=RetryPolicy(
            retries=config.alert_retries,
            backoff_seconds=config.alert_backoff_seconds,
            timeout_seconds=config.alert_timeout_seconds,
        ),
        max_queue=config.alert_max_queue,
        metrics=DeliveryMetrics(
            sent=lambda fmt: metrics.alerts_sent.labels(fmt).inc(),
            failed=lambda reason: metrics.alerts_failed.labels(reason).inc(),
            dropped=metrics.alerts_dropped.inc,
            retried=metrics.alerts_retried.inc,
        ),
    )
    metrics.watch_gauges(
        {
            "evalstream_alerts_queue_depth": (
                "Alert deliveries waiting or being sent (retries included).",
                lambda: dispatcher.depth(),
            )
        }
    )
    webhooks = [Webhook(url, "json") for url in config.alert_webhooks] + [
        Webhook(url, "slack") for url in config.alert_slack_webhooks
    ]
    monitor = AlertMonitor(
        store,
        dispatcher,
        webhooks=webhooks,
        debounce=config.alert_debounce_seconds,
        state_path=config.data_dir / "alerts-state.json",
    )
    verdicts.on_points.append(monitor.points)
    verdicts.on_checkpoints.append(monitor.checkpoints)

    def stop() -> None:
        monitor.close()
        dispatcher.close(min(SHUTDOWN_GRACE, config.grace_seconds))

    return stop
