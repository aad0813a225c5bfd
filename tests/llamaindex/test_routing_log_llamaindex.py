"""RouterLLM(log=...): each answered call is one row, with the tokens the side reports, else
cl100k estimates flagged as such (the cost tracker RouterChatModel uses)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedLLM
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse

from llamaindex_routellm import RouterLLM
from routellm_base import RandomRouter
from routellm_base.log import RoutingLog, read_decisions
from routellm_base.tokens import count_tokens


class CountingLLM(ScriptedLLM):
    """Reports usage as LlamaIndex's OpenAI LLM does (additional_kwargs token counts)."""

    def chat(self, messages, **kwargs):  # type: ignore[no-untyped-def, override]
        return ChatResponse(
            message=ChatMessage(role="assistant", content="counted"),
            additional_kwargs={"prompt_tokens": 1000, "completion_tokens": 2000},
        )


async def test_each_call_is_recorded_once_after_the_answer(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db", store_prompts=True)
    llm = RouterLLM(
        strong=ScriptedLLM("gpt-4o"),
        weak=ScriptedLLM("gpt-4o-mini"),
        router=RandomRouter(seed=0),
        log=log,
    )
    user = [ChatMessage(role="user", content="hello")]
    llm.chat(user)
    llm.complete("complete me")
    stream = llm.stream_chat(user)
    log.flush()
    assert len(read_decisions(tmp_path / "log.db")) == 2  # the stream is not consumed yet
    list(stream)
    await llm.achat(user)
    await llm.acomplete("a")
    async for _ in await llm.astream_complete("b"):
        pass
    list(llm.stream_complete("c"))
    log.flush()
    rows = read_decisions(tmp_path / "log.db")
    assert len(rows) == 7
    assert rows[0]["prompt"] == '[{"role":"user","content":"hello"}]'
    assert rows[1]["prompt"] == '[{"role":"user","content":"complete me"}]'
    # The scripted sides report no usage: tokens are counted with cl100k and flagged, and
    # priced at the default prices of gpt-4o / gpt-4o-mini.
    assert all(r["tokens_estimated"] and r["input_tokens"] > 0 for r in rows)
    assert all(r["cost_usd"] > 0 for r in rows)
    assert {(r["strong_model"], r["weak_model"]) for r in rows} == {("gpt-4o", "gpt-4o-mini")}
    log.close()


def test_reported_usage_is_priced_and_a_path_opens_a_sqlite_log(tmp_path: Path) -> None:
    llm = RouterLLM(
        strong=CountingLLM("gpt-4o"),
        weak=CountingLLM("gpt-4o-mini"),
        router=RandomRouter(seed=0),
        threshold=0.0,  # always strong
        log=str(tmp_path / "log.db"),
    )
    llm.chat([ChatMessage(role="user", content="hi")])
    llm._routing_log().flush()
    [row] = read_decisions(tmp_path / "log.db")
    assert (row["side"], row["input_tokens"], row["output_tokens"]) == ("strong", 1000, 2000)
    assert row["cost_usd"] == 1000 * 2.5 / 1e6 + 2000 * 10 / 1e6


def test_an_unwritable_store_leaves_every_call_answering(tmp_path: Path) -> None:
    (tmp_path / "log.db").mkdir()
    llm = RouterLLM(
        strong=ScriptedLLM("s"),
        weak=ScriptedLLM("w"),
        router=RandomRouter(seed=0),
        log=str(tmp_path / "log.db"),
    )
    for _ in range(4):
        assert llm.complete("x").text.endswith("x")
    assert llm.flush_log()
    stats = llm.log_stats()  # public, also when log= was a path
    assert stats is not None and (stats.written, stats.failed) == (0, 4)


async def test_cost_report_counts_every_call_once_with_the_same_tracker_as_langchain() -> None:
    llm = RouterLLM(
        strong=CountingLLM("gpt-4o"),
        weak=ScriptedLLM("gpt-4o-mini"),
        router=RandomRouter(seed=0),
        threshold=0.0,  # always strong
    )
    llm.chat([ChatMessage(role="user", content="hi")])
    llm.complete("forced weak", routellm_force="weak")
    list(llm.stream_complete("streamed weak", routellm_force="weak"))
    report = llm.cost_report()
    assert (report.strong.calls, report.weak.calls) == (1, 2)
    assert (report.strong.input_tokens, report.strong.output_tokens) == (1000, 2000)
    assert (report.strong.estimated_calls, report.weak.estimated_calls) == (0, 2)
    assert report.strong.cost == 1000 * 2.5 / 1e6 + 2000 * 10 / 1e6
    assert report.always_strong_cost is not None and report.savings is not None
    llm.reset_costs()
    assert llm.cost_report().calls == 0


class BreaksMidStream(ScriptedLLM):
    """Streams two chunks, then the connection drops (a provider bills what it streamed)."""

    def stream_chat(self, messages, **kwargs):  # type: ignore[no-untyped-def, override]
        yield ChatResponse(
            message=ChatMessage(role="assistant", content="partial"), delta="partial"
        )
        yield ChatResponse(
            message=ChatMessage(role="assistant", content="partial answer"), delta=" answer"
        )
        raise ConnectionError("connection dropped mid-stream")

    async def astream_complete(self, prompt, formatted=False, **kwargs):  # type: ignore[no-untyped-def, override]
        async def gen():  # type: ignore[no-untyped-def]
            yield CompletionResponse(text="partial", delta="partial")
            yield CompletionResponse(text="partial answer", delta=" answer")
            raise ConnectionError("connection dropped mid-stream")

        return gen()


def cut_short_rows(path: Path, llm: RouterLLM) -> list[dict[str, object]]:
    llm.flush_log()
    return [
        {k: row[k] for k in ("outcome", "input_tokens", "output_tokens", "tokens_estimated")}
        for row in read_decisions(path)
    ]


def test_a_stream_broken_mid_way_is_one_broken_row_with_what_it_answered(tmp_path: Path) -> None:
    # No fallback after the first chunk (the error is raised on), but the call is accounted.
    llm = RouterLLM(
        strong=BreaksMidStream("gpt-4o"),
        weak=BreaksMidStream("gpt-4o-mini"),
        router=RandomRouter(seed=0),
        fallback=True,
        log=str(tmp_path / "log.db"),
    )
    stream = llm.stream_chat([ChatMessage(role="user", content="hello")])
    assert next(stream).delta == "partial"
    assert next(stream).delta == " answer"
    with pytest.raises(ConnectionError, match="dropped mid-stream"):
        next(stream)

    async def read_all() -> None:
        async for _ in await llm.astream_complete("hello"):
            pass

    with pytest.raises(ConnectionError, match="dropped mid-stream"):
        asyncio.run(read_all())
    broken = {"outcome": "broken", "input_tokens": count_tokens("hello")}
    broken.update(output_tokens=count_tokens("partial answer"), tokens_estimated=True)
    assert cut_short_rows(tmp_path / "log.db", llm) == [broken, broken]
    assert llm.cost_report().calls == 2


def test_a_stream_its_consumer_stops_is_one_cancelled_row(tmp_path: Path) -> None:
    llm = RouterLLM(
        strong=ScriptedLLM("gpt-4o"),
        weak=ScriptedLLM("gpt-4o-mini"),
        router=RandomRouter(seed=0),
        threshold=0.0,  # always strong: its chunks read "gpt-4o", "gpt-4o: ", ...
        log=str(tmp_path / "log.db"),
    )
    user = [ChatMessage(role="user", content="hello")]
    chat = llm.stream_chat(user)
    assert next(chat).message.content == "gpt-4o"
    chat.close()
    for _ in llm.stream_complete("hello"):
        break  # the stream is dropped, so closed

    async def read_one(stream: Any) -> Any:
        async for _ in await stream:
            break
        # Still open: asyncio.run closes it and the generators under it on its way out
        # (a dropped one is closed by its event loop once garbage; aclose() closes it now).
        return stream

    asyncio.run(read_one(llm.astream_chat(user)))
    asyncio.run(read_one(llm.astream_complete("hello")))
    cancelled = {"outcome": "cancelled", "input_tokens": count_tokens("hello")}
    cancelled.update(output_tokens=count_tokens("gpt-4o"), tokens_estimated=True)
    assert cut_short_rows(tmp_path / "log.db", llm) == [cancelled] * 4
    assert llm.cost_report().calls == 4
    # A stream closed before its first chunk answered nothing: no row.
    llm.stream_complete("never read").close()
    assert len(cut_short_rows(tmp_path / "log.db", llm)) == 4
