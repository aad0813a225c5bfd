"""`routellm serve` in front of a real model: SmolLM2-135M-Instruct served OpenAI-compatibly on
loopback (the judge tests' local server) as both sides, called with the real `openai` client."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import openai
import pytest
from serve_helpers import start_router_server


def _local_server_module():
    path = Path(__file__).resolve().parent.parent / "train" / "local_openai_server.py"
    spec = importlib.util.spec_from_file_location("serve_tests_local_openai_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_routes_to_a_real_local_model(tmp_path):
    local = _local_server_module()
    with local.LocalOpenAIServer(local.smollm2_reply(max_new_tokens=4)) as smollm2:
        server = start_router_server(
            ["--strong-base-url", smollm2.url, "--strong-model", "smollm2-strong",
             "--weak-base-url", smollm2.url, "--weak-model", "smollm2-weak", "--strong-share", "0.5"],
            tmp_path / "server.log",
        )  # fmt: skip
        try:
            client = openai.OpenAI(
                base_url=f"{server.base}/v1", api_key="unused", max_retries=0, timeout=120
            )
            prompts = [
                "What is the capital of France?",
                "Prove that the square root of 2 is irrational.",
            ]
            for prompt, model in zip(prompts, ["router-task_experts-0.0", "router-task_experts-1.0"]):
                completion = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": prompt}], max_tokens=4
                )
                decision = completion.model_extra["routellm"]
                expected = "smollm2-strong" if model == "router-task_experts-0.0" else "smollm2-weak"
                assert decision["model"] == expected == completion.model
                assert completion.choices[0].message.content.strip()  # SmolLM2 answered
                assert completion.usage.completion_tokens > 0
            assert [b["model"] for b in smollm2.received] == ["smollm2-strong", "smollm2-weak"]
            assert smollm2.received[0]["messages"] == [{"role": "user", "content": prompts[0]}]
        finally:
            server.stop()
