"""langchain-tests' standard integration tests: RouterChatModel over the real SmolLM2-135M-Instruct
(on both sides; see langchain_routellm.local_models)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_routellm import RouterChatModel

pytestmark = pytest.mark.slow

transformers = pytest.importorskip("transformers")


class TestRouterChatModelIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return RouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        from langchain_routellm.local_models import load_smollm2  # weights cached per process

        return {
            "strong": load_smollm2(model_name="smollm2-as-strong", max_new_tokens=24),
            "weak": load_smollm2(model_name="smollm2-as-weak", max_new_tokens=12),
            # the bundled default router ("mf"), as a user would get it
            "strong_share": 0.5,
        }

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        params = super().standard_chat_model_params
        # api_key/timeout/max_retries belong to the sides (a router has no API of its own).
        for key in ("api_key", "timeout", "max_retries"):
            params.pop(key, None)
        # max_tokens is forwarded to the chosen model; short answers keep the suite fast on CPU.
        params["max_tokens"] = 24
        return params

    # Switched off: capabilities SmolLM2-135M-Instruct (run locally) does not have.

    @property
    def has_tool_calling(self) -> bool:
        # SmolLM2-135M has no tool-calling format; the local model has no bind_tools, so the
        # router's bind_tools raises at bind time (tested in test_router_chat_model.py).
        return False

    @property
    def has_structured_output(self) -> bool:
        # Needs tool calling or a JSON mode; SmolLM2 has neither.
        return False

    @property
    def supports_json_mode(self) -> bool:
        return False  # no constrained JSON decoding in the local model

    @property
    def supports_image_inputs(self) -> bool:
        return False  # text-only model

    @property
    def supports_model_override(self) -> bool:
        # One local checkpoint per side: there is no other model to switch to by name.
        return False

    @property
    def returns_usage_metadata(self) -> bool:
        return True  # real tokenizer counts from the chosen model
