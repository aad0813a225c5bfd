"""RouterChatModel(log=...): each answered call is one row, with the cost tracker's figures."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from lc_helpers import ScriptedChatModel, fake, scripted

from langchain_routellm import RouterChatModel
from routellm_base import RandomRouter
from routellm_base.log import RoutingLog, read_decisions
from routellm_base.tokens import count_tokens


def router_model(log: object, **kwargs: object) -> RouterChatModel:
    return RouterChatModel(
        strong=scripted("gpt-4o", "strong answer", in_tokens=1000, out_tokens=2000),
        weak=scripted("gpt-4o-mini", "weak answer", in_tokens=1000, out_tokens=2000),
        router=RandomRouter(seed=0),
        threshold=0.5,
        log=log,
        **kwargs,
    )


def test_each_call_is_recorded_once_after_the_answer(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db")
    llm = router_model(log)
    answers = [llm.invoke(f"question {i}") for i in range(4)]
    answers += llm.batch(["a", "b"])
    chunks = list(llm.stream("streamed"))
    answers.append(asyncio.run(llm.ainvoke("async")))
    log.flush()
    rows = read_decisions(tmp_path / "log.db")
    assert len(rows) == 8  # 4 invoke + 2 batch + 1 stream + 1 ainvoke, each once
    expected = [a.response_metadata["routellm"]["side"] for a in answers[:6]]
    expected.append(chunks[0].response_metadata["routellm"]["side"])
    assert sorted(r["side"] for r in rows) == sorted(
        expected + [answers[-1].response_metadata["routellm"]["side"]]
    )
    report = llm.cost_report()
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(report.total_cost)
    for row in rows:
        assert (row["input_tokens"], row["output_tokens"], row["tokens_estimated"]) == (
            1000,
            2000,
            False,
        )
        assert (row["strong_model"], row["weak_model"]) == ("gpt-4o", "gpt-4o-mini")
        assert row["latency_seconds"] >= row["routing_seconds"] > 0
        assert row["prompt"] is None and len(row["prompt_hash"]) == 64
    log.close()


def test_a_path_is_a_sqlite_log_and_estimated_tokens_are_flagged(tmp_path: Path) -> None:
    llm = RouterChatModel(
        strong=fake("s"), weak=fake("w"), router=RandomRouter(seed=1), log=str(tmp_path / "x.db")
    )
    llm.invoke("hello there")
    llm.flush_log()
    [row] = read_decisions(tmp_path / "x.db")
    assert row["tokens_estimated"] is True and row["input_tokens"] > 0


def test_a_fallback_and_a_forced_side_are_recorded(tmp_path: Path) -> None:
    from lc_helpers import ScriptedChatModel

    class Broken(ScriptedChatModel):
        def _generate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("down")

    log = RoutingLog(tmp_path / "log.db")
    llm = RouterChatModel(
        strong=Broken(model_name="gpt-4o"),
        weak=scripted("gpt-4o-mini", "ok"),
        router=RandomRouter(seed=0),
        fallback=True,
        log=log,
    )
    llm.invoke("hi", routellm_force="strong")
    log.flush()
    [row] = read_decisions(tmp_path / "log.db")
    assert row["forced"] is True and row["side"] == "weak" and row["fallback_from"] == "strong"
    assert row["fallback_reason"] == "RuntimeError: down"
    log.close()


def test_an_unwritable_store_leaves_every_call_answering(tmp_path: Path) -> None:
    (tmp_path / "log.db").mkdir()  # cannot be opened as a database, not even by root
    llm = router_model(str(tmp_path / "log.db"))
    for i in range(5):
        assert llm.invoke(f"q{i}").content in ("strong answer", "weak answer")
    assert llm.flush_log()
    stats = llm.log_stats()  # public, also when log= was a path
    assert stats is not None and (stats.written, stats.failed) == (0, 5)
    assert router_model(None).log_stats() is None


def test_copies_share_the_log_and_bad_targets_fail_at_construction(tmp_path: Path) -> None:
    import copy
    import pickle

    llm = router_model(str(tmp_path / "log.db"))
    copy.deepcopy(llm).invoke("a")
    pickle.loads(pickle.dumps(llm)).invoke("b")
    llm.bind(stop=["x"]).invoke("c")
    llm._routing_log().flush()
    assert len(read_decisions(tmp_path / "log.db")) == 3
    with pytest.raises(ValueError, match="does not exist"):  # pydantic's, from RoutingInputError
        router_model(str(tmp_path / "missing" / "log.db"))
    assert os.path.exists(tmp_path / "log.db")


def test_a_copy_with_another_log_writes_to_that_log(tmp_path: Path) -> None:
    llm = router_model(str(tmp_path / "a.db"))
    llm.invoke("to a")
    other = llm.model_copy(update={"log": str(tmp_path / "b.db")})  # shares the private holder
    other.invoke("to b")
    llm._routing_log().flush(), other._routing_log().flush()
    assert len(read_decisions(tmp_path / "a.db")) == 1
    assert len(read_decisions(tmp_path / "b.db")) == 1


class BreaksMidStream(ScriptedChatModel):
    """Streams two chunks, then the connection drops (a provider bills what it streamed)."""

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        yield ChatGenerationChunk(message=AIMessageChunk(content="partial "))
        yield ChatGenerationChunk(message=AIMessageChunk(content="answer"))
        raise ConnectionError("connection dropped mid-stream")

    async def _astream(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        for chunk in self._stream(messages):
            yield chunk


def cut_short_rows(path: Path, llm: RouterChatModel) -> list[dict[str, object]]:
    llm.flush_log()
    return [
        {k: row[k] for k in ("outcome", "input_tokens", "output_tokens", "tokens_estimated")}
        for row in read_decisions(path)
    ]


def test_a_stream_broken_mid_way_is_one_broken_row_with_what_it_answered(tmp_path: Path) -> None:
    # No fallback after the first chunk (the error is raised on), but the call is accounted.
    llm = RouterChatModel(
        strong=BreaksMidStream(model_name="gpt-4o"),
        weak=BreaksMidStream(model_name="gpt-4o-mini"),
        router=RandomRouter(seed=0),
        fallback=True,
        log=str(tmp_path / "log.db"),
    )
    seen = []
    with pytest.raises(ConnectionError, match="dropped mid-stream"):
        for chunk in llm.stream("hello"):
            seen.append(chunk.content)
    assert seen == ["partial ", "answer"]

    async def read_all() -> None:
        async for _ in llm.astream("hello"):
            pass

    with pytest.raises(ConnectionError, match="dropped mid-stream"):
        asyncio.run(read_all())
    broken = {"outcome": "broken", "input_tokens": count_tokens("hello")}
    broken.update(output_tokens=count_tokens("partial answer"), tokens_estimated=True)
    assert cut_short_rows(tmp_path / "log.db", llm) == [broken, broken]
    report = llm.cost_report()
    assert report.calls == 2 and report.total_cost > 0


def test_a_stream_its_consumer_stops_is_one_cancelled_row(tmp_path: Path) -> None:
    llm = RouterChatModel(
        strong=fake("gpt-4o", "one two three four"),
        weak=fake("gpt-4o-mini", "one two three four"),
        router=RandomRouter(seed=0),
        log=str(tmp_path / "log.db"),
    )
    stream = llm.stream("cut short")
    assert next(stream).content == "one"
    stream.close()  # what a `break` out of the loop does once the stream is dropped
    for _ in llm.stream("cut short"):
        break  # the stream is dropped, so closed

    async def read_one() -> AsyncIterator[AIMessageChunk]:
        stream = llm.astream("cut short")
        async for _ in stream:
            break
        # Still open: asyncio.run closes it and the generators under it on its way out
        # (a dropped one is closed by its event loop once garbage; aclose() closes it now).
        return stream

    asyncio.run(read_one())
    cancelled = {"outcome": "cancelled", "input_tokens": count_tokens("cut short")}
    cancelled.update(output_tokens=count_tokens("one"), tokens_estimated=True)
    assert cut_short_rows(tmp_path / "log.db", llm) == [cancelled] * 3
    assert llm.cost_report().calls == 3
    # A stream closed before its first chunk answered nothing: no row.
    llm.stream("never read").close()
    assert len(cut_short_rows(tmp_path / "log.db", llm)) == 3
