"""Server-sent-event framing: put the routing decision on a stream's first chunk."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")


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
