"""`routellm serve` when upstreams fail: bounded retries, fallback before the first chunk, the
most informative upstream status (429 with its Retry-After, 401, 404, 503; 502 and 504), errors
passed on, failures mid-stream, clients that disconnect, and bounded waits on upstreams that
never read the request or have no free pooled connection."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from conftest import SERVER_TIMEOUT_S
from serve_helpers import NeverReads, free_port, start_router_server

MESSAGES = [{"role": "user", "content": "Summarise the plot of Hamlet."}]


def _routellm(obj: object) -> dict:
    return (obj.model_extra or {})["routellm"]  # type: ignore[attr-defined]


def _models(upstream) -> list[str]:
    return [r["body"]["model"] for r in upstream.requests()]


def test_a_transient_error_is_retried_on_the_same_side(client, upstream):
    upstream.script({"strong-m": [{"status": 503, "retry_after": 0}, {}]})
    completion = client.chat.completions.create(model="router-task_experts-0.0", messages=MESSAGES)
    assert (
        _routellm(completion)["side"] == "strong" and _routellm(completion)["fallback_from"] is None
    )
    assert _models(upstream) == ["strong-m", "strong-m"]


def test_failing_side_falls_back_to_the_other(client, upstream):
    upstream.script({"strong-m": [{"status": 500}]})
    raw = client.chat.completions.with_raw_response.create(
        model="router-task_experts-0.0", messages=MESSAGES
    )
    completion = raw.parse()
    decision = _routellm(completion)
    assert decision["side"] == "weak" and decision["model"] == "weak-m"
    assert decision["fallback_from"] == "strong" and "500" in decision["fallback_reason"]
    assert completion.choices[0].message.content.startswith("weak-m: ")
    assert (
        raw.headers["x-routellm-fallback-from"] == "strong"
        and raw.headers["x-routellm-side"] == "weak"
    )
    assert _models(upstream) == ["strong-m", "strong-m", "weak-m"]  # one retry, then the other side


@pytest.mark.parametrize(
    "failure",
    [{"error_event": True}, {"drop_after": 0}, {"json_for_stream": True}, {"status": 502}],
)
def test_stream_falls_back_before_its_first_chunk(client, upstream, failure):
    upstream.script({"weak-m": [failure]})
    chunks = list(
        client.chat.completions.create(
            model="router-task_experts-1.0", messages=MESSAGES, stream=True
        )
    )
    decision = _routellm(chunks[0])
    assert decision["side"] == "strong" and decision["fallback_from"] == "weak"
    assert "".join(c.choices[0].delta.content or "" for c in chunks).startswith("strong-m: ")
    assert _models(upstream)[-1] == "strong-m"


def test_a_stream_broken_after_its_first_chunk_ends_with_an_error(client, upstream):
    upstream.script({"strong-m": [{"drop_after": 2}]})
    stream = client.chat.completions.create(
        model="router-task_experts-0.0", messages=MESSAGES, stream=True
    )
    received = []
    with pytest.raises(openai.APIError, match="strong upstream broke off its answer"):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["strong-m:", " Summarise"]  # what was sent stays sent: no fallback
    assert _models(upstream) == ["strong-m"]


def test_both_sides_failing_is_a_502(client, upstream):
    upstream.script({"strong-m": [{"status": 503}], "weak-m": [{"status": 500}]})
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="router-task_experts-0.0", messages=MESSAGES)
    error = info.value
    assert error.status_code == 502
    assert error.body["type"] == "upstream_error"
    assert (
        "strong upstream answered 503" in error.message
        and "weak upstream answered 500" in error.message
    )
    assert error.response.headers["x-routellm-fallback-from"] == "strong"
    assert _models(upstream) == ["strong-m", "strong-m", "weak-m", "weak-m"]


def test_unreachable_upstream_is_a_502(tmp_path):

    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    server = start_router_server(
        ["--strong-base-url", dead, "--strong-model", "s", "--weak-base-url", dead, "--weak-model", "w",
         "--threshold", "0.5", "--max-retries", "0", "--no-fallback"],
        tmp_path / "server.log",
    )  # fmt: skip
    try:
        client = openai.OpenAI(base_url=f"{server.base}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="router-task_experts", messages=MESSAGES)
        assert info.value.status_code == 502
        assert "unreachable (ClientConnectorError" in info.value.message
        assert info.value.body["message"].startswith(
            "the upstream failed: strong"
        )  # no fallback: one side tried
    finally:
        server.stop()


def test_timeouts_on_both_sides_are_a_504(client, upstream):
    slow = [{"delay": SERVER_TIMEOUT_S + 2}]
    upstream.script({"strong-m": slow, "weak-m": slow})
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="router-task_experts-0.0", messages=MESSAGES)
    assert info.value.status_code == 504 and info.value.body["type"] == "upstream_timeout"
    assert "timed out" in info.value.message
    assert _models(upstream) == ["strong-m", "weak-m"]  # one request each: no retry of a timeout


def test_an_upstream_refusing_the_request_is_passed_on_without_fallback(client, upstream):
    upstream.script({"strong-m": [{"status": 400}]})
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="router-task_experts-0.0", messages=MESSAGES)
    assert "strong upstream refused the request: scripted 400" in info.value.message
    assert info.value.response.headers["x-routellm-side"] == "strong"
    assert _models(upstream) == ["strong-m"]


def _wait_for_event(upstream, event: str, timeout: float = 60.0) -> list[dict]:
    """The upstream's events once one is ``event`` or ``"completed"`` (whichever comes first
    decides the test), or after ``timeout`` seconds, a guard against a hang."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = upstream.events()
        if any(e["event"] in (event, "completed") for e in events):
            return events
        time.sleep(0.05)
    return upstream.events()


