"""Server configuration: command-line flags with matching ``EVALSTREAM_*`` variables.

This is the only module that reads the environment. Every flag ``--some-flag``
has the variable ``EVALSTREAM_SOME_FLAG``; a flag given on the command line wins
over the variable, which wins over the embedded default.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import ipaddress
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from evalstream_server.alerts.policy import url_problem
from evalstream_server.store import _url as store_urls

DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "fp32", "bf16", "fp16")
LOG_LEVELS = ("debug", "info", "warning", "error")
EVENT_LOOPS = ("auto", "asyncio", "uvloop")
STORE_WRITERS = ("process", "thread")
#: Shortest accepted --admin-token: an unsalted SHA-256 is only safe for high-entropy tokens.
MIN_TOKEN_CHARS = 32
#: Largest --quality-gauges-max-runs: bounds the label cardinality of the run gauges, and
#: stays below the VerdictHub's 1024 cached analyzers so a scrape never evicts its own runs.
MAX_QUALITY_GAUGES_RUNS = 1000
#: The model cache under the user's cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``).
MODEL_CACHE = Path("evalstream", "models")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """Everything the server is configured with, read once at start.

    Example:
        >>> Config().port, Config().metrics_port, Config().http_port
        (50051, 9464, 8080)
    """

    host: str = "127.0.0.1"
    port: int = 50051
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    # The browser views and the JSON API (evalstream_server.web), on the gRPC host; -1: off.
    http_port: int = 8080
    # JSON API calls (downloads included) and Server-Sent Event streams at once; each
    # holds a thread of the handler pool the RPCs use. More are answered 503.
    http_max_in_flight: int = 64
    http_max_streams: int = 64
    data_dir: Path = Path("evalstream-data")
    # Where relative specimen image paths resolve (never read by the server); None: no
    # relative paths accepted, only http, https, file and s3 URIs.
    image_root: Path | None = None
    # Models live outside the data directory, so any --data-dir serves.
    model_dir: Path = dataclasses.field(default_factory=lambda: default_model_dir(os.environ))
    device: str = "auto"
    max_message_bytes: int = 64 * 1024 * 1024
    max_concurrent_rpcs: int = 256
    max_concurrent_rpcs_per_token: int = 0
    max_workers: int = 256
    max_images_per_batch: int = 10_000
    max_boxes_per_image: int = 10_000
    max_points_per_chunk: int = 1_000_000
    max_pairs_per_batch: int = 1_000
    max_references_per_pair: int = 16
    max_chars_per_text: int = 10_000
    text_workers: int = -1
    text_cache_mb: int = 64
    bertscore_model: str = ""
    bertscore_layer: int = -1
    bertscore_dtype: str = "auto"
    bertscore_max_tokens: int = 16_384
    bertscore_max_delay_ms: float = 5.0
    bertscore_max_queue: int = 4_096
    grace_seconds: float = 10.0
    log_level: str = "info"
    event_loop: str = "auto"
    # Where runs are stored: "" (the default) is SQLite in the data directory; else
    # a store URL (sqlite:///path, postgresql://...). It may hold a password: its
    # repr and every message show it as ***.
    store: str = ""
    # A writer process needs fork/exec and Unix sockets (pass_fds): POSIX.
    store_writer: str = "process" if os.name == "posix" else "thread"
    # Security (see evalstream_server.auth). The admin token is a secret: never in repr.
    auth_tokens_file: Path | None = None
    admin_token: str = dataclasses.field(default="", repr=False)
    no_auth: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    insecure: bool = False
    # Model-quality gauges per running run (evalstream_server.quality); off by default.
    quality_gauges: bool = False
    quality_gauges_max_runs: int = 50
    # Alert webhooks (evalstream_server.alerts): the server's own, in JSON and in Slack's
    # shape, and the hosts per-run webhooks may name (none: per-run webhooks refused).
    # Webhook URLs often hold secrets (Slack's path does): never in repr.
    alert_webhooks: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    alert_slack_webhooks: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    alert_run_webhook_hosts: tuple[str, ...] = ()
    alert_debounce_seconds: float = 1.0
    alert_timeout_seconds: float = 5.0
    alert_retries: int = 4
    alert_backoff_seconds: float = 1.0
    alert_max_queue: int = 1000

    def __post_init__(self) -> None:
        problems = []
        for name in ("alert_webhooks", "alert_slack_webhooks"):
            for url in getattr(self, name):
                problem = url_problem(url)
                if problem is not None:
                    flag = name.replace("_", "-").removesuffix("s")
                    problems.append(f"{flag} {_shown_url(url)!r}: {problem}")
        for name in ("alert_debounce_seconds", "alert_timeout_seconds", "alert_backoff_seconds"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.alert_retries < 0:
            problems.append(f"alert-retries must be >= 0, got {self.alert_retries}")
        if self.alert_max_queue < 1:
            problems.append(f"alert-max-queue must be >= 1, got {self.alert_max_queue}")
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} is not in [0, 65535]")
        if not -1 <= self.metrics_port <= 65535:
            problems.append(f"metrics port {self.metrics_port} is not in [-1, 65535]")
        if not -1 <= self.http_port <= 65535:
            problems.append(f"http port {self.http_port} is not in [-1, 65535]")
        if self.device not in DEVICES:
            problems.append(f"device {self.device!r} is not one of {', '.join(DEVICES)}")
        if self.event_loop not in EVENT_LOOPS:
            problems.append(
                f"event loop {self.event_loop!r} is not one of {', '.join(EVENT_LOOPS)}"
            )
        if self.store:
            try:
                store_urls.parse(self.store)
            except ValueError as exc:
                problems.append(f"{flag_hint('store')}: {exc}")
            # repr(config) shows the URL with its password hidden (str() is the URL).
            object.__setattr__(self, "store", store_urls.SecretURL(self.store))
        if self.store_writer not in STORE_WRITERS:
            problems.append(
                f"store writer {self.store_writer!r} is not one of {', '.join(STORE_WRITERS)}"
            )
        if self.log_level not in LOG_LEVELS:
            problems.append(f"log level {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        for name in (
            "max_message_bytes",
            "max_concurrent_rpcs",
            "max_workers",
            "max_images_per_batch",
            "max_boxes_per_image",
            "max_points_per_chunk",
            "max_pairs_per_batch",
            "max_references_per_pair",
            "max_chars_per_text",
            "bertscore_max_tokens",
            "bertscore_max_queue",
            "http_max_in_flight",
            "http_max_streams",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.bertscore_dtype not in DTYPES:
            problems.append(
                f"bertscore-dtype {self.bertscore_dtype!r} is not one of {', '.join(DTYPES)}"
            )
        if self.bertscore_layer < -1:
            problems.append(
                "bertscore-layer must be >= 0 (or -1 for the model's default), "
                f"got {self.bertscore_layer}"
            )
        if self.bertscore_max_delay_ms < 0:
            problems.append(
                f"bertscore-max-delay-ms must be >= 0, got {self.bertscore_max_delay_ms}"
            )
        if not 0 <= self.max_concurrent_rpcs_per_token <= self.max_concurrent_rpcs:
            problems.append(
                "max-concurrent-rpcs-per-token must be in [0, max-concurrent-rpcs "
                f"({self.max_concurrent_rpcs})] (0: no per-token limit), "
                f"got {self.max_concurrent_rpcs_per_token}"
            )
        if self.text_cache_mb < 0:
            problems.append(f"text-cache-mb must be >= 0 (0: no caching), got {self.text_cache_mb}")
        if self.grace_seconds < 0:
            problems.append(f"grace-seconds must be >= 0, got {self.grace_seconds}")
        if not 1 <= self.quality_gauges_max_runs <= MAX_QUALITY_GAUGES_RUNS:
            problems.append(
                f"quality-gauges-max-runs must be in [1, {MAX_QUALITY_GAUGES_RUNS}], "
                f"got {self.quality_gauges_max_runs}"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append("tls-cert and tls-key go together: give both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            problems.append("tls-client-ca (mTLS) needs tls-cert and tls-key")
        if self.no_auth and self.tokens_configured:
            problems.append("no-auth contradicts auth-tokens-file / admin-token: drop one of them")
        if self.admin_token and len(self.admin_token) < MIN_TOKEN_CHARS:
            problems.append(
                f"admin-token must have at least {MIN_TOKEN_CHARS} random characters "
                "(mint one with: python -m evalstream_server.auth mint --name admin --role admin)"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def alerts_enabled(self) -> bool:
        """Whether any webhook can be configured: server webhooks, or hosts for per-run ones."""
        return bool(
            self.alert_webhooks or self.alert_slack_webhooks or self.alert_run_webhook_hosts
        )

    @property
    def database(self) -> Path:
        """The embedded SQLite store: ``<data-dir>/evalstream.db``."""
        return self.data_dir / "evalstream.db"

    @property
    def store_url(self) -> store_urls.StoreURL:
        """Where runs are stored: ``--store``, else SQLite at `database`.

        Example:
            >>> Config(data_dir=Path("/d")).store_url.path.as_posix()
            '/d/evalstream.db'
            >>> Config(store="postgresql://u:pw@db/e")
            ... # doctest: +ELLIPSIS
            Config(...store='postgresql://u:***@db/e'...)
            >>> Config(store="postgresql://u:pw@db/e").store_url.backend
            'postgresql'
        """
        if not self.store:
            path = self.database
            return store_urls.StoreURL("sqlite", f"sqlite:///{path}", path)
        return store_urls.parse(self.store)

    @property
    def text_cache_bytes(self) -> int:
        """The text metrics' memo budget per process, in bytes (``--text-cache-mb`` MiB).

        Example:
            >>> Config(text_cache_mb=2).text_cache_bytes
            2097152
        """
        return self.text_cache_mb << 20

    @property
    def tokens_configured(self) -> bool:
        """Whether a tokens file or an admin token is configured (authentication is then on)."""
        return self.auth_tokens_file is not None or bool(self.admin_token)

    @property
    def tls(self) -> bool:
        """Whether the gRPC port serves TLS (with client certificates when tls_client_ca is set)."""
        return self.tls_cert is not None

    @property
    def loopback(self) -> bool:
        """Whether the gRPC host is a loopback address (only this machine can connect).

        Example:
            >>> Config(host="127.0.0.1").loopback, Config(host="localhost").loopback
            (True, True)
            >>> Config(host="::1").loopback, Config(host="0.0.0.0").loopback
            (True, False)
        """
        return is_loopback(self.host)

    def exposure_problems(self) -> list[str]:
        """Why the server must not start as configured; empty when it may.

        Plaintext and unauthenticated serving are allowed by default only on a
        loopback host. Elsewhere plaintext needs ``--insecure`` (e.g. behind a
        TLS-terminating proxy) and serving without tokens needs ``--no-auth``.

        Example:
            >>> Config(host="127.0.0.1").exposure_problems()
            []
            >>> len(Config(host="0.0.0.0").exposure_problems())
            2
            >>> Config(host="0.0.0.0", insecure=True, no_auth=True).exposure_problems()
            []
        """
        if self.loopback:
            return []
        problems = []
        if not self.tls and not self.insecure:
            problems.append(
                f"refusing plaintext gRPC on the non-loopback host {self.host!r}: give "
                "--tls-cert and --tls-key, or --insecure (e.g. behind a TLS-terminating proxy)"
            )
        if not self.tokens_configured and not self.no_auth:
            problems.append(
                f"refusing to serve the non-loopback host {self.host!r} without "
                "authentication: give --auth-tokens-file or EVALSTREAM_ADMIN_TOKEN, or --no-auth"
            )
        return problems

    @property
    def address(self) -> str:
        """The gRPC listen address, e.g. ``127.0.0.1:50051`` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


