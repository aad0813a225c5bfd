"""RouterLLM(log=...): each answered call is one row, tokens where the side reports them."""

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
    assert all(r["input_tokens"] is None and r["cost_usd"] is None for r in rows)
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
    log = llm._routing_log()
    log.flush()
    assert (log.stats().written, log.stats().failed) == (0, 4)