def test_a_client_leaving_a_stream_cancels_the_upstream_request(client, upstream):
    upstream.script({"strong-m": [{"chunk_delay": 0.2}]})
    words = " ".join(f"w{i}" for i in range(150))  # 30 s of streaming if nobody stopped it
    stream = client.chat.completions.create(
        model="router-task_experts-0.0", messages=[{"role": "user", "content": words}], stream=True
    )
    first = next(iter(stream))
    assert first.choices[0].delta.content == "strong-m:"
    stream.close()
    events = _wait_for_event(upstream, "disconnected")
    assert [e["event"] for e in events] == ["disconnected"]  # not "completed"


def test_a_client_leaving_before_the_answer_cancels_the_upstream_request(upstream, tmp_path):
    # A server of its own with a long upstream timeout, so that only the client's leaving can end
    # the upstream request before its 30 s answer (the shared server's 1 s timeout would too).
    url = upstream.url
    server = start_router_server(
        ["--strong-base-url", url, "--strong-model", "strong-m", "--weak-base-url", url,
         "--weak-model", "weak-m", "--timeout", "60"],
        tmp_path / "server.log",
    )  # fmt: skip
    try:
        upstream.script({"strong-m": [{"delay": 30}]})
        impatient = openai.OpenAI(
            base_url=f"{server.base}/v1", api_key="unused", max_retries=0, timeout=0.3
        )
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(model="router-task_experts-0.0", messages=MESSAGES)
        events = _wait_for_event(upstream, "disconnected")
    finally:
        server.stop()
    assert [e["event"] for e in events] == ["disconnected"]  # not "completed"
    assert _models(upstream) == ["strong-m"]  # cancelled, not retried or fallen back


def test_an_answer_that_is_not_json_falls_back(client, upstream):
    upstream.script({"strong-m": [{"not_json": True}]})
    completion = client.chat.completions.create(model="router-task_experts-0.0", messages=MESSAGES)
    decision = _routellm(completion)
    assert decision["side"] == "weak" and decision["fallback_from"] == "strong"
    assert "not a JSON object" in decision["fallback_reason"]


# -- upstream statuses keep their meaning -------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_every_side_rate_limited_is_a_429_with_the_upstreams_retry_after(client, upstream, stream):
    # Each side: a 429 asking for an immediate retry, then a 429 asking for 7 s (the shared
    # server retries once), so the client is told the upstream's last word.
    limited = [{"status": 429, "retry_after": 0}, {"status": 429, "retry_after": 7}]
    upstream.script({"strong-m": limited, "weak-m": limited})
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(
            model="router-task_experts-0.0", messages=MESSAGES, stream=stream
        )
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    assert "strong upstream answered 429" in info.value.message
    assert "weak upstream answered 429" in info.value.message
    assert _models(upstream) == ["strong-m", "strong-m", "weak-m", "weak-m"]


