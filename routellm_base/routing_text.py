"""From a conversation to the text the router scores.

The engine takes conversations as plain :class:`ChatTurn` records so that it knows nothing of
LangChain or LlamaIndex; each integration converts its own message types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import RoutingInputError
from .tokens import count_tokens, get_encoding, truncate_head

RoutingTextMode = Literal["last_user", "conversation"]
ContentPart = str | Mapping[str, Any]


@dataclass(frozen=True)
class ChatTurn:
    """One message of a conversation.

    ``content`` is a string or a list of parts; a part is a string or a mapping with a ``type``
    key (``{"type": "text", "text": ...}``, ``{"type": "image_url", ...}``). Only text parts
    reach the router.
    """

    role: str
    content: str | Sequence[ContentPart]


@dataclass(frozen=True)
class RoutingTextOptions:
    """How a conversation becomes routing text."""

    mode: RoutingTextMode = "last_user"
    """``last_user``: the last user turn (the paper's choice). ``conversation``: every turn,
    most recent kept first, within ``max_tokens``."""
    max_tokens: int | None = None
    """Token budget in ``cl100k_base`` tokens; ``None`` keeps the whole last user turn
    (the embedder still applies its own input limit). Required for ``conversation``: default 1024."""

    def __post_init__(self) -> None:
        if self.mode not in ("last_user", "conversation"):
            raise RoutingInputError(
                f"routing text mode must be 'last_user' or 'conversation', got {self.mode!r}"
            )
        if self.max_tokens is not None and (
            not isinstance(self.max_tokens, int) or self.max_tokens < 1
        ):
            raise RoutingInputError(
                f"routing text max_tokens must be a positive integer, got {self.max_tokens!r}"
            )

    @property
    def token_budget(self) -> int | None:
        if self.mode == "conversation" and self.max_tokens is None:
            return 1024
        return self.max_tokens


@dataclass(frozen=True)
class RoutingText:
    """The text to score, and what was left out of it."""

    text: str
    skipped_parts: tuple[str, ...] = ()
    tokens: int | None = None
    truncated: bool = False
    details: dict[str, Any] = field(default_factory=dict)


_USER_ROLES = frozenset({"user", "human"})


def _as_turn(turn: ChatTurn | Mapping[str, Any]) -> ChatTurn:
    if isinstance(turn, ChatTurn):
        return turn
    if isinstance(turn, Mapping) and "role" in turn and "content" in turn:
        return ChatTurn(role=str(turn["role"]), content=turn["content"])
    raise RoutingInputError(
        f"a conversation turn must be a ChatTurn or a mapping with 'role' and 'content', got {turn!r:.80}"
    )


def text_of(content: str | Sequence[ContentPart]) -> tuple[str, list[str]]:
    """The text parts of a message content joined by newlines, and the types of skipped parts."""
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    skipped: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping):
            kind = str(part.get("type", "unknown"))
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                skipped.append(kind)
        else:
            skipped.append(type(part).__name__)
    return "\n".join(t for t in texts if t), skipped


def routing_text(
    conversation: Sequence[ChatTurn | Mapping[str, Any]] | str,
    options: RoutingTextOptions | None = None,
) -> RoutingText:
    """The routing text of a conversation (or of a bare prompt string).

    Raises :class:`RoutingInputError` when the conversation is empty, has no user turn, or its
    user turns carry no text.
    """
    options = options or RoutingTextOptions()
    if isinstance(conversation, str):
        conversation = [ChatTurn("user", conversation)]
    turns = [_as_turn(t) for t in conversation]
    if not turns:
        raise RoutingInputError("cannot route an empty conversation")
    if not any(t.role.lower() in _USER_ROLES for t in turns):
        roles = sorted({t.role for t in turns})
        raise RoutingInputError(f"cannot route a conversation with no user turn (roles: {roles})")
    if options.mode == "last_user":
        return _last_user_text(turns, options)
    return _conversation_text(turns, options)


def _last_user_text(turns: list[ChatTurn], options: RoutingTextOptions) -> RoutingText:
    last_user = next(t for t in reversed(turns) if t.role.lower() in _USER_ROLES)
    text, skipped = text_of(last_user.content)
    if not text.strip():
        raise RoutingInputError(
            "the last user turn has no text to route on"
            + (f" (only non-text parts: {skipped})" if skipped else "")
        )
    budget = options.token_budget
    if budget is None:
        return RoutingText(text=text, skipped_parts=tuple(skipped))
    text, tokens, truncated = truncate_head(text, budget)
    return RoutingText(text=text, skipped_parts=tuple(skipped), tokens=tokens, truncated=truncated)


def _conversation_text(turns: list[ChatTurn], options: RoutingTextOptions) -> RoutingText:
    budget = options.token_budget
    assert budget is not None
    encoding = get_encoding()
    skipped: list[str] = []
    kept: list[str] = []
    used = 0
    truncated = False
    # Walk back from the newest turn: the latest request matters most to the router.
    for turn in reversed(turns):
        text, turn_skipped = text_of(turn.content)
        skipped.extend(turn_skipped)
        if not text.strip():
            continue
        line = f"{turn.role}: {text}"
        line_tokens = len(encoding.encode(line)) + 1
        if used + line_tokens > budget:
            remaining = budget - used
            if remaining > 0:
                head, _, _ = truncate_head(line, remaining)
                kept.append(head)
                used += remaining
            truncated = True
            break
        kept.append(line)
        used += line_tokens
    if not kept or not any(
        text_of(t.content)[0].strip() for t in turns if t.role.lower() in _USER_ROLES
    ):
        raise RoutingInputError(
            "the conversation's user turns have no text to route on"
            + (f" (only non-text parts: {sorted(set(skipped))})" if skipped else "")
        )
    text = "\n".join(reversed(kept))
    return RoutingText(
        text=text,
        skipped_parts=tuple(skipped),
        tokens=count_tokens(text),
        truncated=truncated,
    )
