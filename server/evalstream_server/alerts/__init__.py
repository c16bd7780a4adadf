"""Alert webhooks: POST a JSON (or Slack) message when a run's verdict turns bad.

`AlertMonitor` (:mod:`.monitor`) re-evaluates a run's verdict a moment after
writes to it, off the ingest path, and on a transition into an alerting state
(:data:`ALERT_STATES`) hands one alert per webhook to the `Dispatcher`
(:mod:`.delivery`), a bounded queue with worker threads that retry with
exponential backoff. Payloads are built by :mod:`.payload`; which URLs a caller
may name is decided by :mod:`.policy`. See docs/guide/verdicts.md.
"""
