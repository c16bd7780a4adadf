"""Alert payloads: evalstream's JSON object, or a Slack incoming-webhook message.

The Slack shape follows Slack's incoming webhooks ({"text": ..., "blocks": [...]}
with mrkdwn section blocks; https://api.slack.com/messaging/webhooks), which
Mattermost and Discord's Slack-compatible endpoints also accept.
"""

from __future__ import annotations

import math
from typing import Any

from evalstream_server.analysis.verdict import Verdict
from evalstream_server.store import RunRecord

__all__ = ["alert_payload", "slack_payload"]


def alert_payload(
    run: RunRecord, verdict: Verdict, previous: str, *, server_time: float
) -> dict[str, Any]:
    """The JSON alert of `run` turning ``verdict.state`` from `previous`.

    Example:
        >>> from evalstream_server.analysis.verdict import verdict_from_series
        >>> from evalstream_server.store import RunRecord
        >>> run = RunRecord("r_1", "vqa", "lora", "", "", "running", {}, {}, 0.0, 0.0)
        >>> p = alert_payload(run, verdict_from_series(None, None), "healthy", server_time=1.5)
        >>> p["run_id"], p["state"], p["previous_state"], p["server_time"]
        ('r_1', 'insufficient_data', 'healthy', 1.5)
    """
    es = verdict.early_stopping
    return {
        "kind": "evalstream.alert",
        "run_id": run.id,
        "project": run.project,
        "name": run.name,
        "state": verdict.state,
        "previous_state": previous,
        "severity": verdict.severity,
        "summary": verdict.summary,
        "as_of_step": verdict.as_of_step,
        "advice": [{"action": a.action, "text": a.text} for a in verdict.advice],
        "early_stopping": {
            "monitor": es.monitor,
            "best_step": es.best_step,
            "best_value": es.best_value
            if es.best_value is not None and math.isfinite(es.best_value)
            else None,
            "should_stop": es.should_stop,
        },
        "server_time": server_time,
    }


def slack_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message saying what `alert` (an `alert_payload`) says.

    Example:
        >>> m = slack_payload({"project": "vqa", "name": "lora", "run_id": "r_1",
        ...     "state": "diverged", "previous_state": "healthy", "severity": "",
        ...     "summary": "Loss went NaN.", "as_of_step": 40, "advice": [],
        ...     "early_stopping": {"best_step": 20}})
        >>> m["text"]
        'evalstream: run vqa/lora (r_1) is diverged (was healthy) at step 40: Loss went NaN.'
    """
    state = alert["state"] + (f" ({alert['severity']})" if alert.get("severity") else "")
    text = (
        f"evalstream: run {alert['project']}/{alert['name']} ({alert['run_id']}) is {state} "
        f"(was {alert['previous_state']}) at step {alert['as_of_step']}: {alert['summary']}"
    )
    lines = [f"*{alert['project']}/{alert['name']}* is *{state}* at step {alert['as_of_step']}"]
    lines.append(alert["summary"])
    lines += [f"- {a['text']}" for a in alert["advice"]]
    best = alert["early_stopping"].get("best_step")
    if best is not None:
        lines.append(f"Best step so far: {best}")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}}]
    return {"text": text, "blocks": blocks}
