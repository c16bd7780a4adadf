from __future__ import annotations

from pathlib import Path

import pytest
from evalstream_server import config


def test_defaults_are_the_documented_ones() -> None:
    c = config.load([], {})
    assert (c.host, c.port, c.metrics_port, c.data_dir, c.device) == (
        "127.0.0.1",
        50051,
        9464,
        Path("evalstream-data"),
        "auto",
    )


def test_environment_sets_every_flag() -> None:
    env = {
        "EVALSTREAM_HOST": "0.0.0.0",
        "EVALSTREAM_PORT": "6001",
        "EVALSTREAM_METRICS_PORT": "-1",
        "EVALSTREAM_DATA_DIR": "/tmp/x",
        "EVALSTREAM_DEVICE": "cpu",
        "EVALSTREAM_MAX_MESSAGE_BYTES": "1024",
        "EVALSTREAM_MAX_CONCURRENT_RPCS": "3",
        "EVALSTREAM_MAX_IMAGES_PER_BATCH": "7",
    }
    c = config.load([], env)
    assert (c.host, c.port, c.metrics_port, c.data_dir, c.device) == (
        "0.0.0.0",
        6001,
        -1,
        Path("/tmp/x"),
        "cpu",
    )
    assert (c.max_message_bytes, c.max_concurrent_rpcs, c.max_images_per_batch) == (1024, 3, 7)


def test_flag_wins_over_environment() -> None:
    assert config.load(["--device", "cuda"], {"EVALSTREAM_DEVICE": "cpu"}).device == "cuda"


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--port", "x"], {}, "--port"),
        ([], {"EVALSTREAM_PORT": "70000"}, "port 70000"),
        (["--device", "tpu"], {}, "device 'tpu'"),
        (["--max-images-per-batch", "0"], {}, "max-images-per-batch"),
        (["--quality-gauges-max-runs", "0"], {}, "quality-gauges-max-runs must be in [1, 1000]"),
        ([], {"EVALSTREAM_QUALITY_GAUGES_MAX_RUNS": "1001"}, "got 1001"),
        (["--quality-gauges-max-runs", "ten"], {}, "--quality-gauges-max-runs"),
        ([], {"EVALSTREAM_QUALITY_GAUGES": "maybe"}, "EVALSTREAM_QUALITY_GAUGES"),
        (["--text-cache-mb", "-1"], {}, "text-cache-mb must be >= 0 (0: no caching), got -1"),
        ([], {"EVALSTREAM_TEXT_CACHE_MB": "1.5"}, "EVALSTREAM_TEXT_CACHE_MB"),
        (["--event-loop", "trio"], {}, "event loop 'trio' is not one of auto, asyncio, uvloop"),
        (["--http-max-in-flight", "0"], {}, "http-max-in-flight must be >= 1, got 0"),
        ([], {"EVALSTREAM_HTTP_MAX_STREAMS": "-1"}, "http-max-streams must be >= 1, got -1"),
    ],
)
def test_bad_values_name_the_setting(
    argv: list[str], env: dict[str, str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        config.load(argv, env)
    assert exit_info.value.code == 2
    assert needle in capsys.readouterr().err


def test_ipv6_address_is_bracketed() -> None:
    assert config.Config(host="::1", port=5).address == "[::1]:5"


def test_quality_gauges_are_off_by_default() -> None:
    c = config.load([], {})
    assert (c.quality_gauges, c.quality_gauges_max_runs) == (False, 50)


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--quality-gauges", "--quality-gauges-max-runs", "1000"], {}),
        ([], {"EVALSTREAM_QUALITY_GAUGES": "on", "EVALSTREAM_QUALITY_GAUGES_MAX_RUNS": "1000"}),
        (["--quality-gauges-max-runs", "1000"], {"EVALSTREAM_QUALITY_GAUGES": "1"}),
    ],
)
def test_quality_gauges_flag_and_environment(argv: list[str], env: dict[str, str]) -> None:
    c = config.load(argv, env)
    assert (c.quality_gauges, c.quality_gauges_max_runs) == (True, config.MAX_QUALITY_GAUGES_RUNS)


def test_quality_gauges_environment_can_turn_them_off() -> None:
    assert config.load([], {"EVALSTREAM_QUALITY_GAUGES": "false"}).quality_gauges is False


def test_text_cache_is_64_mib_per_process_by_default() -> None:
    c = config.load([], {})
    assert (c.text_cache_mb, c.text_cache_bytes) == (64, 64 * 1024 * 1024)


@pytest.mark.parametrize(
    ("argv", "env", "mib"),
    [
        (["--text-cache-mb", "256"], {}, 256),
        ([], {"EVALSTREAM_TEXT_CACHE_MB": "0"}, 0),  # no caching
        (["--text-cache-mb", "8"], {"EVALSTREAM_TEXT_CACHE_MB": "0"}, 8),
    ],
)
def test_text_cache_flag_and_environment(argv: list[str], env: dict[str, str], mib: int) -> None:
    c = config.load(argv, env)
    assert (c.text_cache_mb, c.text_cache_bytes) == (mib, mib << 20)


def test_event_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from evalstream_server.app import new_event_loop

    def kind(name: str) -> str:
        loop = new_event_loop(name)
        try:
            return type(loop).__module__.split(".")[0]
        finally:
            loop.close()

    assert config.load([], {}).event_loop == "auto"
    assert config.load([], {"EVALSTREAM_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    assert kind("asyncio") == "asyncio"
    pytest.importorskip("uvloop")
    assert kind("uvloop") == "uvloop" and kind("auto") == "uvloop"
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed
    assert kind("auto") == "asyncio"
    with pytest.raises(RuntimeError, match="uvloop is not installed"):
        new_event_loop("uvloop")


def test_version_prints_and_exits_before_anything_starts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    from evalstream_server import app

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("--version started the server")

    monkeypatch.setattr(app, "serve", must_not_run)
    with pytest.raises(SystemExit) as info:
        app.main(["--version"])
    assert info.value.code == 0
    expected = f"evalstream-server {importlib.metadata.version('evalstream')}\n"
    assert capsys.readouterr().out == expected


def test_version_without_metadata_is_the_package_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    import evalstream_server

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert config.version() == evalstream_server.__version__


def test_image_root_is_a_flag_and_a_variable(tmp_path: Path) -> None:
    assert config.load([], {}).image_root is None
    assert config.load(["--image-root", str(tmp_path)], {}).image_root == tmp_path
    assert config.load([], {"EVALSTREAM_IMAGE_ROOT": str(tmp_path)}).image_root == tmp_path
    assert "--image-root" in config.parser().format_help()


def test_http_limits_flags_and_environment() -> None:
    assert (config.Config().http_max_in_flight, config.Config().http_max_streams) == (64, 64)
    c = config.load(["--http-max-in-flight", "8"], {"EVALSTREAM_HTTP_MAX_STREAMS": "3"})
    assert (c.http_max_in_flight, c.http_max_streams) == (8, 3)


PG = "postgresql://evalstream:pw-9f2Kx@db.internal:5432/evalstream?sslmode=require"


def test_store_is_sqlite_in_the_data_directory_by_default(tmp_path: Path) -> None:
    c = config.load(["--data-dir", str(tmp_path)], {})
    assert c.store == ""
    assert (c.store_url.backend, c.store_url.path) == ("sqlite", tmp_path / "evalstream.db")


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--store", PG], {}),
        ([], {"EVALSTREAM_STORE": PG}),
        (["--store", PG], {"EVALSTREAM_STORE": "x"}),
    ],
)
def test_store_flag_and_environment(argv: list[str], env: dict[str, str]) -> None:
    c = config.load(argv, env)
    assert str(c.store) == PG  # the URL itself, to connect with
    assert (c.store_url.backend, c.store_url.url) == ("postgresql", PG)


@pytest.mark.parametrize(
    ("url", "path"),
    [("sqlite:///rel/e.db", Path("rel/e.db")), ("sqlite:////abs/e.db", Path("/abs/e.db"))],
)
def test_store_sqlite_urls(url: str, path: Path) -> None:
    assert config.load(["--store", url], {}).store_url.path == path


def test_store_postgres_scheme_is_postgresql_too() -> None:
    url = "postgres://u:pw-9f2Kx@db/e"
    assert config.load(["--store", url], {}).store_url.backend == "postgresql"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:pw-9f2Kx@db/e",
        "db.internal:5432",
        "sqlite://",
        "sqlite:///",
        "postgresql://u:pw-9f2Kx@db:port/e",
    ],
)
def test_bad_store_is_refused_naming_the_flag_and_hiding_the_password(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        config.load(["--store", url], {})
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--store / EVALSTREAM_STORE" in err
    assert "pw-9f2Kx" not in err


def test_store_password_is_not_in_the_config_repr() -> None:
    c = config.load(["--store", PG], {})
    assert "pw-9f2Kx" not in repr(c) and "pw-9f2Kx" not in repr(c.store_url)
    assert "evalstream:***@db.internal:5432/evalstream?sslmode=require" in repr(c)
    assert "pw-9f2Kx" not in str(c.store_url)


def test_store_password_in_the_query_is_hidden_too() -> None:
    c = config.load(["--store", "postgresql:///e?host=/run/pg&password=pw-9f2Kx"], {})
    assert "pw-9f2Kx" not in repr(c) and "password=***" in repr(c)


def test_store_writer_is_refused_beside_postgresql(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config.load(["--store", PG, "--store-writer", "thread"], {})
    err = capsys.readouterr().err
    assert "--store-writer / EVALSTREAM_STORE_WRITER applies to the SQLite store only" in err
    assert "pw-9f2Kx" not in err
    # beside SQLite it stays what it was
    assert config.load(["--store-writer", "thread"], {}).store_writer == "thread"
