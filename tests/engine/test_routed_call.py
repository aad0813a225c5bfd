"""RoutedCall, the one call path: decide once, run the chosen candidate with fallback, finish
once (cost, log row, shadow offer from one record). Unit tests with in-process candidates; the
integrations' tests run it under the real LangChain, LlamaIndex and server machinery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from routellm_base import RandomRouter, RoutingEngine, RoutingInputError
from routellm_base.costs import CostTracker
from routellm_base.log import RoutingLog, read_decisions
from routellm_base.routed_call import Answer, CallSinks, Candidate, RoutedCall
from routellm_base.shadow import ShadowRunner

STRONG = Candidate("strong", "big-model", "big", {"tools": ["search"]})
WEAK = Candidate("weak", "small-model", "small")


def routed(**kwargs: object) -> RoutedCall[str]:
    engine = RoutingEngine(RandomRouter(seed=0), threshold=0.0)  # every call goes strong
    call: RoutedCall[str] = RoutedCall(engine, [STRONG, WEAK], "hello", **kwargs)  # type: ignore[arg-type]
    call.decide()
    return call


def boom(candidate: Candidate[str]) -> str:
    raise RuntimeError(f"{candidate.model} failed")


def test_the_decision_names_the_candidates_by_key() -> None:
    call = routed()
    assert call.decision is not None
    assert (call.decision.side, call.decision.model) == ("strong", "big-model")
    assert call.chosen is STRONG and call.names == {"strong": "big-model", "weak": "small-model"}
    assert routed(force="weak").chosen is WEAK


def test_candidates_must_be_strong_then_weak() -> None:
    engine = RoutingEngine(RandomRouter(seed=0), threshold=0.5)
    with pytest.raises(RoutingInputError, match="keyed 'strong' and 'weak', got \\['medium'"):
        RoutedCall(engine, [Candidate("medium", "m", None), WEAK], "hi")
    with pytest.raises(RoutingInputError, match="strong, then weak"):
        RoutedCall(engine, [WEAK, STRONG], "hi")
    with pytest.raises(RoutingInputError, match="keyed 'strong' and 'weak'"):
        engine.decide("hi", candidates={"a": "x", "b": "y"})


def test_call_options_put_bound_arguments_under_the_call_and_defaults_under_both() -> None:
    options = STRONG.call_options({"temperature": 0.2}, {"temperature": 1.0, "max_tokens": 9})
    assert options == {"tools": ["search"], "temperature": 0.2, "max_tokens": 9}
    assert WEAK.call_options({}, {"max_tokens": None}) == {}


def test_run_falls_back_once_and_keeps_both_errors() -> None:
    call = routed(fallback=True)
    assert call.run(lambda c: boom(c) if c is STRONG else f"{c.model} answered") == "small answered"
    assert call.decision is not None
    assert (call.decision.side, call.decision.fallback_from) == ("weak", "strong")
    assert call.decision.fallback_reason == "RuntimeError: big failed"
    assert [str(e) for e in call.failures] == ["big failed"]

    call = routed(fallback=True)
    with pytest.raises(RuntimeError, match="small failed") as raised:
        call.run(boom)
    assert str(raised.value.__cause__) == "big failed"
    assert [str(e) for e in call.failures] == ["big failed", "small failed"]


def test_without_fallback_or_when_refused_the_first_error_is_raised() -> None:
    with pytest.raises(RuntimeError, match="big failed"):
        routed().run(boom)
    refusing = routed(fallback=True, falls_back=lambda error: "big" not in str(error))
    with pytest.raises(RuntimeError, match="big failed"):
        refusing.run(boom)


def test_a_stream_falls_back_before_its_first_chunk_and_is_committed_after() -> None:
    def failing_at_first_chunk(candidate: Candidate[str]) -> Iterator[str]:
        if candidate is STRONG:
            raise RuntimeError("big failed")
        yield from ("a", "b")

    call = routed(fallback=True)
    assert list(call.stream(failing_at_first_chunk)) == ["a", "b"]
    assert call.decision is not None and call.decision.fallback_from == "strong"

    def failing_after_a_chunk(candidate: Candidate[str]) -> Iterator[str]:
        yield "partial"
        raise RuntimeError(f"{candidate.model} broke")

    call = routed(fallback=True)
    chunks = call.stream(failing_after_a_chunk)
    assert next(chunks) == "partial"
    with pytest.raises(RuntimeError, match="big broke"):
        next(chunks)
    assert call.decision is not None and call.decision.fallback_from is None


def test_open_stream_starts_the_chosen_candidate_at_the_call() -> None:
    started: list[str] = []

    def start(candidate: Candidate[str]) -> Iterator[str]:
        started.append(candidate.model)
        if candidate is STRONG:
            raise RuntimeError("big refused")
        return iter(["x"])

    call = routed(fallback=True)
    chunks = call.open_stream(start)
    assert started == ["big", "small"]  # before a chunk is read
    assert list(chunks) == ["x"]


async def test_async_drivers_fall_back_the_same_way() -> None:
    async def attempt(candidate: Candidate[str]) -> str:
        if candidate is STRONG:
            raise RuntimeError("big failed")
        return "small answered"

    call = routed(fallback=True)
    assert await call.arun(attempt) == "small answered"

    async def start(candidate: Candidate[str]) -> AsyncIterator[str]:
        async def chunks() -> AsyncIterator[str]:
            if candidate is STRONG:
                raise RuntimeError("big failed")
            yield "a"

        return chunks()

    call = routed(fallback=True)
    assert [c async for c in call.astream(start)] == ["a"]
    call = routed(fallback=True)
    assert [c async for c in await call.aopen_stream(start)] == ["a"]
    assert call.decision is not None and call.decision.side == "weak"


def test_tagged_relays_with_the_decision_and_finishes_after_the_last_chunk() -> None:
    ended: list[tuple[list[str], str]] = []
    call = routed()
    tagged = call.tagged(
        iter(["a", "b"]),
        lambda c, d, first: f"{c}:{d.side}:{first}",
        lambda chunks, outcome: ended.append((chunks, outcome)),
    )
    assert list(tagged) == ["a:strong:True", "b:strong:False"]
    assert ended == [(["a:strong:True", "b:strong:False"], "complete")]
    assert list(call.tagged(iter([]), tag_nothing, lambda *end: ended.append(end))) == []  # type: ignore[arg-type]
    assert ended[-1] == ([], "complete")  # an empty answer is an answered call


def tag_nothing(chunk: str, decision: object, first: bool) -> str:
    return chunk


def cut_short(chunks: list[str], error: Exception | None) -> Iterator[str]:
    yield from chunks
    if error is not None:
        raise error


def test_tagged_finishes_a_stream_cut_short_after_its_first_chunk_once() -> None:
    # Broken: the model raised after a chunk (raised on); cancelled: the consumer closed it.
    ended: list[tuple[list[str], str]] = []

    def end(chunks: list[str], outcome: str) -> None:
        ended.append((chunks, outcome))

    call = routed(fallback=True)
    broken = call.tagged(cut_short(["a", "b"], ConnectionError("dropped")), tag_nothing, end)
    with pytest.raises(ConnectionError, match="dropped"):
        list(broken)
    assert ended == [(["a", "b"], "broken")]
    closed = call.tagged(cut_short(["a", "b", "c"], None), tag_nothing, end)
    assert next(closed) == "a"
    closed.close()
    closed.close()  # once
    assert ended[1:] == [(["a"], "cancelled")]
    # Nothing answered: a failure or a close before the first chunk finishes nothing.
    failed = call.tagged(cut_short([], ConnectionError("refused")), tag_nothing, end)
    with pytest.raises(ConnectionError, match="refused"):
        next(failed)
    call.tagged(cut_short(["a"], None), tag_nothing, end).close()
    assert len(ended) == 2


def test_an_error_finishing_a_stream_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def end(chunks: list[str], outcome: str) -> None:
        raise RuntimeError("bookkeeping down")

    closed = routed().tagged(cut_short(["a", "b"], None), tag_nothing, end)
    assert next(closed) == "a"
    closed.close()
    assert list(routed().tagged(cut_short(["a"], None), tag_nothing, end)) == ["a"]
    assert caplog.text.count("bookkeeping of a streamed call failed") == 2


async def acut_short(chunks: list[str], error: BaseException | None) -> AsyncIterator[str]:
    for chunk in chunks:
        yield chunk
    if error is not None:
        raise error


async def test_atagged_finishes_a_stream_broken_closed_or_cancelled_after_its_first_chunk() -> None:
    ended: list[tuple[list[str], str]] = []

    def end(chunks: list[str], outcome: str) -> None:
        ended.append((chunks, outcome))

    call = routed()
    assert [c async for c in call.atagged(acut_short(["a"], None), tag_nothing, end)] == ["a"]
    broken = call.atagged(acut_short(["a", "b"], ConnectionError("dropped")), tag_nothing, end)
    with pytest.raises(ConnectionError):
        _ = [c async for c in broken]
    closed = call.atagged(acut_short(["a", "b"], None), tag_nothing, end)
    assert await closed.__anext__() == "a"
    await closed.aclose()
    assert ended == [(["a"], "complete"), (["a", "b"], "broken"), (["a"], "cancelled")]

    # The reading task cancelled while it waits for the next chunk: the consumer went away.
    more = asyncio.Event()

    async def waits() -> AsyncIterator[str]:
        yield "a"
        await more.wait()
        yield "b"

    first = asyncio.Event()

    async def read() -> None:
        async for _ in call.atagged(waits(), tag_nothing, end):
            first.set()

    task = asyncio.ensure_future(read())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ended[3:] == [(["a"], "cancelled")]
    failed = call.atagged(acut_short([], ConnectionError("refused")), tag_nothing, end)
    with pytest.raises(ConnectionError):
        await failed.__anext__()
    assert len(ended) == 4


def test_finish_accounts_once_from_one_record(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db", store_prompts=True)
    tracker = CostTracker({"big-model": (1.0, 2.0)})
    shadow = ShadowRunner(log, 1.0, seed=0)
    call = routed(sinks=CallSinks(tracker, log, shadow))
    call.finish(
        Answer("the answer", 1000, None),
        shadow=lambda other: Answer(f"{other.model} shadow answer", 3, 4),
    )
    assert shadow.flush(30) and log.flush(30)
    report = tracker.report()
    assert (report.strong.calls, report.strong.input_tokens) == (1, 1000)
    assert report.strong.estimated_calls == 1  # output tokens counted from the text
    [row] = read_decisions(tmp_path / "log.db")
    assert (row["strong_model"], row["weak_model"]) == ("big-model", "small-model")
    assert row["input_tokens"] == 1000 and row["tokens_estimated"]
    assert row["cost_usd"] == pytest.approx(report.strong.cost)
    assert shadow.stats().answered == 1
    log.close()


def test_finish_never_fails_an_answered_call(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(CostTracker):
        def record(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def, override]
            raise RuntimeError("bookkeeping broke")

    call = routed(sinks=CallSinks(costs=Broken()))
    call.finish(Answer("ok", 1, 1))  # returns; the failure is logged
    assert "bookkeeping of an answered call failed" in caplog.text


def test_async_decide_routes_off_the_event_loop() -> None:
    engine = RoutingEngine(RandomRouter(seed=0), threshold=1.0)  # every scored call goes weak
    call: RoutedCall[str] = RoutedCall(engine, [STRONG, WEAK], "hello")
    decision = asyncio.run(call.adecide())
    assert decision.side == "weak" and decision.model == "small-model"
