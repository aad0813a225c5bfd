"""Real server processes on loopback for the serve tests: the scripted upstream and `routellm serve`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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
