"""RouterLLM(shadow_rate=..., judge=...): shadow comparisons through LlamaIndex's chat, complete
and stream entry points, judged by a LlamaIndex LLM, in a real SQLite log."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedLLM
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.llms.mock import MockLLM

from llamaindex_routellm import RouterLLM
from routellm_base import RandomRouter
from routellm_base.errors import RoutingInputError
from routellm_base.log import RoutingLog, read_comparisons, read_decisions


class VerdictLLM(ScriptedLLM):
    """A judge LLM: names the answer that starts with the strong side's name."""

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        self._record("chat", messages, kwargs)
        user = messages[-1].content or ""
        shown_a = user.split("[The Start of Assistant A's Answer]\n")[1]
        verdict = "[[A]]" if shown_a.startswith("gpt-4o:") else "[[B]]"
        return ChatResponse(message=ChatMessage(role="assistant", content=f"Because. {verdict}"))


class FailingLLM(ScriptedLLM):
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        raise ConnectionError("endpoint down")


def router(log: Any, **kwargs: Any) -> RouterLLM:
    options: dict[str, Any] = {
        "strong": ScriptedLLM("gpt-4o"),
        "weak": ScriptedLLM("gpt-4o-mini"),
        "router": RandomRouter(seed=0),
        "log": log,
        "shadow_rate": 1.0,
        "shadow_seed": 0,
    }
    return RouterLLM(**{**options, **kwargs})


async def test_every_entry_point_shadows_after_the_answer_and_the_judge_decides(
    tmp_path: Path,
) -> None:
    log = RoutingLog(tmp_path / "log.db", store_prompts=True)
    judge = VerdictLLM("judge-model")
    llm = router(log, judge=judge)
    user = [ChatMessage(role="user", content="hello")]
    responses = [llm.chat(user), llm.complete("complete me"), await llm.achat(user)]
    stream = llm.stream_chat(user)
    assert llm.flush_log(30)
    assert len(read_comparisons(tmp_path / "log.db")) == 3  # the stream is not consumed yet
    responses.append(list(stream)[-1])
    responses.append([c async for c in await llm.astream_complete("async stream")][-1])
    assert llm.flush_log(30)
    call_ids = [r.additional_kwargs["routellm"]["call_id"] for r in responses]
    decisions = {r["call_id"]: r for r in read_decisions(tmp_path / "log.db")}
    rows = read_comparisons(tmp_path / "log.db")
    assert sorted(decisions) == sorted(call_ids) == sorted(r["call_id"] for r in rows)
    texts = {
        "hello": ("gpt-4o: chat", "gpt-4o-mini: chat"),
        "complete me": ("gpt-4o: complete me", "gpt-4o-mini: complete me"),
        "async stream": ("gpt-4o: async stream", "gpt-4o-mini: async stream"),
    }
    for row in rows:
        decision = decisions[row["call_id"]]
        assert row["answered_side"] == decision["side"]
        prompt = decision["prompt"].split('"content":"')[1].split('"')[0]
        strong, weak = texts[prompt]
        # The answered side's text is what the user got (a stream's: all of it); the shadow
        # side answered through its plain chat/complete.
        if decision["side"] == "strong":
            assert row["weak_answer"] == weak and row["strong_answer"].startswith("gpt-4o:")
        else:
            assert row["strong_answer"] == strong and row["weak_answer"].startswith("gpt-4o-mini:")
        assert (row["verdict"], row["judge_model"]) == ("strong", "judge-model")
    assert len(judge.calls) == 10
    log.close()


def test_the_other_sides_failure_is_recorded_and_the_user_gets_the_answer(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db", store_prompts=True)
    llm = router(log, strong=FailingLLM("gpt-4o"), threshold=1.0)  # always weak
    response = llm.chat([ChatMessage(role="user", content="hi")])
    assert response.message.content == "gpt-4o-mini: chat"
    assert llm.flush_log(30)
    (row,) = read_comparisons(tmp_path / "log.db")
    assert row["shadow_error"] == "ConnectionError: endpoint down"
    assert (row["weak_answer"], row["strong_answer"]) == ("gpt-4o-mini: chat", None)
    log.close()


def test_an_echoing_judge_is_counted_unparseable(tmp_path: Path) -> None:
    # LlamaIndex's MockLLM echoes its prompt, rubric included: [[A]], [[B]] and [[C]] at once.
    log = RoutingLog(tmp_path / "log.db", store_prompts=True)
    llm = router(log, judge=MockLLM())
    llm.complete("hi")
    assert llm.flush_log(30)
    (row,) = read_comparisons(tmp_path / "log.db")
    assert (row["verdict"], row["unparseable"]) == (None, 2)
    log.close()


def test_shadow_calls_never_block_the_caller(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db")
    release = threading.Event()

    class Slow(ScriptedLLM):
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            release.wait(10)
            return super().complete(prompt, formatted=formatted, **kwargs)

    llm = router(log, weak=Slow("gpt-4o-mini"), threshold=0.0)  # always strong
    assert llm.complete("q").text == "gpt-4o: q"
    assert not llm.flush_log(0.05)
    release.set()
    assert llm.flush_log(30)
    assert len(read_comparisons(tmp_path / "log.db")) == 1
    log.close()


def test_bad_shadow_settings_fail_at_construction(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db")
    with pytest.raises(RoutingInputError, match="shadow_rate must be a number in"):
        router(log, shadow_rate=-0.1)
    with pytest.raises(RoutingInputError, match="shadow_rate needs a log"):
        router(None)
    with pytest.raises(
        RoutingInputError, match="judge= judges shadow comparisons: it needs shadow_rate > 0"
    ):
        router(log, shadow_rate=0.0, shadow_seed=None, judge=MockLLM())
    # a trial: shadow_seed without a rate was accepted and did nothing
    with pytest.raises(RoutingInputError, match="shadow_seed seeds .* needs shadow_rate > 0"):
        router(log, shadow_rate=0.0, shadow_seed=3)
    with pytest.raises(RoutingInputError, match="judge must be a LlamaIndex LLM"):
        router(log, judge=object())
    log.close()
