"""`routellm serve --cors-origin`: browser chat UIs on the named origins may call the server.

A browser sends an OPTIONS preflight, without the bearer key, before a POST with one; the
preflight must succeed for a named origin and name `authorization` among the allowed headers,
while the POST itself still needs the key. Off by default."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serve_helpers import CLIENT_KEY, Process, start_router_server

ORIGIN = "https://chat.example.com"
PREFLIGHT = {
    "origin": ORIGIN,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type, x-stainless-os",
}
BODY = {"model": "router-task_experts-0.0", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def cors_server(scripted_upstream, tmp_path_factory) -> Iterator[Process]:
    url = scripted_upstream.url
    server = start_router_server(
        ["--strong-base-url", url, "--strong-model", "strong-m", "--weak-base-url", url,
         "--weak-model", "weak-m", "--threshold", "0.5", "--api-key-env", "TEST_CLIENT_KEYS",
         "--cors-origin", ORIGIN, "--cors-origin", "http://localhost:3000"],
        tmp_path_factory.mktemp("cors") / "server.log",
        env={"TEST_CLIENT_KEYS": CLIENT_KEY},
    )  # fmt: skip
    yield server
    server.stop()


def _allowed_headers(response: httpx.Response) -> set[str]:
    value = response.headers.get("access-control-allow-headers", "")
    return {h.strip().lower() for h in value.split(",") if h.strip()}


def test_a_preflight_from_a_named_origin_succeeds_without_a_key(cors_server, upstream):
    response = httpx.options(f"{cors_server.base}/v1/chat/completions", headers=PREFLIGHT)
    assert response.status_code in (200, 204), response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    assert {"authorization", "content-type"} <= _allowed_headers(response)
    other = httpx.options(
        f"{cors_server.base}/v1/models", headers={**PREFLIGHT, "origin": "http://localhost:3000"}
    )
    assert other.status_code in (200, 204)
    assert other.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert upstream.requests() == []


def test_a_post_without_a_key_is_still_refused_and_the_browser_can_read_why(cors_server, upstream):
    url = f"{cors_server.base}/v1/chat/completions"
    refused = httpx.post(url, json=BODY, headers={"origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert refused.json()["error"]["code"] == "invalid_api_key"
    answered = httpx.post(
        url, json=BODY, headers={"origin": ORIGIN, "authorization": f"Bearer {CLIENT_KEY}"}
    )
    assert answered.status_code == 200
    assert answered.headers["access-control-allow-origin"] == ORIGIN
    # The routing headers are readable from the page's script.
    exposed = answered.headers["access-control-expose-headers"].lower()
    assert "x-routellm-side" in exposed and "retry-after" in exposed


def test_an_origin_not_named_gets_no_cors_headers(cors_server):
    response = httpx.options(
        f"{cors_server.base}/v1/chat/completions",
        headers={**PREFLIGHT, "origin": "https://evil.example"},
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_cors_is_off_by_default(router_server):
    response = httpx.options(f"{router_server.base}/v1/chat/completions", headers=PREFLIGHT)
    assert response.status_code == 405
    assert "access-control-allow-origin" not in response.headers
