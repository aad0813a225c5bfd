"""`routellm serve` refuses what it should, in OpenAI's error shape: bearer keys, the body size
limit, bad JSON, missing fields and model names that are not routed models."""

from __future__ import annotations

import httpx
import openai
import pytest
from conftest import MAX_BODY, SECOND_CLIENT_KEY
from serve_helpers import CLIENT_KEY

USER = [{"role": "user", "content": "What is 2+2?"}]


def _post(
    server, content: bytes | None = None, json: object = None, key: str | None = CLIENT_KEY
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    if content is not None:
        headers["content-type"] = "application/json"
    return httpx.post(
        f"{server.base}/v1/chat/completions",
        content=content,
        json=json,
        headers=headers,
        timeout=20,
    )


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# -- auth ---------------------------------------------------------------------------------------


def test_a_missing_or_wrong_key_is_a_401(router_server, upstream):
    base = f"{router_server.base}/v1"
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        openai.OpenAI(base_url=base, api_key="sk-wrong", max_retries=0).chat.completions.create(
            model="router-task_experts", messages=USER
        )
    error = _error(
        _post(router_server, json={"model": "router-task_experts", "messages": USER}, key=None), 401
    )
    assert "missing API key" in error["message"] and error["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base, api_key="sk-wrong", max_retries=0).models.list()
    assert upstream.requests() == []  # refused before any upstream call


def test_every_configured_key_is_accepted_and_health_needs_none(router_server, upstream):
    second = openai.OpenAI(
        base_url=f"{router_server.base}/v1", api_key=SECOND_CLIENT_KEY, max_retries=0
    )
    assert (
        second.chat.completions.create(model="router-task_experts-0.0", messages=USER)
        .choices[0]
        .message.content
    )
    assert httpx.get(f"{router_server.base}/health").status_code == 200


# -- size limit ---------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_a_413(client, router_server, upstream):
    big = [{"role": "user", "content": "x" * MAX_BODY}]
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="router-task_experts", messages=big)
    assert info.value.status_code == 413 and str(MAX_BODY) in info.value.body["message"]

    def chunked():  # no content-length: the limit holds while reading
        yield b'{"model": "router-task_experts", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"y" * 1024
        yield b'"}]}'

    error = _error(_post(router_server, content=chunked()), 413)
    assert error["code"] == "request_too_large"
    assert upstream.requests() == []
    # A body just under the limit is served.
    fits = [{"role": "user", "content": "z" * (MAX_BODY - 200)}]
    assert client.chat.completions.create(model="router-task_experts-0.0", messages=fits).choices


# -- bad requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"model": "router-task_experts"}', "missing required field 'messages'"),
        (b'{"model": "router-task_experts", "messages": []}', "non-empty list"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "missing required field 'model'"),
        (b'{"model": "router-task_experts", "messages": ["hi"]}', "messages[0] must be an object"),
        (
            b'{"model": "router-task_experts", "messages": [{"role": "user", "content": 5}]}',
            "messages[0].content",
        ),
        (
            b'{"model": "router-task_experts", "stream": "yes", "messages": [{"role": "user", "content": "hi"}]}',
            "'stream'",
        ),
    ],
)
def test_malformed_requests_are_a_400(router_server, upstream, content, message):
    error = _error(_post(router_server, content=content), 400)
    assert message in error["message"] and error["type"] == "invalid_request_error"
    assert upstream.requests() == []


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("gpt-4o", "'gpt-4o' is not a routed model: use 'router-task_experts'"),
        ("router-bert", "names a router this server does not serve"),
        ("router-task_experts-1.5", "must be a number in [0, 1], got '1.5'"),
        ("router-task_experts-abc", "must be a number in [0, 1], got 'abc'"),
        ("router-task_experts-nan", "must be a number in [0, 1], got 'nan'"),
    ],
)
def test_a_model_that_is_not_routed_is_a_400(client, upstream, model, message):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=USER)
    assert message in info.value.body["message"] and info.value.body["param"] == "model"
    assert info.value.body["code"] == ("invalid_value" if "must be a number" in message else "model_not_found")
    assert upstream.requests() == []  # refused, never passed through


def test_the_refusal_suggests_a_threshold_that_fits_the_router(client, upstream):
    # The example must be the server's own calibrated threshold, not another router's (0.116 is mf's).
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    suggested = float(info.value.body["message"].rsplit("router-task_experts-", 1)[1].rstrip("'"))
    served = client.chat.completions.with_raw_response.create(model="router-task_experts", messages=USER)
    assert suggested == pytest.approx(float(served.headers["x-routellm-threshold"]), abs=5e-4)


def test_a_conversation_with_nothing_to_route_on_is_a_400(client, upstream):
    # A system-only conversation routes on its system text (issue 11); one with neither is refused.
    with pytest.raises(openai.BadRequestError, match="no user turn and no system text"):
        client.chat.completions.create(
            model="router-task_experts", messages=[{"role": "assistant", "content": "Hello."}]
        )
    image_only = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}
    ]
    with pytest.raises(openai.BadRequestError, match="no text to route on"):
        client.chat.completions.create(model="router-task_experts", messages=image_only)
    with pytest.raises(
        openai.BadRequestError, match="'routellm_force' must be 'strong', 'weak' or null"
    ):
        client.chat.completions.create(
            model="router-task_experts", messages=USER, extra_body={"routellm_force": "medium"}
        )
    assert upstream.requests() == []


def test_tool_call_turns_without_content_are_routed(client, upstream):
    messages = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": "And tomorrow?"},
    ]  # fmt: skip
    completion = client.chat.completions.create(model="router-task_experts-0.0", messages=messages)
    assert completion.choices[0].message.content == "strong-m: And tomorrow?"
    assert upstream.requests()[0]["body"]["messages"] == messages


def test_unknown_paths_and_methods_answer_in_openai_shape(router_server):
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    assert (
        "/v1/completions"
        in _error(httpx.post(f"{router_server.base}/v1/completions", headers=headers), 404)[
            "message"
        ]
    )
    _error(httpx.get(f"{router_server.base}/v1/chat/completions", headers=headers), 405)


def test_an_unknown_routellm_field_is_a_400_not_sent_upstream(router_server, upstream):
    body = {"model": "router-task_experts", "messages": USER, "routellm_forse": "strong"}
    error = _error(_post(router_server, json=body), 400)
    assert error["param"] == "routellm_forse"
    assert "unknown field 'routellm_forse'" in error["message"]
    assert "['routellm_force']" in error["message"]
    assert upstream.requests() == []  # refused, never passed through
