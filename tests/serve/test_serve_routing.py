"""`routellm serve` routes real requests from the real `openai` client: non-streaming and
streaming answers, model names, forced sides, concurrent clients, and what reaches the log."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import openai
from serve_helpers import STRONG_KEY, WEAK_KEY

PROMPT = "Prove that there are infinitely many primes."


def _routellm(obj: object) -> dict:
    extra = obj.model_extra or {}  # type: ignore[attr-defined]
    assert "routellm" in extra, f"no routellm object in {obj!r}"
    return extra["routellm"]


def test_threshold_in_the_model_name_decides_the_side(client, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="router-task_experts-0.0", messages=[{"role": "user", "content": PROMPT}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == f"strong-m: {PROMPT}"
    decision = _routellm(completion)
    assert decision["side"] == "strong" and decision["model"] == "strong-m"
    assert decision["router"] == "task_experts" and decision["threshold"] == 0.0 and not decision["forced"]
    assert 0.0 <= decision["win_rate"] <= 1.0
    assert raw.headers["x-routellm-side"] == "strong"
    assert raw.headers["x-routellm-model"] == "strong-m"
    assert raw.headers["x-routellm-router"] == "task_experts"
    assert float(raw.headers["x-routellm-threshold"]) == 0.0
    assert float(raw.headers["x-routellm-win-rate"]) == decision["win_rate"]
    assert raw.headers["x-routellm-forced"] == "false"
    assert "x-routellm-fallback-from" not in raw.headers

    weak = client.chat.completions.create(
        model="router-task_experts-1.0", messages=[{"role": "user", "content": PROMPT}]
    )
    assert _routellm(weak)["side"] == "weak"
    assert weak.choices[0].message.content == f"weak-m: {PROMPT}"

    # The upstream got the side's model name and key, and no routing field.
    sent = upstream.requests()
    assert [r["body"]["model"] for r in sent] == ["strong-m", "weak-m"]
    assert [r["authorization"] for r in sent] == [f"Bearer {STRONG_KEY}", f"Bearer {WEAK_KEY}"]
    assert sent[0]["body"]["messages"] == [{"role": "user", "content": PROMPT}]


def test_router_name_alone_uses_the_configured_share(client, upstream, router_server):
    threshold = httpx.get(f"{router_server.base}/health").json()["threshold"]
    prompts = [
        PROMPT,
        "hi",
        "What is 2+2?",
        "Write a haiku about rain.",
        "Derive the Black-Scholes equation.",
    ]
    for prompt in prompts:
        decision = _routellm(
            client.chat.completions.create(
                model="router-task_experts", messages=[{"role": "user", "content": prompt}]
            )
        )
        assert decision["threshold"] == threshold
        assert decision["side"] == ("strong" if decision["win_rate"] >= threshold else "weak")
    assert 0.0 < threshold < 1.0


def test_request_fields_pass_through_to_the_upstream(client, upstream):
    client.chat.completions.create(
        model="router-task_experts-0.0",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}],
        temperature=0.2, max_tokens=17, extra_body={"custom_field": {"a": 1}},
    )  # fmt: skip
    body = upstream.requests()[0]["body"]
    assert (
        body["temperature"] == 0.2 and body["max_tokens"] == 17 and body["custom_field"] == {"a": 1}
    )
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_streaming_carries_the_decision_on_the_first_chunk(client, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="router-task_experts-1.0",
        messages=[{"role": "user", "content": "tell me a story"}],
        stream=True,
    )
    assert raw.headers["x-routellm-side"] == "weak"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "weak-m: tell me a story"
    first = _routellm(chunks[0])
    assert first["side"] == "weak" and first["threshold"] == 1.0
    assert all("routellm" not in (c.model_extra or {}) for c in chunks[1:])
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_stream_chunks_are_passed_on_as_they_arrive(client, upstream):
    upstream.script({"strong-m": [{"chunk_delay": 0.25}]})
    arrivals = []
    start = time.perf_counter()
    for chunk in client.chat.completions.create(
        model="router-task_experts-0.0",
        messages=[{"role": "user", "content": "one two three four"}],
        stream=True,
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() - start)
    assert len(arrivals) == 5  # "strong-m:" and four words
    # Buffered relaying would deliver them together at the end; passed through, they are spaced
    # by the upstream's 0.25 s.
    assert arrivals[-1] - arrivals[0] >= 0.75


def test_forced_side_skips_the_router(client, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model="router-task_experts-0.0",
        messages=[{"role": "user", "content": PROMPT}],
        extra_body={"routellm_force": "weak"},
    )
    decision = _routellm(raw.parse())
    assert decision["side"] == "weak" and decision["forced"] and decision["win_rate"] is None
    assert raw.headers["x-routellm-forced"] == "true" and "x-routellm-win-rate" not in raw.headers
    strong = client.chat.completions.create(
        model="router-task_experts-1.0", messages=[{"role": "user", "content": PROMPT}], extra_body={"routellm_force": "strong"},
        stream=True,
    )  # fmt: skip
    chunks = list(strong)
    assert _routellm(chunks[0])["side"] == "strong"
    assert [r["body"]["model"] for r in upstream.requests()] == ["weak-m", "strong-m"]
    assert all("routellm_force" not in r["body"] for r in upstream.requests())


async def test_concurrent_clients_each_get_their_own_answer(aclient, upstream):
    async def one(i: int) -> tuple[int, str, str]:
        prompt = f"question number {i}"
        if i % 2:
            stream = await aclient.chat.completions.create(
                model="router-task_experts-0.0", messages=[{"role": "user", "content": prompt}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            return i, text, "strong-m"
        completion = await aclient.chat.completions.create(
            model="router-task_experts-1.0", messages=[{"role": "user", "content": prompt}]
        )
        return i, completion.choices[0].message.content, "weak-m"

    results = await asyncio.gather(*(one(i) for i in range(60)))
    for i, text, model in results:
        assert text == f"{model}: question number {i}"
    assert len(upstream.requests()) == 60


def test_models_and_health(client, router_server):
    assert [m.id for m in client.models.list()] == ["router-task_experts"]
    health = httpx.get(f"{router_server.base}/health").json()
    assert health["status"] == "ok" and health["router"] == "task_experts"
    assert health["strong_model"] == "strong-m" and health["weak_model"] == "weak-m"


def test_log_has_requests_but_no_prompt_text(client, upstream, router_server):
    secret = "zebra-quartz-7731 confidential prompt"
    client.chat.completions.create(
        model="router-task_experts-0.0", messages=[{"role": "user", "content": secret}]
    )
    list(client.chat.completions.create(
        model="router-task_experts-0.0", messages=[{"role": "user", "content": secret}], stream=True
    ))  # fmt: skip
    with contextlib.suppress(openai.BadRequestError):
        client.chat.completions.create(
            model="not-routed", messages=[{"role": "user", "content": secret}]
        )
    deadline = time.monotonic() + 5
    while "stream strong" not in router_server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = router_server.log()
    assert "POST /v1/chat/completions 200 strong" in log
    assert "POST /v1/chat/completions 200 stream strong" in log
    assert "POST /v1/chat/completions 400 invalid_request_error" in log
    assert "zebra-quartz" not in log and "confidential" not in log
    assert "Uvicorn running on http://127.0.0.1:" in log  # loopback unless told otherwise
