"""Alert settings: the server's list flags and variables, and the client's alert_webhooks."""

from __future__ import annotations

import pytest
from evalstream._verdicts import alert_webhooks_pb
from evalstream.v1 import runs_pb2
from evalstream_server.alerts.policy import host_allowed, url_problem
from evalstream_server.config import Config, load


def test_alert_webhook_flag_repeats_and_variable_splits_on_commas() -> None:
    config = load(
        ["--alert-webhook", "https://a.example/1", "--alert-webhook", "http://b.example:8080/2"],
        {
            "EVALSTREAM_ALERT_SLACK_WEBHOOK": "https://hooks.slack.com/T/B/X, https://c.example/3",
            "EVALSTREAM_ALERT_RUN_WEBHOOK_HOSTS": "hooks.slack.com,.corp.example",
        },
    )
    assert config.alert_webhooks == ("https://a.example/1", "http://b.example:8080/2")
    assert config.alert_slack_webhooks == ("https://hooks.slack.com/T/B/X", "https://c.example/3")
    assert config.alert_run_webhook_hosts == ("hooks.slack.com", ".corp.example")
    assert config.alerts_enabled
    assert not Config().alerts_enabled


def test_alert_webhook_flag_wins_over_variable() -> None:
    config = load(
        ["--alert-webhook", "https://a.example/1"],
        {"EVALSTREAM_ALERT_WEBHOOK": "https://b.example/"},
    )
    assert config.alert_webhooks == ("https://a.example/1",)


def test_bad_alert_webhook_stops_the_server_naming_the_flag_not_the_secret(capsys) -> None:
    with pytest.raises(SystemExit):
        load(["--alert-slack-webhook", "hooks.slack.com/services/T0/B0/SECRET"], {})
    err = capsys.readouterr().err
    assert "alert-slack-webhook" in err and "is not http or https" in err
    assert "SECRET" not in err


def test_alert_webhook_urls_stay_out_of_the_config_repr() -> None:
    config = Config(alert_webhooks=("https://a.example/SECRET",))
    assert "SECRET" not in repr(config)


def test_alert_numbers_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="alert-retries must be >= 0"):
        Config(alert_retries=-1)
    with pytest.raises(ValueError, match="alert-max-queue must be >= 1"):
        Config(alert_max_queue=0)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.example.com/x", None),
        ("http://10.0.0.1:8080/x", None),
        ("file:///etc/passwd", "scheme 'file' is not http or https"),
        ("https://", "the URL has no host"),
        ("https://a.example/" + "x" * 2040, "2058 characters, at most 2048"),
        ("https://a.example:99999/", "not a URL (Port out of range 0-65535)"),
    ],
)
def test_url_problem(url: str, problem: str | None) -> None:
    assert url_problem(url) == problem


@pytest.mark.parametrize(
    ("url", "hosts", "allowed"),
    [
        ("https://hooks.slack.com/x", ("hooks.slack.com",), True),
        ("https://HOOKS.SLACK.COM/x", ("hooks.slack.com",), True),
        ("https://evil.slack.com.attacker.example/x", ("hooks.slack.com",), False),
        ("https://a.corp.example/x", (".corp.example",), True),
        ("https://corp.example.evil/x", (".corp.example",), False),
        ("http://127.0.0.1:9000/x", ("*",), True),
        ("http://169.254.169.254/latest/meta-data", ("*",), False),
        ("http://[fe80::1]/x", ("*",), False),
        ("http://169.254.169.254/x", ("169.254.169.254",), True),
        ("https://user@hooks.slack.com/x", ("hooks.slack.com",), True),
        ("https://hooks.slack.com@10.0.0.1/x", ("hooks.slack.com",), False),
        ("https://hooks.slack.com/x", (), False),
    ],
)
def test_host_allowed(url: str, hosts: tuple[str, ...], allowed: bool) -> None:
    assert host_allowed(url, hosts) is allowed


def test_client_alert_webhooks_forms() -> None:
    pbs = alert_webhooks_pb(
        ["https://a.example/1", {"url": "https://b.example/2", "format": "slack"}]
    )
    assert [(p.url, p.format) for p in pbs] == [
        ("https://a.example/1", runs_pb2.ALERT_FORMAT_JSON),
        ("https://b.example/2", runs_pb2.ALERT_FORMAT_SLACK),
    ]
    assert alert_webhooks_pb(None) == []


@pytest.mark.parametrize(
    ("hooks", "error", "message"),
    [
        ("https://a.example/", TypeError, "a list of URLs"),
        (
            [{"url": "https://a.example/", "format": "teams"}],
            ValueError,
            r"alert_webhooks\[0\]: format 'teams'",
        ),
        ([{"href": "https://a.example/"}], TypeError, r"alert_webhooks\[0\]: give a URL"),
        ([{"url": "https://a.example/", "fmt": "json"}], TypeError, "unknown key 'fmt'"),
        ([3], TypeError, r"alert_webhooks\[0\]"),
    ],
)
def test_client_alert_webhooks_refused_before_sending(hooks, error, message) -> None:
    with pytest.raises(error, match=message):
        alert_webhooks_pb(hooks)
