"""A throwaway PostgreSQL cluster for tests, made with Debian's server binaries on a free port.

Nothing is started until a test asks for an address: requesting the fixture costs nothing, so
suites that never touch PostgreSQL never pay the ~2 s of initdb + start.
"""

from __future__ import annotations

import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.harness.common import HarnessError, free_port, give_to, service_account
from tools.kit.procs import tail

_BIN_ROOT = Path("/usr/lib/postgresql")
_DATABASE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_COMMAND_TIMEOUT = 60.0


def find_postgres_bin() -> Path:
    """Directory of the highest installed PostgreSQL major version's server binaries."""
    candidates = [
        path.parent
        for path in _BIN_ROOT.glob("*/bin/initdb")
        if path.parent.parent.name.isdigit() and (path.parent / "pg_ctl").exists()
    ]
    if not candidates:
        raise HarnessError(
            f"PostgreSQL server binaries not found (no {_BIN_ROOT}/<version>/bin/initdb); "
            "run `make system-deps` (Debian package `postgresql`) and try again"
        )
    return max(candidates, key=lambda path: int(path.parent.name))


class PostgresCluster:
    """A private cluster: trust authentication, superuser `postgres`, loopback only, fsync off."""

    def __init__(self, host: str = "127.0.0.1", *, also_listen: str | None = None) -> None:
        """`also_listen`: a second address to listen on, for clients `allow_password` lets in
        (pods on the local Kubernetes node reach the host at its interface address)."""
        self._host = host
        self._also_listen = also_listen
        self._port = 0
        self._bin: Path | None = None
        self._account: pwd.struct_passwd | None = None
        self._directory: Path | None = None
        self._started = False

    @property
    def host(self) -> str:
        """Address the server listens on (starts the cluster on first use)."""
        self._ensure_started()
        return self._host

    @property
    def port(self) -> int:
        """Port the server listens on (starts the cluster on first use)."""
        self._ensure_started()
        return self._port

    def dsn(self, database: str = "postgres") -> str:
        """`postgres://postgres@127.0.0.1:PORT/<database>` (starts the cluster on first use)."""
        _check_database_name(database)
        return f"postgres://postgres@{self.host}:{self.port}/{database}"

    def allow_password(self, cidr: str) -> str:
        """Let clients from `cidr` in as `postgres` with a password (SCRAM), which is made
        here; the DSN they use, on the `also_listen` address."""
        if self._also_listen is None:
            raise HarnessError("allow_password needs a cluster made with also_listen")
        password = secrets.token_hex(16)
        self._psql(f"ALTER ROLE postgres PASSWORD '{password}'")
        hba = self._data / "pg_hba.conf"
        with hba.open("a", encoding="utf-8") as out:
            out.write(f"host all postgres {cidr} scram-sha-256\n")
        self._psql("SELECT pg_reload_conf()")
        return f"postgres://postgres:{password}@{self._also_listen}:{self._port}"

    @property
    def _listen(self) -> str:
        return self._host if self._also_listen is None else f"{self._host},{self._also_listen}"

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create database `name` (a copy of database `template` if given); return its DSN."""
        _check_database_name(name)
        copy = ""
        if template is not None:
            _check_database_name(template)
            copy = f' TEMPLATE "{template}"'
        self._psql(f'CREATE DATABASE "{name}"{copy}')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name`, disconnecting anyone still using it; no error if it is gone."""
        _check_database_name(name)
        self._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete the cluster directory."""
        if self._directory is None:
            return
        try:
            # postmaster.pid rather than _started: a start that timed out may still have a server.
            if self._bin is not None and (self._data / "postmaster.pid").exists():
                self._run(
                    [str(self._bin / "pg_ctl"), "-D", str(self._data), "-m", "fast", "-w", "stop"],
                    what="pg_ctl stop",
                    check=False,
                )
        finally:
            self._started = False
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    @property
    def _data(self) -> Path:
        assert self._directory is not None
        return self._directory / "data"

    def _ensure_started(self) -> None:
        if self._started:
            return
        self._bin = find_postgres_bin()
        self._account = service_account("postgres")
        # Outside pytest's 0700 tmp tree: as root the server runs as `postgres`, which must own it.
        self._directory = Path(tempfile.mkdtemp(prefix="baetyl-postgres-"))
        give_to(self._account, self._directory)
        self._run(
            [
                str(self._bin / "initdb"),
                "-D", str(self._data),
                "-A", "trust",
                "-U", "postgres",
                "-E", "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            what="initdb",
        )  # fmt: skip
        log_file = self._directory / "server.log"
        for _attempt in range(3):
            self._port = free_port(self._host)
            options = (
                f"-p {self._port} -k {self._directory} -c listen_addresses={self._listen} "
                # Durability is worthless for a throwaway cluster and costs seconds per test run.
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            result = self._run(
                [str(self._bin / "pg_ctl"), "-D", str(self._data), "-o", options,
                 "-l", str(log_file), "-w", "-t", "30", "start"],
                what="pg_ctl start",
                check=False,
            )  # fmt: skip
            if result.returncode == 0:
                self._started = True
                return
            if "already in use" not in tail(log_file, 40):
                break
        output = f"{result.stdout}\n--- server log ---\n{tail(log_file, 40)}"
        self.stop()
        raise HarnessError(f"PostgreSQL did not start (pg_ctl exit {result.returncode}):\n{output}")

    def _psql(self, sql: str) -> None:
        self._ensure_started()
        assert self._bin is not None
        self._run(
            [str(self._bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
             "-h", self._host, "-p", str(self._port), "-U", "postgres", "-d", "postgres",
             "-c", sql],
            what=f"psql -c {sql!r}",
        )  # fmt: skip

    def _run(
        self, command: list[str], *, what: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        try:
            # Output to a pipe is safe here: pg_ctl points the server's output at its log file, so
            # the server does not keep our pipe open after pg_ctl exits.
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=_COMMAND_TIMEOUT,
                cwd=self._directory,  # the server user cannot enter our working directory as root
                user=self._account.pw_uid if self._account else None,
                group=self._account.pw_gid if self._account else None,
                extra_groups=[] if self._account else None,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HarnessError(f"{what} failed: {exc}") from exc
        if check and result.returncode != 0:
            raise HarnessError(
                f"{what} failed with exit code {result.returncode}:\n{result.stdout}"
            )
        return result


def _check_database_name(name: str) -> None:
    if not _DATABASE_NAME_RE.match(name):
        raise ValueError(
            f"database name {name!r} must be 1-63 characters of lower-case letters, digits "
            "and '_', not starting with a digit"
        )
