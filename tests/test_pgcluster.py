"""tests/pgcluster.py: the throwaway PostgreSQL that the tests and the benches start."""

from __future__ import annotations

import pytest

from tests.conftest import PgCluster as ReExported
from tests.conftest import pg_skip_or_fail
from tests.pgcluster import PgCluster

SETTINGS = ("fsync", "full_page_writes", "synchronous_commit", "shared_buffers")


def test_conftest_re_exports_the_cluster() -> None:
    assert ReExported is PgCluster


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"fsync": "off", "full_page_writes": "off", "shared_buffers": "64MB"}),
        (
            {"fsync": True, "shared_buffers": "128MB"},
            {"fsync": "on", "full_page_writes": "on", "shared_buffers": "128MB"},
        ),
    ],
)
def test_cluster_settings(options: dict[str, object], expected: dict[str, str]) -> None:
    pg_skip_or_fail()
    cluster = PgCluster(**options)  # type: ignore[arg-type]
    try:
        cluster.start()
        settings = cluster.settings(SETTINGS)
        assert cluster.pid() > 0
    finally:
        cluster.stop()
    # Acks wait for the WAL on both (synchronous_commit is PostgreSQL's default).
    assert settings == {**expected, "synchronous_commit": "on"}
