"""From a conversation to the text the router scores.

The engine takes conversations as plain :class:`ChatTurn` records so that it knows nothing of
LangChain or LlamaIndex; each integration converts its own message types.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import RoutingInputError
from .tokens import count_tokens, measure_tokens, truncate_head

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


RoutingTextFn = Callable[[Sequence[ChatTurn]], str | None]
"""A caller's routing-text hook: the conversation's turns in, the text to score out (``None``:
use the default rule for this conversation)."""

RoutingTextSource = Literal["user", "system", "routing_text_fn"]


@dataclass(frozen=True)
class RoutingTextOptions:
    """How a conversation becomes routing text."""

    mode: RoutingTextMode = "last_user"
    """``last_user``: the last user turn (the paper's choice). ``conversation``: the last user
    turn, then the other turns newest first, within ``max_tokens``."""
    max_tokens: int | None = None
    """Token budget in ``cl100k_base`` tokens; ``None`` keeps the whole last user turn
    (the embedder still applies its own input limit). Required for ``conversation``: default 1024.
    A budget keeps the start of a longer turn, so a router that reads a prompt's ending (``bert``
    with ``truncation="head_tail"``) should route without one."""
    fn: RoutingTextFn | None = None
    """A hook that picks the routing text itself, e.g. the user's question out of a
    retrieval-augmented prompt (see :class:`TemplateField`). It gets the turns as
    :class:`ChatTurn` records and returns a string, or ``None`` to fall back to ``mode``.
    ``max_tokens`` still applies to what it returns."""

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
        if self.fn is not None and not callable(self.fn):
            raise RoutingInputError(f"routing_text_fn must be callable, got {self.fn!r:.80}")

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
    source: RoutingTextSource = "user"
    """What anchors the text: the last ``user`` turn; the ``system`` text, for a conversation
    with no user turn; or the caller's ``routing_text_fn``."""
    details: dict[str, Any] = field(default_factory=dict)
    content_text: str | None = None
    """The conversation's own words in ``text``, without the role labels (``user: ``) that the
    ``conversation`` mode adds; ``None`` where ``text`` has none. Whether the router can read a
    call is decided on this, so a label never makes an unreadable prompt look readable."""

    @property
    def readable_text(self) -> str:
        """The text whose tokens decide the no-known-tokens rule."""
        return self.text if self.content_text is None else self.content_text


_USER_ROLES = frozenset({"user", "human"})
_SYSTEM_ROLES = frozenset({"system", "developer"})


def _as_turn(turn: ChatTurn | Mapping[str, Any]) -> ChatTurn:
    if isinstance(turn, ChatTurn):
        return turn
    if isinstance(turn, Mapping) and "role" in turn and "content" in turn:
        return ChatTurn(role=str(turn["role"]), content=turn["content"])
    raise RoutingInputError(
        f"a conversation turn must be a ChatTurn or a mapping with 'role' and 'content', got {turn!r:.80}"
    )


def text_of(content: str | Sequence[ContentPart] | None) -> tuple[str, list[str]]:
    """The text parts of a message content joined by newlines, and the types of skipped parts.

    ``None`` (an OpenAI assistant turn that only calls tools) has no text. Raises
    :class:`RoutingInputError` for a content that is neither a string, a list of parts nor
    ``None``."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, Sequence):
        raise RoutingInputError(
            "a turn's content must be a string, a list of parts or None, got "
            f"{type(content).__name__} {content!r:.60}"
        )
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

    The text is anchored on the last user turn; a conversation with no user turn is routed on
    its last system turn (``source="system"``). ``options.fn``, when given and not returning
    ``None``, replaces both (``source="routing_text_fn"``).

    Raises :class:`RoutingInputError` when the conversation is empty, when its last user turn
    carries no text, when it has neither a user nor a system turn with text, or when
    ``options.fn`` returns something other than a non-blank string or ``None``.
    """
    options = options or RoutingTextOptions()
    if isinstance(conversation, str):
        conversation = [ChatTurn("user", conversation)]
    turns = [_as_turn(t) for t in conversation]
    if not turns:
        raise RoutingInputError("cannot route an empty conversation")
    if options.fn is not None:
        hooked = _hook_text(turns, options)
        if hooked is not None:
            return hooked
    anchor, source = _anchor(turns)
    if options.mode == "last_user":
        return _anchor_text(turns[anchor], source, options)
    return _conversation_text(turns, anchor, source, options)


