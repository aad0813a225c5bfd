import pytest

from routellm_base import ChatTurn, RoutingInputError, RoutingTextOptions, routing_text
from routellm_base.tokens import count_tokens, get_encoding


def test_last_user_turn_is_default():
    conv = [
        ChatTurn("system", "You are terse."),
        ChatTurn("user", "first question"),
        ChatTurn("assistant", "an answer"),
        {"role": "user", "content": "second question"},
    ]
    assert routing_text(conv).text == "second question"


def test_bare_string_is_one_user_turn():
    assert routing_text("What is 2+2?").text == "What is 2+2?"


def test_non_text_parts_are_skipped_and_recorded():
    conv = [
        ChatTurn(
            "user",
            [
                {"type": "image_url", "image_url": {"url": "data:..."}},
                {"type": "text", "text": "describe this"},
                "and this",
                {"type": "audio"},
            ],
        )
    ]
    result = routing_text(conv)
    assert result.text == "describe this\nand this"
    assert result.skipped_parts == ("image_url", "audio")


@pytest.mark.parametrize(
    ("conversation", "message"),
    [
        ([], "empty conversation"),
        (
            [ChatTurn("assistant", "hello"), ChatTurn("tool", "{}")],
            "no user turn and no system text",
        ),
        (
            [ChatTurn("system", "  "), ChatTurn("assistant", "hello")],
            "no user turn and no system text",
        ),
        ([ChatTurn("user", [{"type": "image_url", "image_url": "x"}])], "only non-text parts"),
        ([ChatTurn("user", "   ")], "no text"),
        (["not a turn"], "ChatTurn or a mapping"),
        ([{"role": "user", "content": None}], "no text"),
        ([{"role": "user", "content": 5}], "must be a string, a list of parts or None, got int"),
    ],
)
@pytest.mark.parametrize("mode", ["last_user", "conversation"])
def test_unroutable_conversations_raise_clear_errors(conversation, message, mode):
    with pytest.raises(RoutingInputError, match=message):
        routing_text(conversation, RoutingTextOptions(mode=mode))


def test_an_assistant_turn_that_only_calls_tools_has_no_text_in_conversation_mode():
    """A trial: OpenAI's tool-call turn (``content: None``) raised a bare TypeError."""
    conversation = [
        {"role": "user", "content": "what's the weather"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "1", "type": "function", "function": {"name": "w"}}],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "1"},
        {"role": "user", "content": "thanks, and tomorrow?"},
    ]
    text = routing_text(conversation, RoutingTextOptions(mode="conversation")).text
    assert "what's the weather" in text and "sunny" in text and "tomorrow?" in text
    assert "None" not in text


def test_cl100k_token_ids_are_the_real_ones():
    # Reference ids of cl100k_base for "hello world".
    assert get_encoding().encode("hello world") == [15339, 1917]


def test_last_user_budget_truncates_head():
    long = "word " * 1000
    result = routing_text(long, RoutingTextOptions(max_tokens=50))
    assert result.truncated and result.tokens == 50
    assert count_tokens(result.text) <= 50
    assert long.startswith(result.text.rstrip())


def test_conversation_mode_keeps_newest_turns_within_budget():
    conv = [
        ChatTurn("user", "old " * 300),
        ChatTurn("assistant", "reply"),
        ChatTurn("user", "newest question"),
    ]
    result = routing_text(conv, RoutingTextOptions(mode="conversation", max_tokens=40))
    assert result.text.endswith("user: newest question")
    assert "assistant: reply" in result.text
    assert result.truncated
    assert count_tokens(result.text) <= 40


def test_conversation_mode_without_truncation():
    conv = [ChatTurn("system", "be nice"), ChatTurn("user", "hi")]
    result = routing_text(conv, RoutingTextOptions(mode="conversation"))
    assert result.text == "system: be nice\nuser: hi"
    assert not result.truncated


@pytest.mark.parametrize("bad", [{"mode": "everything"}, {"max_tokens": 0}, {"max_tokens": 2.5}])
def test_invalid_options(bad):
    with pytest.raises(RoutingInputError):
        RoutingTextOptions(**bad)


def test_conversation_text_keeps_the_turns_own_words_apart_from_the_role_labels():
    text = routing_text(
        [ChatTurn("system", "Be brief."), ChatTurn("user", "สวัสดี")],
        RoutingTextOptions(mode="conversation"),
    )
    assert text.text == "system: Be brief.\nuser: สวัสดี"
    assert text.readable_text == "Be brief.\nสวัสดี"
    assert routing_text("สวัสดี").readable_text == "สวัสดี"
