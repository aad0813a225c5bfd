"""StreamTally: a relayed event stream cut into whole events however its bytes are split, with
its end, its usage and its text noted."""

from __future__ import annotations

import json

import pytest

from routellm_base.serve.sse import DONE_EVENT, StreamTally


def _chunk(content: str, newline: bytes = b"\n") -> bytes:
    data = {"choices": [{"index": 0, "delta": {"content": content}}]}
    return b"data: " + json.dumps(data).encode() + newline * 2


STREAM = (
    b": keep-alive\n\n"
    + _chunk("Hello")
    + _chunk(" world", b"\r\n")
    + b'data: {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}\n\n'
    + DONE_EVENT
    + b"data: after the end\n\n"
)


@pytest.mark.parametrize("size", [1, 2, 7, 64, len(STREAM)])
def test_events_are_relayed_whole_and_nothing_after_done(size):
    tally = StreamTally()
    pieces = [tally.feed(STREAM[i : i + size]) for i in range(0, len(STREAM), size)]
    relayed = b"".join(pieces)
    assert relayed == STREAM[: STREAM.index(DONE_EVENT) + len(DONE_EVENT)]
    # Each piece ends where an event ends: an error event added now starts on its own line.
    assert all(p.endswith((b"\n\n", b"\r\n\r\n")) for p in pieces if p)
    assert tally.done and not tally.error
    assert (tally.text, tally.input_tokens, tally.output_tokens) == ("Hello world", 7, 2)


def test_a_stream_without_done_gets_one_and_its_unterminated_last_event():
    tally = StreamTally()
    assert tally.feed(_chunk("Hi") + b'data: {"choices": [{"delta": {"content": "!"}}]}') == _chunk(
        "Hi"
    )
    assert tally.end() == b'data: {"choices": [{"delta": {"content": "!"}}]}\n\n' + DONE_EVENT
    assert tally.done and tally.text == "Hi!"
    unterminated_done = StreamTally()
    unterminated_done.feed(_chunk("Hi") + b"data: [DONE]")
    assert unterminated_done.end() == b"data: [DONE]\n\n"  # one [DONE], not two


def test_error_events_tool_calls_and_a_tally_that_reads_no_answers():
    call = {"function": {"name": "f", "arguments": '{"x": 1}'}}
    stream = (
        b'data: {"choices": [{"delta": {"tool_calls": [' + json.dumps(call).encode() + b"]}}]}\n\n"
        b'data: {"error": {"message": "overloaded"}}\n\n' + DONE_EVENT
    )
    tally = StreamTally()
    assert tally.feed(stream) == stream
    assert tally.error and tally.done and tally.text == '{"x": 1}'
    framing_only = StreamTally(read_answers=False)
    assert framing_only.feed(stream) == stream
    assert framing_only.done and not framing_only.error and framing_only.text == ""
