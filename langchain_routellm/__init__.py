"""LangChain integration of RouteLLM: ``RouterChatModel(strong=..., weak=...)``, a chat model
that routes each call to a strong or a weak model, and ``RouteLLMCostCallbackHandler``."""

from routellm_base.costs import CostReport, CostTracker, ModelPrice

from .callbacks import RouteLLMCostCallbackHandler
from .chat_models import FORCE_KWARG, RouterChatModel, messages_to_turns

__all__ = [
    "FORCE_KWARG",
    "CostReport",
    "CostTracker",
    "ModelPrice",
    "RouteLLMCostCallbackHandler",
    "RouterChatModel",
    "messages_to_turns",
]
