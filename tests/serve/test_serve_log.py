"""`routellm serve --log`: every answered request lands in the routing log, streamed or not, from
several workers, with no prompt text unless asked for."""

from __future__ import annotations

import openai
import pytest
from serve_helpers import CLIENT_KEY, start_router_server
from stored_values import columns_containing

from routellm_base.log import read_decisions


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
    # Non-streamed answers carry the upstream's usage; the prompt is a hash, never the text.
    assert sorted(r["input_tokens"] for r in rows if r["input_tokens"] is not None) == [10] * 4
    assert all(r["prompt"] is None and r["prompt_hash"] for r in rows)
    assert columns_containing(log, "secret question") == []  # in no column of any table
