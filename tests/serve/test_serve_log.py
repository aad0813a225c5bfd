"""`routellm serve --log`: every answered request lands in the routing log, streamed or not, from
several workers, with no prompt text unless asked for; a stream has exactly one row however it
ends (complete, cancelled by the client, broken by the upstream), with its tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from serve_helpers import CLIENT_KEY, Process, start_router_server, wait_for_rows
from stored_values import columns_containing

from routellm_base.log import read_decisions
from routellm_base.tokens import measure_tokens


def test_two_workers_record_every_answered_request_once(scripted_upstream, tmp_path):
    scripted_upstream.reset()
    log = tmp_path / "routing.db"
    url = scripted_upstream.url
    server = start_router_server(
        ["--strong-base-url", url, "--strong-model", "strong-m", "--weak-base-url", url, "--weak-model", "weak-m",
         "--strong-share", "0.3", "--workers", "2", "--api-key-env", "TEST_CLIENT_KEYS", "--log", str(log)],
        tmp_path / "server.log",
        env={"TEST_CLIENT_KEYS": CLIENT_KEY},
    )  # fmt: skip
    sides = []
    try:
        client = openai.OpenAI(base_url=f"{server.base}/v1", api_key=CLIENT_KEY, max_retries=0)
        for i in range(6):
            force = "strong" if i % 2 else "weak"
            messages = [{"role": "user", "content": f"secret question {i}"}]
            if i < 4:
                client.chat.completions.create(
                    model="router-task_experts",
                    messages=messages,
                    extra_body={"routellm_force": force},
                )
            else:
                stream = client.chat.completions.create(
                    model="router-task_experts",
                    messages=messages,
                    stream=True,
                    extra_body={"routellm_force": force},
                )
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            sides.append(force)
        # A refused request is not an answered one: nothing is recorded for it.
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            )
    finally:
        server.stop()  # graceful: each worker drains its queue on shutdown
    rows = read_decisions(log)
    assert len(rows) == 6 and len({r["call_id"] for r in rows}) == 6
    assert sorted(r["side"] for r in rows) == sorted(sides)
    assert {r["model"] for r in rows} == {"strong-m", "weak-m"} and all(r["forced"] for r in rows)
    assert all(r["router"] == "task_experts" and r["checkpoint_id"] for r in rows)
    # Non-streamed answers carry the upstream's usage; the two streams asked for none, so theirs
    # are counted from the texts. The prompt is a hash, never the text.
    assert sorted(r["input_tokens"] for r in rows if r["tokens_estimated"] is False) == [10] * 4
    assert [r["tokens_estimated"] for r in rows].count(True) == 2
    assert all(r["outcome"] == "complete" and r["output_tokens"] for r in rows)
    assert all(r["prompt"] is None and r["prompt_hash"] for r in rows)
    assert columns_containing(log, "secret question") == []  # in no column of any table


# -- streams: one row each, however they end -----------------------------------------------------

QUESTION = "Summarise the plot of Hamlet in one line."


@pytest.fixture(scope="module")
def logged(scripted_upstream, tmp_path_factory) -> Iterator[tuple[Process, Path]]:
    """A server of its own recording to a routing log (1 s upstream timeout, no retries):
    the server and the log's path."""
    folder = tmp_path_factory.mktemp("logged")
    log = folder / "routing.db"
    url = scripted_upstream.url
    server = start_router_server(
        ["--strong-base-url", url, "--strong-model", "strong-m", "--weak-base-url", url,
         "--weak-model", "weak-m", "--strong-share", "0.3", "--timeout", "1", "--max-retries", "0",
         "--log", str(log)],
        folder / "server.log",
    )  # fmt: skip
    yield server, log
    server.stop()


def _client(server: Process) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key="unused", max_retries=0, timeout=30)


def _call_id(chunk: object) -> str:
    return chunk.model_extra["routellm"]["call_id"]  # type: ignore[attr-defined]


