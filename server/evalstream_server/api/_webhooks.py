"""CreateRun's alert webhooks: checked against the URL rules and the server's host allowlist."""

from __future__ import annotations

from collections.abc import Sequence

from evalstream.v1 import runs_pb2

from evalstream_server.alerts.policy import MAX_RUN_WEBHOOKS, host_allowed, url_problem
from evalstream_server.config import flag_hint
from evalstream_server.errors import FieldViolation
from evalstream_server.store import Webhook

__all__ = ["webhooks_from_pb"]

_FORMATS = {
    runs_pb2.ALERT_FORMAT_UNSPECIFIED: "json",
    runs_pb2.ALERT_FORMAT_JSON: "json",
    runs_pb2.ALERT_FORMAT_SLACK: "slack",
}


def webhooks_from_pb(
    hooks: Sequence[runs_pb2.AlertWebhook],
    allowed_hosts: Sequence[str],
    violations: list[FieldViolation],
) -> tuple[Webhook, ...]:
    """The store's webhooks of a CreateRunRequest; problems go to `violations`.

    A URL must be http(s) with a host, at most 2048 characters, and its host on the
    server's ``--alert-run-webhook-hosts`` (none by default: the server would otherwise
    POST wherever any writer asks, internal addresses included).
    """
    if len(hooks) > MAX_RUN_WEBHOOKS:
        violations.append(
            FieldViolation(
                "alert_webhooks", f"{len(hooks)} webhooks, at most {MAX_RUN_WEBHOOKS} per run"
            )
        )
        return ()
    out = []
    for i, hook in enumerate(hooks):
        path = f"alert_webhooks[{i}]"
        problem = url_problem(hook.url)
        if problem is not None:
            violations.append(FieldViolation(f"{path}.url", problem))
        elif not host_allowed(hook.url, allowed_hosts):
            host = hook.url.partition("://")[2].split("/", 1)[0].rpartition("@")[2]
            why = (
                "this server accepts no per-run webhooks"
                if not allowed_hosts
                else f"the host {host!r} is not among the hosts this server accepts "
                f"({', '.join(allowed_hosts)})"
            )
            violations.append(
                FieldViolation(
                    f"{path}.url",
                    f"{why}: ask its operator to allow it with "
                    f"{flag_hint('alert_run_webhook_hosts')}, or use the server's own webhooks",
                )
            )
        if hook.format not in _FORMATS:
            violations.append(FieldViolation(f"{path}.format", f"unknown format {hook.format}"))
            continue
        out.append(Webhook(hook.url, _FORMATS[hook.format]))
    return tuple(out)
