"""RouterLLM(log=...): each answered call is one row, with the tokens the side reports, else
cl100k estimates flagged as such (the cost tracker RouterChatModel uses)."""

from __future__ import annotations

from pathlib import Path

from conftest import ScriptedLLM
from llama_index.core.base.llms.types import ChatMessage, ChatResponse

from llamaindex_routellm import RouterLLM
from routellm_base import RandomRouter
from routellm_base.log import RoutingLog, read_decisions


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
