"""langchain-tests' standard unit tests for RouterChatModel (scripted tool-calling sides)."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_tests.unit_tests import ChatModelUnitTests
from lc_helpers import scripted

import routellm_base
from langchain_routellm import RouterChatModel


class TestRouterChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return RouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # Scripted models that can bind tools, so bind_tools/with_structured_output run on both
        # sides; the random router so no checkpoint is needed.
        return {
            "strong": scripted("big-model", "strong"),
            "weak": scripted("small-model", "weak"),
            "router": routellm_base.RandomRouter(seed=0),
            "threshold": 0.5,
        }

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # A router has no API of its own: api_key, timeout and max_retries belong to the strong
        # and weak models, and RouterChatModel refuses unknown fields (typos must not pass
        # silently). temperature, max_tokens and stop are kept: the router forwards them.
        params = super().standard_chat_model_params
        for key in ("api_key", "timeout", "max_retries"):
            params.pop(key, None)
        return params