def default_model_dir(environ: Mapping[str, str]) -> Path:
    """The model cache: ``$XDG_CACHE_HOME/evalstream/models``, else ``~/.cache/evalstream/models``.

    Example:
        >>> default_model_dir({"XDG_CACHE_HOME": "/var/cache"}).as_posix()
        '/var/cache/evalstream/models'
        >>> default_model_dir({"HOME": "/home/ada"}).as_posix()
        '/home/ada/.cache/evalstream/models'
    """
    cache = environ.get("XDG_CACHE_HOME", "")
    if cache:
        return Path(cache) / MODEL_CACHE
    home = environ.get("HOME", "")
    return (Path(home) if home else Path.home()) / ".cache" / MODEL_CACHE


def load_model_dir(flag: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """The model cache: ``flag`` when given, else EVALSTREAM_MODEL_DIR, else the default.

    Example:
        >>> load_model_dir(None, {"EVALSTREAM_MODEL_DIR": "/models"}).as_posix()
        '/models'
        >>> load_model_dir(Path("/opt/m"), {"EVALSTREAM_MODEL_DIR": "/models"}).as_posix()
        '/opt/m'
    """
    environ = os.environ if environ is None else environ
    if flag is not None:
        return flag
    variable = environ.get(env_name("--model-dir"))
    return Path(variable) if variable else default_model_dir(environ)


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only: ``localhost``, 127.0.0.0/8 or ``::1``.

    Other names are not resolved: they count as non-loopback.

    Example:
        >>> is_loopback("127.0.0.2"), is_loopback("[::1]"), is_loopback("example.com")
        (True, True, False)
    """
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown_url(url: str) -> str:
    """A webhook URL for messages: its path may hold a secret (Slack's does)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.split('/', 1)[0]}/..." if sep else url[:20]


def _list(raw: str | list[str]) -> tuple[str, ...]:
    """A list setting: a repeated flag, or its variable's comma-separated items.

    Example:
        >>> _list("https://a.example/x, https://b.example/y")
        ('https://a.example/x', 'https://b.example/y')
    """
    items = raw if isinstance(raw, list) else raw.split(",")
    return tuple(item.strip() for item in items if item.strip())


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(raw)


# (flag, field, type, help). The variable is EVALSTREAM_ + flag in upper snake case.
# Flags of type bool take no value on the command line; their variable takes 1/0,
# true/false, yes/no or on/off.
_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("--host", "host", str, "gRPC listen address"),
    ("--port", "port", int, "gRPC port (0 picks a free one)"),
    ("--metrics-host", "metrics_host", str, "Prometheus endpoint address"),
    ("--metrics-port", "metrics_port", int, "Prometheus port (0 picks a free one, -1 disables)"),
    (
        "--http-port",
        "http_port",
        int,
        "port of the browser views and the JSON API (/api/v1), on the gRPC host with its "
        "tokens and TLS (0 picks a free one, -1 disables)",
    ),
    (
        "--http-max-in-flight",
        "http_max_in_flight",
        int,
        "JSON API calls (downloads included) served at once, beside the RPCs; more are "
        "answered 503 with Retry-After",
    ),
    (
        "--http-max-streams",
        "http_max_streams",
        int,
        "Server-Sent Event streams (live verdicts) open at once; more are answered 503 "
        "with Retry-After",
    ),
    ("--data-dir", "data_dir", Path, "data directory (runs, points, specimens)"),
    (
        "--image-root",
        "image_root",
        Path,
        "existing directory that specimen image paths without a scheme are relative to; "
        "without it only http, https, file and s3 image URIs are accepted (the server "
        "never reads the images)",
    ),
    (
        "--model-dir",
        "model_dir",
        Path,
        "model cache holding the embedded BERTScore model (evalstream-server fetch-model fills it)",
    ),
    ("--device", "device", str, "scoring device: auto, cpu or cuda"),
    ("--max-message-bytes", "max_message_bytes", int, "largest gRPC message accepted or sent"),
    (
        "--max-concurrent-rpcs",
        "max_concurrent_rpcs",
        int,
        "RPCs served at once; more are refused with RESOURCE_EXHAUSTED",
    ),
    (
        "--max-concurrent-rpcs-per-token",
        "max_concurrent_rpcs_per_token",
        int,
        "RPCs one bearer token may have in flight (0: no per-token limit)",
    ),
    ("--max-workers", "max_workers", int, "handler threads"),
    ("--max-images-per-batch", "max_images_per_batch", int, "images per ScoreBoxes batch"),
    (
        "--max-boxes-per-image",
        "max_boxes_per_image",
        int,
        "predicted or ground-truth boxes per image",
    ),
    (
        "--max-points-per-chunk",
        "max_points_per_chunk",
        int,
        "loss points per StreamLoss chunk",
    ),
    ("--max-pairs-per-batch", "max_pairs_per_batch", int, "pairs per ScoreText batch"),
    ("--max-references-per-pair", "max_references_per_pair", int, "references per text pair"),
    ("--max-chars-per-text", "max_chars_per_text", int, "characters per prediction or reference"),
    (
        "--text-workers",
        "text_workers",
        int,
        "processes computing BLEU/ROUGE/METEOR beside the handler threads "
        "(-1: one per core beyond the first, at most 4; 0: none)",
    ),
    (
        "--text-cache-mb",
        "text_cache_mb",
        int,
        "MiB of BLEU/ROUGE/METEOR text caches per process: the server and each text "
        "worker hold up to this much (0: no caching)",
    ),
    (
        "--bertscore-model",
        "bertscore_model",
        str,
        "BERTScore model: a local directory, a hub id, '' for the embedded "
        "all-MiniLM-L6-v2 in --model-dir, or 'none' to disable BERTScore",
    ),
    ("--bertscore-layer", "bertscore_layer", int, "layer matched (-1: the model's default)"),
    (
        "--bertscore-dtype",
        "bertscore_dtype",
        str,
        "auto, fp32, bf16 (opt-in on CPU) or fp16 (CUDA)",
    ),
    ("--bertscore-max-tokens", "bertscore_max_tokens", int, "padded tokens per BERTScore batch"),
    ("--bertscore-max-delay-ms", "bertscore_max_delay_ms", float, "batcher wait to fill a batch"),
    (
        "--bertscore-max-queue",
        "bertscore_max_queue",
        int,
        "sentences waiting for the batcher; more get RESOURCE_EXHAUSTED",
    ),
    ("--grace-seconds", "grace_seconds", float, "drain time for in-flight RPCs at shutdown"),
    ("--log-level", "log_level", str, "debug, info, warning or error"),
    (
        "--event-loop",
        "event_loop",
        str,
        "the gRPC server's asyncio loop: auto (uvloop when installed), asyncio or uvloop",
    ),
    (
        "--store",
        "store",
        str,
        "where runs are stored: sqlite:///PATH (default: evalstream.db in the data "
        "directory) or postgresql://USER:PASSWORD@HOST:PORT/DATABASE (several replicas "
        "may share one); the password is never shown",
    ),
    (
        "--store-writer",
        "store_writer",
        str,
        "where the store's one writer runs: process (its own, beside the event loop's "
        "GIL) or thread (in the server process)",
    ),
    (
        "--auth-tokens-file",
        "auth_tokens_file",
        Path,
        "JSON file of token hashes, roles and projects (python -m evalstream_server.auth mint)",
    ),
    (
        "--admin-token",
        "admin_token",
        str,
        "one admin token for every project; prefer the variable (a flag shows in ps)",
    ),
    ("--no-auth", "no_auth", bool, "serve without authentication (logged loudly at start)"),
    ("--tls-cert", "tls_cert", Path, "server certificate chain (PEM); turns TLS on"),
    ("--tls-key", "tls_key", Path, "server private key (PEM)"),
    (
        "--tls-client-ca",
        "tls_client_ca",
        Path,
        "CA bundle (PEM) of client certificates; makes them required (mTLS)",
    ),
    ("--insecure", "insecure", bool, "allow plaintext gRPC on a non-loopback host"),
    (
        "--quality-gauges",
        "quality_gauges",
        bool,
        "export each running run's latest losses, gap and verdict state on /metrics "
        "(project and run names become label values)",
    ),
    (
        "--quality-gauges-max-runs",
        "quality_gauges_max_runs",
        int,
        f"most runs the quality gauges export, newest first (1 to {MAX_QUALITY_GAUGES_RUNS})",
    ),
    (
        "--alert-webhook",
        "alert_webhooks",
        tuple,
        "URL POSTed a JSON alert when any run's verdict turns diverged, overfitting or "
        "not_learning (repeatable; the variable takes a comma-separated list)",
    ),
    (
        "--alert-slack-webhook",
        "alert_slack_webhooks",
        tuple,
        'as --alert-webhook, with a Slack incoming-webhook message ({"text": ...})',
    ),
    (
        "--alert-run-webhook-hosts",
        "alert_run_webhook_hosts",
        tuple,
        "hosts that per-run alert webhooks (CreateRun) may name: a host, .domain for its "
        "subdomains, or * for any host but link-local addresses (repeatable or "
        "comma-separated; none: per-run webhooks are refused)",
    ),
    (
        "--alert-debounce-seconds",
        "alert_debounce_seconds",
        float,
        "wait after a write before a run's verdict is re-evaluated for alerts",
    ),
    ("--alert-timeout-seconds", "alert_timeout_seconds", float, "timeout of one alert POST"),
    (
        "--alert-retries",
        "alert_retries",
        int,
        "retries of an alert POST after a network error, a timeout, 5xx or 429",
    ),
    (
        "--alert-backoff-seconds",
        "alert_backoff_seconds",
        float,
        "wait before the first retry of an alert, doubled for each next one (at most 60 s)",
    ),
    (
        "--alert-max-queue",
        "alert_max_queue",
        int,
        "alert deliveries waiting at most (retries included); more are dropped and counted",
    ),
)


def env_name(flag: str) -> str:
    """The environment variable of a flag.

    Example:
        >>> env_name("--max-message-bytes")
        'EVALSTREAM_MAX_MESSAGE_BYTES'
    """
    return "EVALSTREAM_" + flag.lstrip("-").replace("-", "_").upper()


def flag_hint(field: str) -> str:
    """The flag and variable that set a Config field, for error messages.

    Taken from the flag table, so that a message cannot name a flag that is not there.

    Example:
        >>> flag_hint("metrics_port")
        '--metrics-port / EVALSTREAM_METRICS_PORT'
    """
    flag = next(flag for flag, name, _, _ in _FLAGS if name == field)
    return f"{flag} / {env_name(flag)}"


def raise_hint(field: str) -> str:
    """How to raise the limit that Config field sets, for error messages.

    Example:
        >>> raise_hint("max_images_per_batch")
        'raise it with --max-images-per-batch / EVALSTREAM_MAX_IMAGES_PER_BATCH'
    """
    return f"raise it with {flag_hint(field)}"


def version() -> str:
    """The installed version: the ``evalstream`` distribution's metadata, else ``__version__``."""
    try:
        return importlib.metadata.version("evalstream")
    except importlib.metadata.PackageNotFoundError:  # imported from a source tree
        from evalstream_server import __version__

        return __version__


def parser(prog: str = "evalstream-server") -> argparse.ArgumentParser:
    """The argument parser of ``evalstream-server`` (defaults are filled in by `load`)."""
    p = argparse.ArgumentParser(
        prog=prog,
        description="evalstream gRPC server. Every flag can also be set by the "
        "EVALSTREAM_* variable named in its help.",
        epilog="evalstream-server fetch-model [--model-dir DIR] fetches the default "
        "BERTScore model into the model cache (see its --help). evalstream-server migrate "
        "[--store URL | --data-dir DIR] brings the store's schema to this version and exits "
        "(the server also migrates on start).",
    )
    # argparse prints the version and exits while parsing: nothing is loaded or started.
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    defaults = Config()
    for flag, field, type_, help_text in _FLAGS:
        if type_ is tuple:
            p.add_argument(
                flag,
                dest=field,
                default=None,
                action="append",
                metavar="URL" if "webhook" in flag and "hosts" not in flag else "HOST",
                help=f"{help_text} (env {env_name(flag)})",
            )
            continue
        if type_ is bool:
            p.add_argument(
                flag,
                dest=field,
                default=None,
                action="store_const",
                const="1",
                help=f"{help_text} (env {env_name(flag)}=1)",
            )
            continue
        default = "none" if field == "admin_token" else getattr(defaults, field)
        if field == "store":
            default = "sqlite:///DATA_DIR/evalstream.db"
        p.add_argument(
            flag,
            dest=field,
            default=None,
            metavar=field.split("_")[-1].upper(),
            help=f"{help_text} (default {default}; env {env_name(flag)})",
        )
    return p


def load(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    prog: str = "evalstream-server",
) -> Config:
    """Reads flags and environment once into a Config.

    Raises:
        SystemExit: with a message naming the flag or variable when a value is bad.

    Example:
        >>> load(["--port", "6000"], {"EVALSTREAM_PORT": "7000", "EVALSTREAM_DEVICE": "cpu"}).port
        6000
        >>> load([], {"EVALSTREAM_PORT": "7000"}).port
        7000
    """
    environ = os.environ if environ is None else environ
    p = parser(prog)
    args = p.parse_args(argv)
    values: dict[str, object] = {}
    for flag, field, type_, _help in _FLAGS:
        raw = getattr(args, field)
        source = flag
        if raw is None:
            raw = environ.get(env_name(flag))
            source = env_name(flag)
        if raw is None or raw == "":
            continue
        if type_ is tuple:
            values[field] = _list(raw)
            continue
        try:
            values[field] = _bool(raw) if type_ is bool else type_(raw)
        except ValueError:
            shown = "(hidden)" if field == "admin_token" else repr(raw)
            if field == "store":
                shown = repr(store_urls.redact(str(raw)))
            p.error(f"{source}: {shown} is not a valid {type_.__name__}")
    if "model_dir" not in values:
        values["model_dir"] = default_model_dir(environ)
    backend = str(values.get("store", "")).partition("://")[0].lower()
    if "store_writer" in values and backend in ("postgresql", "postgres"):
        p.error(
            f"{flag_hint('store_writer')} applies to the SQLite store only; the PostgreSQL "
            f"store given by {flag_hint('store')} has no writer process: drop it"
        )
    try:
        return Config(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        p.error(str(exc))
        raise  # unreachable: p.error exits
