"""A throwaway PostgreSQL cluster in a temp dir, from Debian's ``postgresql`` package.

    pg = Postgres.create(Path(tempfile.mkdtemp()))   # initdb, TLS, start, roles, database
    pg.url("api")                                    # postgresql://ai_data_agent_api:...@127.0.0.1:PORT/ai_data_agent
    pg.stop(); pg.start()                            # for outages
    pg.destroy()

It listens on 127.0.0.1 on a free port with TLS (a CA and server certificate
made here) and SCRAM passwords, plus a unix socket in its own directory for
the superuser. As root, it runs as the ``postgres`` user (initdb refuses
root). ``fsync`` is off: this cluster holds nothing worth a disk flush. The
roles and database come from deploy/cluster/init-db.sql, the file operators run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
INIT_SQL = REPO / "deploy" / "cluster" / "init-db.sql"
PASSWORDS = {"api": "api-secret-for-tests", "worker": "worker-secret-for-tests"}
ROLES = {"api": "ai_data_agent_api", "worker": "ai_data_agent_worker"}
DATABASE = "ai_data_agent"


def pg_bin(name: str) -> str:
    """A PostgreSQL server program: on PATH, else Debian's newest version directory."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if versions and (versions[-1] / name).exists():
        return str(versions[-1] / name)
    raise RuntimeError(
        f"{name} not found: apt-get install postgresql (scripts/install-postgres.sh)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """Run a PostgreSQL program as postgres (when root), from /: a clone in a private
    directory is neither a working directory it can enter nor files it can read."""
    command = ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv
    return subprocess.run(command, cwd="/", **kwargs)


@dataclass
class Postgres:
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def ca(self) -> Path:
        return self.root / "ca.crt"

    @classmethod
    def create(cls, root: Path, *, durable: bool = False) -> Postgres:
        """``durable``: fsync on, as a real deployment runs (the benchmark wants that)."""
        pg = cls(root, free_port())
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        root.chmod(0o755)
        _as_postgres(
            [
                pg_bin("initdb"),
                "-D",
                str(pg.data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        pg._tls()
        with (pg.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {pg.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\n"
                + ("" if durable else "fsync = off\nfull_page_writes = off\n")
                + "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                "max_connections = 200\nshared_buffers = 64MB\n"
            )
        pg.start()
        pg.psql(
            [
                "-v",
                f"api_password={PASSWORDS['api']}",
                "-v",
                f"worker_password={PASSWORDS['worker']}",
                "-f",
                "-",
            ],
            # On stdin: psql runs as postgres, which cannot read a clone in a private directory.
            script=INIT_SQL.read_text(),
        )
        return pg

    def _tls(self) -> None:
        """A CA and a server certificate for 127.0.0.1 (verify-full works)."""
        key, crt = self.data / "server.key", self.data / "server.crt"
        ca_key = self.root / "ca.key"
        run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True)  # noqa: E731
        run(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=ai-data-agent test CA",
            "-keyout",
            str(ca_key),
            "-out",
            str(self.ca),
        )
        csr = self.root / "server.csr"
        run(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        )
        ext = self.root / "san.ext"
        ext.write_text("subjectAltName = IP:127.0.0.1\n")
        run(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(self.ca),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            str(ext),
            "-out",
            str(crt),
        )
        if os.geteuid() == 0:
            for path in (key, crt):
                shutil.chown(path, "postgres", "postgres")
        key.chmod(0o600)
        self.ca.chmod(0o644)

    def start(self) -> None:
        _as_postgres(
            [
                pg_bin("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=90,
        )

    def stop(self, mode: str = "fast") -> None:
        _as_postgres(
            [pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
            capture_output=True,
            timeout=90,
        )

    def psql(self, args: list[str], database: str = "postgres", script: str | None = None) -> str:
        done = _as_postgres(
            [
                pg_bin("psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.root),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                *args,
            ],
            input=script,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout

    def create_database(self, name: str) -> None:
        """Another database owned by the API role (a clean slate for one test)."""
        self.psql(["-c", f"CREATE DATABASE {name} OWNER ai_data_agent_api"])
        self.psql(["-c", f"GRANT CONNECT ON DATABASE {name} TO ai_data_agent_worker"])

    def url(self, role: str, database: str = DATABASE, *, password: bool = True) -> str:
        secret = f":{PASSWORDS[role]}" if password else ""
        return f"postgresql://{ROLES[role]}{secret}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        try:
            return (self.root / "log").read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