@pytest.mark.parametrize(
    ("strong", "weak", "status"),
    [
        (401, 401, 401),  # the server's upstream keys are refused on both sides
        (404, 404, 404),  # neither side knows its model name
        (503, 503, 503),  # both overloaded
        (429, 500, 429),  # one side only rate-limited: worth retrying later
        (404, 401, 404),  # every side refused with a 4xx: the routed side's
        (500, 500, 502),  # an upstream's own 500 is a bad gateway here, never a bare 500
        (503, 500, 502),
        # The side fallen back to refusing the request is one more failure, not the answer.
        (404, 400, 404),  # every side a 4xx: the routed side's
        (500, 400, 502),
    ],
)
def test_the_client_sees_the_most_informative_upstream_status(
    client, upstream, strong, weak, status
):
    upstream.script({"strong-m": [{"status": strong}], "weak-m": [{"status": weak}]})
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="router-task_experts-0.0", messages=MESSAGES)
    assert info.value.status_code == status
    body = info.value.body
    assert set(body) == {"message", "type", "param", "code"}
    assert f"strong upstream answered {strong}" in body["message"]
    assert f"weak upstream answered {weak}" in body["message"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_refusal_by_the_side_fallen_back_to_names_both_failures(client, upstream, stream):
    # Routed weak, which fails with its own 500; strong, fallen back to, refuses the request.
    # The client is told of both, with a 502: not the strong side's 400 alone, as if the
    # request were at fault and the routed side had never been tried.
    upstream.script({"weak-m": [{"status": 500}], "strong-m": [{"status": 400}]})
    response = httpx.post(
        f"{client.base_url}chat/completions",
        json={"model": "router-task_experts-1.0", "messages": MESSAGES, "stream": stream},
        headers={"authorization": f"Bearer {client.api_key}"},
        timeout=20,
    )
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["type"] == "upstream_error"
    assert error["message"] == (
        "every upstream tried failed: weak upstream answered 500: scripted 500; "
        "strong upstream answered 400: scripted 400"
    )
    assert response.headers["x-routellm-fallback-from"] == "weak"
    assert _models(upstream) == ["weak-m", "weak-m", "strong-m"]  # one retry, then strong


# -- every wait is bounded ----------------------------------------------------------------------


def test_a_body_the_upstream_never_reads_is_bounded_by_the_timeout(tmp_path):
    # 8 MiB of request fields to an upstream that accepts the connection and never reads: the
    # socket buffers fill and the write waits. It must end at --timeout, not hang.
    hole = NeverReads()
    server = start_router_server(
        ["--strong-base-url", hole.url, "--strong-model", "s", "--weak-base-url", hole.url,
         "--weak-model", "w", "--threshold", "0.5", "--timeout", "1", "--max-retries", "0",
         "--no-fallback", "--max-body-bytes", str(16 << 20)],
        tmp_path / "server.log",
    )  # fmt: skip
    try:
        response = httpx.post(
            f"{server.base}/v1/chat/completions",
            json={
                "model": "router-task_experts",
                "messages": MESSAGES,
                "routellm_force": "strong",
                "user": "x" * (8 << 20),
            },  # fmt: skip
            timeout=60,
        )
    finally:
        server.stop()
        hole.close()
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert error["type"] == "upstream_timeout"
    assert "strong upstream timed out sending the request" in error["message"]


def test_a_request_waiting_for_a_pooled_connection_is_bounded(upstream, tmp_path):
    # One pooled connection per side, held by a slow stream (0.5 s a chunk, 200 chunks): a
    # second request to that side must not wait for it to end.
    url = upstream.url
    server = start_router_server(
        ["--strong-base-url", url, "--strong-model", "strong-m", "--weak-base-url", url,
         "--weak-model", "weak-m", "--threshold", "0.5", "--timeout", "2", "--max-retries", "0",
         "--no-fallback", "--max-connections", "1"],
        tmp_path / "server.log",
    )  # fmt: skip
    words = " ".join(f"w{i}" for i in range(200))
    upstream.script({"strong-m": [{"chunk_delay": 0.5}, {}]})
    strong = {"model": "router-task_experts", "routellm_force": "strong", "stream": True}
    try:
        with (
            httpx.Client(base_url=server.base, timeout=60) as http,
            http.stream(
                "POST",
                "/v1/chat/completions",
                json={**strong, "messages": [{"role": "user", "content": words}]},
            ) as slow,
        ):
            assert slow.status_code == 200
            relayed = slow.iter_bytes()  # kept: a dropped iterator closes the stream
            next(relayed)  # the stream holds the strong side's one connection
            waiting = http.post(
                "/v1/chat/completions", json={**strong, "messages": MESSAGES, "stream": False}
            )
    finally:
        server.stop()
    assert waiting.status_code == 503, waiting.text
    error = waiting.json()["error"]
    assert error["type"] == "upstream_busy" and error["code"] == "upstream_busy"
    assert "strong upstream had no free connection" in error["message"]
    assert "--max-connections" in error["message"]


def test_a_connection_that_carried_a_long_body_serves_the_next_request(client, upstream):
    # A body over 16 KiB is written under a time bound. The bound must leave nothing armed on
    # the pooled connection: the next request on it, after the shared server's 1 s read
    # timeout has passed, is answered by the same side, not failed over.
    long = [{"role": "user", "content": "x " * 20_000}]
    strong = {"routellm_force": "strong"}
    client.chat.completions.create(model="router-task_experts", messages=long, extra_body=strong)
    time.sleep(SERVER_TIMEOUT_S + 0.5)  # a read timeout armed by mistake would fire now
    completion = client.chat.completions.create(
        model="router-task_experts", messages=MESSAGES, extra_body=strong
    )
    assert _routellm(completion)["fallback_from"] is None
    assert _models(upstream) == ["strong-m", "strong-m"]