def _text(chunks: list) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_streams_the_client_closes_at_done_are_each_logged_once_as_complete(logged, upstream):
    # The openai client closes the response as soon as it reads `data: [DONE]`; here the
    # upstream's end of body comes 0.3 s later, so every close lands before it.
    server, log = logged
    upstream.script({"strong-m": [{"done_gap": 0.3}]})
    client = _client(server)
    call_ids = []
    for i in range(10):
        chunks = list(
            client.chat.completions.create(
                model="router-task_experts-0.0",
                messages=[{"role": "user", "content": f"question {i}"}],
                stream=True,
            )
        )
        assert _text(chunks) == f"strong-m: question {i}"
        call_ids.append(_call_id(chunks[0]))
    rows = wait_for_rows(log, call_ids)
    assert [len(rows[i]) for i in call_ids] == [1] * 10  # exactly one row per answered stream
    assert [rows[i][0]["outcome"] for i in call_ids] == ["complete"] * 10


def test_a_stream_the_client_abandons_is_logged_cancelled_with_the_tokens_so_far(logged, upstream):
    server, log = logged
    upstream.script({"strong-m": [{"chunk_delay": 0.2}]})
    words = " ".join(f"w{i}" for i in range(150))  # 30 s of streaming if nobody stopped it
    stream = _client(server).chat.completions.create(
        model="router-task_experts-0.0", messages=[{"role": "user", "content": words}], stream=True
    )
    first = next(iter(stream))
    stream.close()
    [row] = wait_for_rows(log, [_call_id(first)])[_call_id(first)]
    assert row["outcome"] == "cancelled" and row["side"] == "strong"
    # What was relayed before the client left, counted with cl100k: at least the first chunk,
    # far less than the 150-word answer.
    assert row["tokens_estimated"] is True
    assert 1 <= row["output_tokens"] < measure_tokens(words).tokens
    assert row["input_tokens"] == measure_tokens(words).tokens


def test_a_stream_broken_mid_way_is_logged_broken_with_the_tokens_so_far(logged, upstream):
    server, log = logged
    upstream.script({"strong-m": [{"drop_after": 2}]})
    stream = _client(server).chat.completions.create(
        model="router-task_experts-0.0",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
    )
    received = []
    with pytest.raises(openai.APIError, match="broke off its answer"):
        for chunk in stream:
            received.append(chunk)
    [row] = wait_for_rows(log, [_call_id(received[0])])[_call_id(received[0])]
    assert row["outcome"] == "broken" and row["tokens_estimated"] is True
    assert row["output_tokens"] == measure_tokens(_text(received)).tokens  # "strong-m: Summarise"


def _streamed(server: Any, **options: Any) -> list[Any]:
    """The chunks of one streamed QUESTION, read to the end with the openai client."""
    return list(
        _client(server).chat.completions.create(
            model="router-task_experts-0.0",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            **options,
        )
    )


def test_a_streamed_row_has_the_upstreams_usage_when_asked_for(logged, upstream):
    server, log = logged
    chunks = _streamed(server, stream_options={"include_usage": True})
    usage = chunks[-1].usage  # the scripted upstream: 10 prompt tokens, one per word
    assert (usage.prompt_tokens, usage.completion_tokens) == (10, len(QUESTION.split()) + 1)
    [row] = wait_for_rows(log, [_call_id(chunks[0])])[_call_id(chunks[0])]
    assert (row["input_tokens"], row["output_tokens"]) == (10, usage.completion_tokens)
    assert row["tokens_estimated"] is False and row["outcome"] == "complete"


def test_a_streamed_row_without_usage_has_estimated_tokens(logged, upstream):
    server, log = logged
    chunks = _streamed(server)
    [row] = wait_for_rows(log, [_call_id(chunks[0])])[_call_id(chunks[0])]
    assert row["input_tokens"] == measure_tokens(QUESTION).tokens
    assert row["output_tokens"] == measure_tokens(_text(chunks)).tokens
    assert row["tokens_estimated"] is True and row["outcome"] == "complete"
