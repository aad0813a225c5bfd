"""Every stream `routellm serve` answers ends as OpenAI's do: with exactly one `data: [DONE]`,
after an `error` event when the answer broke off, however the upstream ended its own stream."""

from __future__ import annotations

import json

import httpx
import pytest
from serve_helpers import CLIENT_KEY, sse_data

MESSAGES = [{"role": "user", "content": "Summarise the plot of Hamlet."}]


def _stream(server, model: str = "router-task_experts-0.0") -> list[str]:
    """The data payloads of one streamed answer, read to the end of the body."""
    response = httpx.post(
        f"{server.base}/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, "stream": True},
        headers={"authorization": f"Bearer {CLIENT_KEY}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return sse_data(response.content)


def _content(payloads: list[str]) -> str:
    chunks = [json.loads(p) for p in payloads if p != "[DONE]"]
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )


@pytest.mark.parametrize("script", [{}, {"no_done": True}], ids=["done", "upstream-omits-done"])
def test_a_complete_stream_ends_with_exactly_one_done(router_server, upstream, script):
    upstream.script({"strong-m": [script]})
    payloads = _stream(router_server)
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    assert _content(payloads) == "strong-m: Summarise the plot of Hamlet."


@pytest.mark.parametrize(
    ("scripts", "model", "error_type", "message"),
    [
        (
            {"strong-m": [{"drop_after": 2}]},
            "router-task_experts-0.0",
            "upstream_error",
            "strong upstream broke off its answer",
        ),
        (  # the chosen side fails before its first chunk, the fallback side after content
            {"strong-m": [{"status": 500}], "weak-m": [{"drop_after": 2}]},
            "router-task_experts-0.0",
            "upstream_error",
            "weak upstream broke off its answer",
        ),
        (  # the upstream goes quiet mid-stream for longer than the server's 1 s timeout
            {"weak-m": [{"stall_after": 2}]},
            "router-task_experts-1.0",
            "upstream_timeout",
            "weak upstream timed out mid-answer",
        ),
    ],
    ids=["broken", "fallback-side-broken", "idle-timeout"],
)
def test_a_broken_stream_ends_with_an_error_event_then_one_done(
    router_server, upstream, scripts, model, error_type, message
):
    upstream.script(scripts)
    payloads = _stream(router_server, model)
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    error = json.loads(payloads[-2])["error"]
    assert error["type"] == error_type and message in error["message"]
    assert len(_content(payloads).split(" ")) == 2  # the two chunks sent before it broke
