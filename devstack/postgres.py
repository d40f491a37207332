"""A throw-away PostgreSQL cluster on 127.0.0.1, run as the `postgres` user when we are root
(PostgreSQL refuses to run as root). With `tls=True` it serves TLS only (plain TCP is rejected) with a
certificate from its own local CA (`ca_file`), for clients connecting with `verify-full`."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from devstack.certificates import LocalCertificateAuthority
from devstack.processes import free_port, wait_for_port

DATABASE = "sensors"


def server_bin_dir() -> Path:
    """Newest installed server version (`make postgres` installs one with apt when missing)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found: run `make postgres` (apt-get install postgresql)")
    return Path(candidates[-1]).parent


class PostgresServer:
    """`start()` initializes a cluster in a new directory; `stop()`/`start()` keep its data."""

    def __init__(self, data_root: Path | None = None, port: int | None = None, extra_conf: str = "", *,
                 tls: bool = False) -> None:
        self.bin = server_bin_dir()
        self.tls = tls
        self.port = port or free_port()
        self.root = data_root or Path(tempfile.mkdtemp(prefix="sensor-pg-"))
        self.data_dir = self.root / "data"
        self.as_postgres = os.geteuid() == 0
        self._initialized = (self.data_dir / "PG_VERSION").exists()
        self.extra_conf = extra_conf  # more postgresql.conf lines, written at initdb

    @property
    def ca_file(self) -> Path:
        """The local CA that signed the server certificate (`SENSOR_DB_SSL_ROOT_CERT`), with `tls=True`."""
        return self.root / "tls" / "ca.pem"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A server binary (initdb, pg_ctl, psql, pg_basebackup...) as the cluster's owner."""
        return self._run(*args, check=check)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def _initialize(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_postgres:
            account = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o755)
            os.chown(self.root, account.pw_uid, account.pw_gid)
            # Parents of a mkdtemp directory are world-traversable (/tmp); others may not be.
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                "\nfsync = on\nsynchronous_commit = on\nmax_connections = 200\n"
                "shared_buffers = 256MB\nunix_socket_directories = ''\n" + self.extra_conf
            )
        self._initialized = True

    def _configure_tls(self) -> None:
        """Server certificate for 127.0.0.1/localhost from a fresh local CA; TLS only from then on."""
        owner = None
        if self.as_postgres:
            account = pwd.getpwnam("postgres")
            owner = (account.pw_uid, account.pw_gid)
        authority = LocalCertificateAuthority(self.root / "tls")
        server = authority.issue(("127.0.0.1", "localhost"), owner=owner)
        if owner is not None:
            os.chown(self.root / "tls", *owner)
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(f"\nssl = on\nssl_cert_file = '{server.certificate}'\nssl_key_file = '{server.key}'\n"
                       "ssl_min_protocol_version = 'TLSv1.2'\n")
        # Like RDS with rds.force_ssl=1: a connection without TLS is refused.
        (self.data_dir / "pg_hba.conf").write_text(
            "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n"
        )

    def start(self) -> PostgresServer:
        if not self._initialized:
            self._initialize()
        if self.tls and not self.ca_file.exists():
            self._configure_tls()
        self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"),
            "-o", f"-p {self.port} -h 127.0.0.1", "-w", "-t", "60", "start",
        )
        wait_for_port(self.port, timeout=30)
        self.ensure_database()
        return self

    def ensure_database(self) -> None:
        """Create the service's database unless it exists (an error saying it exists is fine)."""
        self.psql(f"CREATE DATABASE {DATABASE}", database="postgres", check=False)

    def psql(self, sql: str, *, database: str = DATABASE, check: bool = True) -> str:
        """`sql` run by psql as the cluster's owner over TCP (TLS when the cluster requires it); its
        unaligned, tuples-only output."""
        target = f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"
        if self.tls:
            target += " sslmode=require"
        return self._run("psql", "-At", "-d", target, "-c", sql, check=check).stdout

    def stop(self, mode: str = "fast") -> None:
        """`fast` (clean) or `immediate` (like a crash: no checkpoint)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
