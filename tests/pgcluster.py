"""A throwaway PostgreSQL from the machine's binaries, for the tests and the benches.

`PgCluster.start` runs initdb into a temporary directory and starts postgres on a
Unix socket in it (no TCP port: nothing else can reach it), as the postgres user
when run as root (PostgreSQL refuses to run as root), else as the current user.
Each test gets a database of its own, copied from a migrated template (CREATE
DATABASE ... TEMPLATE: tens of milliseconds). Without the binaries (or psycopg)
the PostgreSQL tests skip, saying what to install, unless
EVALSTREAM_REQUIRE_POSTGRES=1 (CI), where they fail (tests/conftest.py); the
PostgreSQL bench says what to install and stops.

No pytest here: bench/bench_postgres.py imports this module too.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

PG_INSTALL_HINT = (
    "PostgreSQL's server binaries (initdb, pg_ctl, postgres) were not found: install "
    "Debian's postgresql (apt-get install postgresql) or put its bin directory on PATH; "
    "and psycopg (pip install 'psycopg[binary]' psycopg-pool)"
)
PG_TEMPLATE = "evalstream_template"


def pg_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    candidates += [Path(p) for p in reversed(versions)]
    for directory in candidates:
        if all((directory / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def pg_unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return PG_INSTALL_HINT
    return None if pg_bin_dir() is not None else PG_INSTALL_HINT


class PgCluster:
    """A PostgreSQL cluster in a temporary directory, on a Unix socket there.

    Args:
        fsync: Whether PostgreSQL syncs its WAL and data to disk (fsync and
            full_page_writes). Off for the tests, which check what is acked when, not
            the disk, on a shared machine; on for the benches, whose acks must be
            durable as in production.
        shared_buffers: PostgreSQL's shared_buffers ("64MB").
    """

    def __init__(self, *, fsync: bool = False, shared_buffers: str = "64MB") -> None:
        directory = pg_bin_dir()
        if directory is None:
            raise RuntimeError(PG_INSTALL_HINT)
        self.bin = directory
        self.root = Path(tempfile.mkdtemp(prefix="evalstream-pg-"))
        self.data = self.root / "data"
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.fsync = fsync
        self.shared_buffers = shared_buffers
        self._counter = 0

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
            "--no-sync", "--locale=C.UTF-8",
        )  # fmt: skip
        self._start()
        import psycopg
        from evalstream_server.store.postgres import schema

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {PG_TEMPLATE}")
        with psycopg.connect(self.url(PG_TEMPLATE)) as conn:
            schema.migrate(conn)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@/{database}?host={self.root}"

    def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database (a copy of the migrated template, or empty); its URL."""
        import psycopg

        self._counter += 1
        name = f"t{os.getpid()}_{self._counter}"
        template = PG_TEMPLATE if migrated else "template0"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def checkpoint(self) -> None:
        """Writes every dirty page out now (CHECKPOINT), so that what an earlier
        measurement wrote is not flushed during the next one."""
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute("CHECKPOINT")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        """Stops the server abruptly (as a crash would) and starts it again."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        deadline = time.monotonic() + 30
        while (self.root / ".s.PGSQL.5432").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._start()

    def settings(self, names: tuple[str, ...]) -> dict[str, str]:
        """The running server's settings by name (SHOW), e.g. ``("fsync", "wal_level")``."""
        import psycopg

        found = {}
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            for name in names:
                row = conn.execute(f"SHOW {name}").fetchone()
                if row is None:
                    raise RuntimeError(f"SHOW {name} returned no row")
                found[name] = str(row[0])
        return found

    def pid(self) -> int:
        """The postmaster's process id (its backends are its children)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def _start(self) -> None:
        # On the socket only.
        sync = "on" if self.fsync else "off"
        options = (
            f"-k {self.root} -c listen_addresses='' -c fsync={sync} "
            f"-c full_page_writes={sync} -c max_connections=300 "
            f"-c shared_buffers={self.shared_buffers}"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip
