"""One scripted upstream process and one `routellm serve` process for the whole serve session."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from serve_helpers import (
    CLIENT_KEY,
    STRONG_KEY,
    WEAK_KEY,
    Process,
    ScriptedUpstream,
    start_router_server,
)

MAX_BODY = 64 * 1024
SERVER_TIMEOUT_S = 1.0
SECOND_CLIENT_KEY = "sk-test-second-client-key"


@pytest.fixture(scope="session")
def scripted_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedUpstream]:
    upstream = ScriptedUpstream(tmp_path_factory.mktemp("upstream") / "upstream.log")
    upstream.wait_ready()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="session")
def router_server(
    scripted_upstream: ScriptedUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """Both sides on the scripted upstream (models strong-m and weak-m), with bearer keys, a
    64 KiB body limit, a 1 s upstream timeout, one retry and fallback on."""
    url = scripted_upstream.url
    server = start_router_server(
        [
            "--strong-base-url",
            url,
            "--strong-model",
            "strong-m",
            "--strong-api-key-env",
            "TEST_STRONG_KEY",
            "--weak-base-url",
            url,
            "--weak-model",
            "weak-m",
            "--weak-api-key-env",
            "TEST_WEAK_KEY",
            "--strong-share",
            "0.3",
            "--api-key-env",
            "TEST_CLIENT_KEYS",
            "--max-body-bytes",
            str(MAX_BODY),
            "--timeout",
            str(SERVER_TIMEOUT_S),
            "--max-retries",
            "1",
        ],  # fmt: skip
        tmp_path_factory.mktemp("router") / "server.log",
        env={
            "TEST_STRONG_KEY": STRONG_KEY,
            "TEST_WEAK_KEY": WEAK_KEY,
            "TEST_CLIENT_KEYS": f"{CLIENT_KEY}, {SECOND_CLIENT_KEY}",
        },
    )
    yield server
    server.stop()


@pytest.fixture
def upstream(scripted_upstream: ScriptedUpstream) -> ScriptedUpstream:
    """The scripted upstream with no scripts and an empty log."""
    scripted_upstream.reset()
    return scripted_upstream


@pytest.fixture
def client(router_server: Process) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{router_server.base}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20
    )


@pytest.fixture
def aclient(router_server: Process) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{router_server.base}/v1", api_key=CLIENT_KEY, max_retries=0, timeout=20
    )
