"""LlamaIndex integration of RouteLLM: ``RouterLLM(strong=..., weak=...)``, a
``FunctionCallingLLM`` that sends each call to one of two LLMs, chosen by a learned router."""

from .base import (
    FORCE_KWARG,
    ROUTELLM_KEY,
    RouterLLM,
    SideNotFunctionCallingError,
    can_call_functions,
)
from .messages import to_chat_turns
from .observe import RoutingDecisionRecorder, record_decisions
from .queries import query_field, stock_query_field

__all__ = [
    "FORCE_KWARG",
    "ROUTELLM_KEY",
    "RouterLLM",
    "RoutingDecisionRecorder",
    "SideNotFunctionCallingError",
    "can_call_functions",
    "query_field",
    "record_decisions",
    "stock_query_field",
    "to_chat_turns",
]
