"""Real server processes on loopback for the serve tests: the scripted upstream and `routellm serve`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
CLIENT_KEY = "sk-test-client-key"
STRONG_KEY = "sk-test-strong-upstream"
WEAK_KEY = "sk-test-weak-upstream"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child process serving HTTP on 127.0.0.1:``port``; its output goes to ``log_path``."""

    def __init__(
        self, args: list[str], port: int, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.port = port
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"process not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class ScriptedUpstream(Process):
    """tests/serve/scripted_upstream.py in its own process."""

    def __init__(self, log_path: Path) -> None:
        port = free_port()
        super().__init__(
            [sys.executable, str(HERE / "scripted_upstream.py"), "--port", str(port)],
            port,
            log_path,
        )

    @property
    def url(self) -> str:
        return f"{self.base}/v1"

    def script(self, scripts: dict[str, list[dict[str, Any]]]) -> None:
        httpx.post(f"{self.base}/_script", json=scripts).raise_for_status()

    def reset(self) -> None:
        httpx.post(f"{self.base}/_reset").raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.base}/_log").json()["requests"]

    def events(self) -> list[dict[str, Any]]:
        return httpx.get(f"{self.base}/_log").json()["events"]


def start_router_server(
    args: list[str], log_path: Path, env: dict[str, str] | None = None
) -> Process:
    """``routellm serve ARGS --port <free port>`` started and ready."""
    port = free_port()
    server = Process(
        [sys.executable, "-m", "routellm_base", "serve", *args, "--port", str(port)],
        port,
        log_path,
        env,
    )
    server.wait_ready()
    return server


class NeverReads:
    """A TCP listener on 127.0.0.1 that accepts connections and never reads from them: an
    upstream that leaves a request body unread, so the sender's socket buffers fill and its
    write waits. Its receive buffer is made small so a body of a few MiB fills them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited on accept
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def sse_data(body: bytes) -> list[str]:
    """The ``data:`` payloads of a server-sent-event body, in order (one string per event)."""
    payloads = []
    for event in body.replace(b"\r\n", b"\n").split(b"\n\n"):
        lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
        if lines:
            payloads.append(b"\n".join(lines).decode())
    return payloads


def wait_for_rows(
    log: Path, call_ids: list[str], timeout: float = 30.0
) -> dict[str, list[dict[str, Any]]]:
    """The routing log's rows of each call id (a list, so a call recorded twice shows), once
    every id has a row or after ``timeout`` seconds, a guard against waiting forever on a row
    that never comes: the caller's assertions then show what was missing."""
    from sqlalchemy.exc import OperationalError

    from routellm_base.log import read_decisions

    deadline = time.monotonic() + timeout
    while True:
        rows: dict[str, list[dict[str, Any]]] = {i: [] for i in call_ids}
        try:
            stored = read_decisions(log) if log.exists() else []
        except OperationalError:  # the server's writer has not made the tables yet
            stored = []
        for row in stored:
            if row["call_id"] in rows:
                rows[row["call_id"]].append(row)
        if all(rows.values()) or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)
