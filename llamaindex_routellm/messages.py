"""LlamaIndex chat messages -> the engine's plain :class:`~routellm_base.ChatTurn` records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock

from routellm_base import ChatTurn


def _role(message: ChatMessage) -> str:
    role = message.role
    return role.value if isinstance(role, MessageRole) else str(role)


def _part(block: Any) -> str | dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    # Non-text blocks (image, audio, document, tool_call, thinking, ...) never reach the router;
    # the engine records their type in decision.skipped_parts.
    return {"type": str(getattr(block, "block_type", type(block).__name__))}


def to_chat_turns(messages: Sequence[ChatMessage]) -> list[ChatTurn]:
    """One :class:`ChatTurn` per message, with one content part per block."""
    return [ChatTurn(role=_role(m), content=[_part(b) for b in m.blocks]) for m in messages]


def tool_call_messages(
    user_msg: str | ChatMessage | None, chat_history: Sequence[ChatMessage] | None
) -> list[ChatMessage]:
    """The conversation a ``*_with_tools`` call sends: the history, then the new user message."""
    messages = list(chat_history or [])
    if isinstance(user_msg, str):
        messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
    elif user_msg is not None:
        messages.append(user_msg)
    return messages
