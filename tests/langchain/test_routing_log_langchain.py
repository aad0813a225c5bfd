"""RouterChatModel(log=...): each answered call is one row, with the cost tracker's figures."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from lc_helpers import fake, scripted

from langchain_routellm import RouterChatModel
from routellm_base import RandomRouter
from routellm_base.log import RoutingLog, read_decisions


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