def _hook_text(turns: list[ChatTurn], options: RoutingTextOptions) -> RoutingText | None:
    assert options.fn is not None
    text = options.fn(turns)
    if text is None:
        return None
    if not isinstance(text, str) or not text.strip():
        raise RoutingInputError(
            f"routing_text_fn {options.fn!r:.80} must return a non-blank string or None, "
            f"got {text!r:.80}"
        )
    return _budgeted(text, (), "routing_text_fn", options.token_budget)


def _anchor(turns: list[ChatTurn]) -> tuple[int, RoutingTextSource]:
    """Index of the turn the routing text is built around, and its source."""
    for i in range(len(turns) - 1, -1, -1):
        if turns[i].role.lower() in _USER_ROLES:
            return i, "user"
    # No user turn (e.g. a prompt template of one system message): the system text is the
    # request the models answer, so it is what the router should read.
    for i in range(len(turns) - 1, -1, -1):
        if turns[i].role.lower() in _SYSTEM_ROLES and text_of(turns[i].content)[0].strip():
            return i, "system"
    roles = sorted({t.role for t in turns})
    raise RoutingInputError(
        f"cannot route a conversation with no user turn and no system text (roles: {roles})"
    )


def _budgeted(
    text: str, skipped: Sequence[str], source: RoutingTextSource, budget: int | None
) -> RoutingText:
    if budget is None:
        return RoutingText(text=text, skipped_parts=tuple(skipped), source=source)
    text, tokens, truncated = truncate_head(text, budget)
    return RoutingText(
        text=text, skipped_parts=tuple(skipped), tokens=tokens, truncated=truncated, source=source
    )


def _anchor_content(turn: ChatTurn, source: RoutingTextSource) -> tuple[str, list[str]]:
    """The anchor turn's text and skipped parts; :class:`RoutingInputError` when it has no text."""
    text, skipped = text_of(turn.content)
    if not text.strip():
        raise RoutingInputError(
            f"the last {'user' if source == 'user' else 'system'} turn has no text to route on"
            + (f" (only non-text parts: {skipped})" if skipped else "")
        )
    return text, skipped


def _anchor_text(
    turn: ChatTurn, source: RoutingTextSource, options: RoutingTextOptions
) -> RoutingText:
    text, skipped = _anchor_content(turn, source)
    return _budgeted(text, skipped, source, options.token_budget)


def _conversation_text(
    turns: list[ChatTurn], anchor: int, source: RoutingTextSource, options: RoutingTextOptions
) -> RoutingText:
    budget = options.token_budget
    assert budget is not None
    anchor_turn = turns[anchor]
    anchor_text, skipped = _anchor_content(anchor_turn, source)
    # The anchor (the request being answered) always goes in first, so a long tool result or
    # document cannot push it out; the rest of the budget goes to the newest other turns.
    head, used, truncated = truncate_head(f"{anchor_turn.role}: {anchor_text}", budget)
    kept: dict[int, str] = {anchor: head}
    used += 1  # the newline joining it to the next line
    for i in range(len(turns) - 1, -1, -1):
        if i == anchor:
            continue
        text, turn_skipped = text_of(turns[i].content)
        skipped.extend(turn_skipped)
        if used >= budget:
            truncated = truncated or bool(text.strip())
            continue
        if not text.strip():
            continue
        line = f"{turns[i].role}: {text}"
        line_tokens = measure_tokens(line).tokens + 1
        if used + line_tokens > budget:
            kept[i], _, _ = truncate_head(line, budget - used)
            used = budget
            truncated = True
            continue
        kept[i] = line
        used += line_tokens
    text = "\n".join(kept[i] for i in sorted(kept))
    content = "\n".join(_unlabelled(kept[i], turns[i].role) for i in sorted(kept))
    return RoutingText(
        text=text,
        skipped_parts=tuple(skipped),
        tokens=count_tokens(text),
        truncated=truncated,
        source=source,
        content_text=content,
    )


