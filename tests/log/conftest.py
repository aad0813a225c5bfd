"""A real PostgreSQL server for the routing-log tests, started on 127.0.0.1 in a temp folder.

Needs PostgreSQL's server binaries (Debian: ``apt-get install postgresql``; ``.ci/run`` installs
it when missing). A missing or failing server fails the tests that use it; it never skips them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text


def _bin_dir() -> Path:
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).resolve().parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        pytest.fail(
            "PostgreSQL server binaries not found (no pg_ctl on PATH or in /usr/lib/postgresql): "
            "install them (Debian: apt-get install postgresql; .ci/run does this)"
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    """The session's server: its URL, and a restart that drops every connection to it."""

    url: str
    """``postgresql+psycopg://routellm@127.0.0.1:PORT/postgres``."""
    restart: Callable[[], None]
    """Stop the server (fast shutdown: every session is cut) and start it again; returns once
    it accepts connections."""


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for this session."""
    bin_dir = _bin_dir()
    # PostgreSQL refuses to run as root: run it as the 'postgres' user (or nobody) when root.
    user = None
    if os.geteuid() == 0:
        name = "postgres" if _has_user("postgres") else "nobody"
        user = pwd.getpwnam(name)
    root = Path(tempfile.mkdtemp(prefix="routellm-pg-"))
    if user is not None:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, port = root / "data", _free_port()
    as_user = {"user": user.pw_uid, "group": user.pw_gid} if user is not None else {}

    def run(*args: str) -> None:
        done = subprocess.run(args, capture_output=True, text=True, cwd=root, **as_user)
        if done.returncode:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            pytest.fail(f"{args[0]} failed ({done.returncode}): {done.stderr}{done.stdout}{log}")

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "routellm", "--auth=trust", "-E", "UTF8")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root}"
    pg_ctl = [
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(root / "server.log"),
    ]
    run(*pg_ctl, "-w", "start")

    def restart() -> None:
        run(*pg_ctl, "-w", "-m", "fast", "restart")

    try:
        yield PostgresServer(f"postgresql+psycopg://routellm@127.0.0.1:{port}/postgres", restart)
    finally:
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            cwd=root,
            **as_user,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql+psycopg://routellm@127.0.0.1:PORT/postgres`` of the session's server."""
    return postgres_server.url


@pytest.fixture
def postgres_db(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database of its own on the session's server (exact row counts)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    server = create_engine(postgres_server.url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    server.dispose()
    return postgres_server.url.rsplit("/", 1)[0] + "/" + name


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
