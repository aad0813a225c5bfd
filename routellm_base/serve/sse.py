"""Server-sent-event framing: put the routing decision on a stream's first chunk, and read a
relayed stream into whole events, noting how it ends and what it answered."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")
DONE_EVENT = b"data: [DONE]\n\n"
"""The event that ends every OpenAI chat-completions stream."""


class StreamError(Exception):
    """A stream ended, or reported an error, before its first chunk."""


async def head_with(chunks: AsyncIterator[bytes], extra: dict[str, Any]) -> bytes:
    """Read ``chunks`` up to the end of the first ``data:`` event and return the bytes to send
    first: any earlier events (comments, keep-alives) as they were, the first data event with
    ``extra``'s keys added to its JSON object, then whatever followed it in the same read.

    The rest of ``chunks`` stays unread, to pass through unchanged. Raises
    :class:`StreamError` when the stream ends first, its first data is not a JSON object,
    or it is an ``{"error": ...}`` event.
    """
    before: list[bytes] = []
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while (end := _EVENT_END.search(buffer)) is not None:
            event, buffer = buffer[: end.end()], buffer[end.end() :]
            rewritten = _with_extra(event, extra)
            if rewritten is None:
                before.append(event)
                continue
            return b"".join(before) + rewritten + buffer
    raise StreamError("stream ended before its first chunk")


def _with_extra(event: bytes, extra: dict[str, Any]) -> bytes | None:
    """The event with ``extra`` merged into its data object; ``None`` if it has no data lines."""
    other: list[bytes] = []
    data: list[bytes] = []
    for line in _LINE.split(event):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line:
            other.append(line)
    if not data:
        return None
    payload = b"\n".join(data)
    try:
        obj = json.loads(payload)
    except ValueError as exc:
        raise StreamError(f"first stream event is not JSON: {payload[:100]!r}") from exc
    if not isinstance(obj, dict):
        raise StreamError(f"first stream event is not a JSON object: {payload[:100]!r}")
    if "error" in obj:
        error = obj["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise StreamError(f"stream began with an error: {str(message)[:300]}")
    obj.update(extra)
    return b"".join(line + b"\n" for line in other) + b"data: " + json.dumps(obj).encode() + b"\n\n"


class StreamTally:
    """Cuts a relayed chat-completions stream into whole events as its bytes arrive, and notes
    what the routing log needs: whether ``data: [DONE]`` came (:attr:`done`), whether an
    ``{"error": ...}`` event passed (:attr:`error`), the usage chunk's token counts, and the
    answer's text so far (delta contents and tool-call arguments).

    ``read_answers=False`` keeps only the framing and :attr:`done` (no JSON is parsed): for a
    server that keeps no log.
    """

    def __init__(self, *, read_answers: bool = True) -> None:
        self.read_answers = read_answers
        self.done = False
        self.error = False
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self._text: list[str] = []
        self._held = b""

    @property
    def text(self) -> str:
        """The answer's text in the events read so far."""
        return "".join(self._text)

    def feed(self, data: bytes) -> bytes:
        """The whole events that ``data`` completes, to relay now. The start of an event still
        to come is held back; after ``data: [DONE]`` (included) nothing more is returned."""
        if self.done:
            return b""
        buffer = self._held + data if self._held else data
        start = 0
        while (end := _EVENT_END.search(buffer, start)) is not None:
            event, start = buffer[start : end.start()], end.end()
            if self._read(event):
                self.done = True
                self._held = b""
                return buffer[:start]
        self._held = buffer[start:]
        return buffer[:start]

    def end(self) -> bytes:
        """What to send when the upstream's body ended without ``data: [DONE]``: its last
        event if it lacked the blank line that ends one, then ``data: [DONE]``."""
        held, self._held = self._held.strip(b"\r\n"), b""
        self.done = True
        if not held:
            return DONE_EVENT
        if self._read(held):  # the [DONE] itself, only its blank line missing
            return held + b"\n\n"
        return held + b"\n\n" + DONE_EVENT

    def _read(self, event: bytes) -> bool:
        """Note what ``event`` (without its blank line) says; ``True`` for ``[DONE]``."""
        data = [line[5:].lstrip(b" ") for line in _LINE.split(event) if line.startswith(b"data:")]
        if not data:
            return False
        payload = data[0] if len(data) == 1 else b"\n".join(data)
        if payload.strip() == b"[DONE]":
            return True
        if not self.read_answers:
            return False
        try:
            obj = json.loads(payload)
        except ValueError:
            return False
        if not isinstance(obj, dict):
            return False
        if "error" in obj:
            self.error = True
        usage = obj.get("usage")
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if _is_count(prompt) and _is_count(completion):
                self.input_tokens, self.output_tokens = prompt, completion
        choices = obj.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict):
                self._text.extend(_delta_texts(delta))
        return False


def _delta_texts(delta: dict[str, Any]) -> list[str]:
    """The text a chunk's delta (or a whole answer's message) adds: its content and the
    arguments of its tool calls."""
    texts = []
    if isinstance(delta.get("content"), str):
        texts.append(delta["content"])
    calls = delta.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            texts.append(function["arguments"])
    return texts


def message_text(answer: dict[str, Any]) -> str:
    """The text of a whole (not streamed) chat-completions answer: its choices' message
    contents and tool-call arguments."""
    choices = answer.get("choices")
    texts: list[str] = []
    for choice in choices if isinstance(choices, list) else ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            texts.extend(_delta_texts(message))
    return "".join(texts)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