def _unlabelled(line: str, role: str) -> str:
    """A kept ``role: text`` line without its label (empty when the budget cut into the label)."""
    label = f"{role}: "
    return line[len(label) :] if line.startswith(label) else ""


class TemplateField:
    """A routing-text hook that reads one field back out of a filled-in prompt template.

    In retrieval-augmented generation the model gets a template filled with retrieved context
    and the user's question; the router should score the question alone. ``TemplateField``
    holds the template strings (``str.format`` style, ``{name}`` fields, as LangChain's
    f-string templates and LlamaIndex's prompt templates use) and, given a conversation,
    matches its user and system turns (newest first) against each template; the first match
    yields the text of ``field``. A conversation that matches no template gets ``None`` (the
    default rule applies). Picklable and comparable, so routers holding it can be copied.

    Example::

        TemplateField(["Context: {context}\nQuestion: {question}\nAnswer:"], "question")
    """

    def __init__(self, templates: Sequence[str], field: str) -> None:
        if isinstance(templates, str):
            templates = [templates]
        self.templates = tuple(templates)
        self.field = field
        self._patterns = [p for p in (_template_pattern(t, field) for t in self.templates) if p]
        if not self._patterns:
            raise RoutingInputError(
                f"none of the {len(self.templates)} templates has a {{{field}}} field"
            )

    def __call__(self, turns: Sequence[ChatTurn]) -> str | None:
        for turn in reversed(turns):
            if turn.role.lower() not in _USER_ROLES | _SYSTEM_ROLES:
                continue
            text = text_of(turn.content)[0]
            for pattern in self._patterns:
                match = pattern.fullmatch(text)
                if match and match.group("routed").strip():
                    return match.group("routed")
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TemplateField) and (self.templates, self.field) == (
            other.templates,
            other.field,
        )

    def __hash__(self) -> int:
        return hash((self.templates, self.field))

    def __repr__(self) -> str:
        return f"TemplateField({len(self.templates)} templates, field={self.field!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"templates": self.templates, "field": self.field}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["templates"], state["field"])  # type: ignore[misc]


def _template_pattern(template: str, routed_field: str) -> re.Pattern[str] | None:
    """A regex matching ``template`` filled in, with ``routed_field`` as group ``routed``.

    Other fields match lazily (retrieved context rarely contains the template's own wording
    after it), the routed field greedily; a template without the field gives ``None``."""
    parts: list[str] = []
    found = False
    for literal, name, _, _ in string.Formatter().parse(template.strip()):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if name == routed_field and not found:
            parts.append(r"(?P<routed>.*)")
            found = True
        elif name == routed_field:
            parts.append(r"(?P=routed)")
        else:
            parts.append(r".*?")
    if not found:
        return None
    # Templates are often stripped or given trailing spaces when filled; tolerate both ends.
    return re.compile(r"\s*" + "".join(parts) + r"\s*", re.DOTALL)


def turn_texts(conversation: Sequence[ChatTurn | Mapping[str, Any]] | str) -> list[tuple[str, str]]:
    """``(role, text)`` of every turn, oldest first (a prompt string is one user turn); only
    text parts are kept (see :func:`text_of`)."""
    if isinstance(conversation, str):
        return [("user", conversation)]
    return [(turn.role, text_of(turn.content)[0]) for turn in map(_as_turn, conversation)]
