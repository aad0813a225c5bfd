"""Unit tests of RouterChatModel's own logic, over scripted chat models and the random router."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from langchain_core.callbacks import UsageMetadataCallbackHandler
from langchain_core.messages import (
    AIMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from lc_helpers import RunRecorder, fake, scripted, usage
from pydantic import BaseModel, ValidationError

import routellm_base
from langchain_routellm import RouterChatModel, messages_to_turns
from routellm_base.errors import RoutingInputError
from routellm_base.routers.base import Router

ALWAYS_STRONG = 0.0  # threshold: every win rate >= 0
ALWAYS_WEAK = 1.0  # the random router draws from [0, 1), never reaching 1


def router_model(threshold: float = ALWAYS_STRONG, **kw: object) -> RouterChatModel:
    params: dict = {
        "strong": scripted("big-model", "strong answer here", in_tokens=11, out_tokens=7),
        "weak": scripted("small-model", "weak answer here", in_tokens=5, out_tokens=3),
        "router": routellm_base.RandomRouter(seed=0),
        "threshold": threshold,
    }
    params.update(kw)
    return RouterChatModel(**params)


# -- routing and response metadata ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "side", "model", "text", "tokens"),
    [
        (ALWAYS_STRONG, "strong", "big-model", "strong answer here", usage(11, 7)),
        (ALWAYS_WEAK, "weak", "small-model", "weak answer here", usage(5, 3)),
    ],
)
def test_invoke_routes_and_reports(threshold, side, model, text, tokens) -> None:
    llm = router_model(threshold)
    msg = llm.invoke("What is 2+2?")
    assert isinstance(msg, AIMessage)
    assert msg.content == text
    decision = msg.response_metadata["routellm"]
    assert decision["side"] == side
    assert decision["model"] == model
    assert decision["threshold"] == threshold
    assert decision["router"] == "random"
    assert 0.0 <= decision["win_rate"] < 1.0
    assert msg.response_metadata["model_name"] == model
    assert msg.usage_metadata == tokens
    assert "routellm_usage" not in msg.response_metadata  # moved back into usage_metadata


def test_decision_follows_threshold() -> None:
    llm = router_model(threshold=0.5)
    for _ in range(20):
        d = llm.invoke("hello").response_metadata["routellm"]
        assert d["side"] == ("strong" if d["win_rate"] >= 0.5 else "weak")


def test_strong_share_resolves_threshold_from_calibration() -> None:
    # The random router's calibration is uniform: share 0.3 -> threshold 0.7.
    llm = router_model(threshold=None, strong_share=0.3)
    d = llm.invoke("hello").response_metadata["routellm"]
    assert d["threshold"] == pytest.approx(0.7, abs=1e-3)


def test_a_strong_share_without_calibration_fails_at_construction(tmp_path) -> None:
    """Not at the first call: the model is refused when built, with the fix in the message."""
    from live_routers import uncalibrated_checkpoint

    folder = uncalibrated_checkpoint(tmp_path / "R")
    # Pydantic wraps the InvalidPolicyError (a ValueError) raised at construction.
    with pytest.raises(ValidationError, match="no stored calibration") as error:
        RouterChatModel(strong=fake("big"), weak=fake("small"), router=str(folder))
    assert "Give a threshold" in str(error.value) and "--calibration-prompts" in str(error.value)
    llm = RouterChatModel(strong=fake("big"), weak=fake("small"), router=folder, threshold=0.5)
    assert not llm._services.engines  # the check read the config only: nothing loaded yet


@pytest.mark.parametrize("side", ["strong", "weak"])
def test_force_by_kwarg_and_bind(side: str) -> None:
    llm = router_model(ALWAYS_STRONG if side == "weak" else ALWAYS_WEAK)
    msg = llm.invoke("hello", routellm_force=side)
    assert msg.response_metadata["routellm"]["side"] == side
    assert msg.response_metadata["routellm"]["forced"] is True
    assert msg.response_metadata["routellm"]["win_rate"] is None
    bound = llm.bind(routellm_force=side)
    assert bound.invoke("hello").response_metadata["routellm"]["side"] == side
    chunks = list(llm.stream("hello", routellm_force=side))
    assert chunks[0].response_metadata["routellm"]["side"] == side
    # the override never reaches the chosen model
    chosen = llm.strong if side == "strong" else llm.weak
    assert all("routellm_force" not in call for call in chosen.calls)


def test_force_by_config_metadata() -> None:
    from langchain_core.prompts import ChatPromptTemplate

    llm = router_model(ALWAYS_WEAK)
    config = {"metadata": {"routellm_force": "strong"}}
    msg = llm.invoke("hello", config=config)
    assert msg.response_metadata["routellm"]["side"] == "strong"
    assert llm.batch(["hello"], config=config)[0].response_metadata["routellm"]["side"] == "strong"
    # In a chain the config reaches the router's stream too.
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm
    chunks = list(chain.stream({"q": "hello"}, config=config))
    assert chunks[0].response_metadata["routellm"]["side"] == "strong"
    # A direct stream reads its own config (no run hands it to _stream), as do async calls.
    chunks = list(llm.stream("hello", config=config))
    assert chunks[0].response_metadata["routellm"]["side"] == "strong"
    message = asyncio.run(llm.ainvoke("hello", config=config))
    assert message.response_metadata["routellm"]["side"] == "strong"
    # An argument wins over the config; the metadata never reaches the chosen model.
    assert (
        llm.invoke("hello", config, routellm_force="weak").response_metadata["routellm"]["side"]
        == "weak"
    )
    assert all("routellm_force" not in call for call in llm.strong.calls + llm.weak.calls)


def test_force_by_configurable_as_in_a_pool() -> None:
    from langchain_core.prompts import ChatPromptTemplate

    llm = router_model(ALWAYS_STRONG)
    config = {"configurable": {"routellm_force": "weak"}}
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm
    assert chain.invoke({"q": "hello"}, config=config).response_metadata["routellm"]["side"] == (
        "weak"
    )
    chunks = list(llm.stream("hello", config=config))
    assert chunks[0].response_metadata["routellm"]["side"] == "weak"
    # A pool's settings in the same configurable are another component's keys here: not read.
    configurable = {"cost_weight": 1.0, "routellm_force": "weak"}
    message = llm.invoke("hello", config={"configurable": configurable})
    assert message.response_metadata["routellm"]["side"] == "weak"
    assert all("cost_weight" not in call for call in llm.weak.calls)


def test_bad_force_value_is_a_clear_error() -> None:
    with pytest.raises(
        RoutingInputError, match="routellm_force must be 'strong' or 'weak', got 'medium'"
    ):
        router_model().invoke("hello", routellm_force="medium")


def test_a_per_call_threshold_or_strong_share_routes_that_call_and_is_not_forwarded() -> None:
    llm = router_model(ALWAYS_WEAK)
    message = llm.invoke("hello", threshold=ALWAYS_STRONG)
    record = message.response_metadata["routellm"]
    assert record["side"] == "strong" and record["threshold"] == ALWAYS_STRONG
    assert record["extra"]["call_policy"] == {"threshold": ALWAYS_STRONG}
    assert llm.invoke("hello", strong_share=1.0).response_metadata["routellm"]["side"] == "strong"
    shared = llm.invoke("hello", strong_share=0.5).response_metadata["routellm"]
    assert shared["threshold"] == pytest.approx(0.5)  # the random router's uniform calibration
    assert llm.invoke("hello").response_metadata["routellm"]["side"] == "weak"  # its own policy
    chunks = list(llm.stream("hello", threshold=ALWAYS_STRONG))
    assert chunks[0].response_metadata["routellm"]["side"] == "strong"
    config = {"configurable": {"threshold": ALWAYS_STRONG}}
    assert llm.invoke("hello", config=config).response_metadata["routellm"]["side"] == "strong"
    assert asyncio.run(llm.ainvoke("hello", threshold=ALWAYS_STRONG)).content == (
        "strong answer here"
    )
    assert llm.decide("hello", threshold=ALWAYS_STRONG).side == "strong"
    assert llm.strong.calls and all(
        "threshold" not in call and "strong_share" not in call for call in llm.strong.calls
    )
    assert {"threshold", "strong_share"} <= {spec.id for spec in llm.config_specs}


def test_a_bad_per_call_policy_is_refused_before_any_model_is_called() -> None:
    llm = router_model(ALWAYS_WEAK)
    with pytest.raises(routellm_base.InvalidPolicyError, match="threshold must be in \\[0, 1\\]"):
        llm.invoke("hello", threshold=2.0)
    with pytest.raises(routellm_base.InvalidPolicyError, match="not both"):
        llm.invoke("hello", threshold=0.1, strong_share=0.5)
    windowed = router_model(threshold=None, strong_share=0.5, share_window=50)
    with pytest.raises(routellm_base.InvalidPolicyError, match="give the call a threshold"):
        windowed.invoke("hello", strong_share=0.3)
    with pytest.raises(RoutingInputError, match="\\['max_cost'\\] route a pool .* takes \\["):
        llm.invoke("hello", max_cost=0.01)
    assert llm.strong.calls == llm.weak.calls == windowed.strong.calls == []


def test_an_unknown_routellm_argument_is_refused_not_forwarded() -> None:
    llm = router_model(ALWAYS_WEAK)
    message = "unknown call argument 'routellm_forse': .* takes \\['routellm_force'"
    with pytest.raises(RoutingInputError, match=message):
        llm.invoke("hello", routellm_forse="strong")
    with pytest.raises(RoutingInputError, match=message):
        llm.bind(routellm_forse="strong").invoke("hello")
    with pytest.raises(RoutingInputError, match=message):
        list(llm.stream("hello", routellm_forse="strong"))
    # the same misspelling as a config key (a trial: ignored), while another runnable's
    # configurable keys pass, and a pool's setting is not this pair's to read
    config = {"configurable": {"routellm_forse": "strong", "thread_id": "t1"}}
    with pytest.raises(RoutingInputError, match="unknown config.'configurable'. key.s. "):
        llm.invoke("hello", config=config)
    assert llm.strong.calls == llm.weak.calls == []
    llm.invoke("hello", config={"configurable": {"thread_id": "t1", "max_cost": 0.01}})
    assert len(llm.weak.calls) == 1


def test_stop_and_kwargs_reach_the_chosen_model() -> None:
    llm = router_model(ALWAYS_STRONG, stop=["DEFAULT"])
    llm.invoke("hello", stop=["###"], seed=7)
    assert llm.strong.calls[-1]["stop"] == ["###"]
    assert llm.strong.calls[-1]["seed"] == 7
    llm.invoke("hello")  # the field's default stop sequences
    assert llm.strong.calls[-1]["stop"] == ["DEFAULT"]
    list(llm.stream("hello", stop=["!!"]))
    assert llm.strong.calls[-1]["stop"] == ["!!"]
    assert llm.weak.calls == []


def test_temperature_and_max_tokens_forwarded_only_when_set() -> None:
    llm = router_model(ALWAYS_STRONG)
    llm.invoke("hi")
    assert "temperature" not in llm.strong.calls[-1] and "max_tokens" not in llm.strong.calls[-1]
    llm2 = router_model(ALWAYS_STRONG, temperature=0.2, max_tokens=9)
    llm2.invoke("hi")
    assert llm2.strong.calls[-1]["temperature"] == 0.2
    assert llm2.strong.calls[-1]["max_tokens"] == 9


# -- streaming --------------------------------------------------------------------------------


def test_stream_aggregate_has_decision_model_name_and_usage() -> None:
    llm = router_model(ALWAYS_STRONG)
    chunks = list(llm.stream("hello"))
    assert len(chunks) >= 3  # really streamed, word by word
    assert "routellm" in chunks[0].response_metadata  # decision arrives with the first chunk
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert full.content == "strong answer here"
    assert full.response_metadata["routellm"]["side"] == "strong"
    # the chosen model also sends model_name on its last chunk: it must not be concatenated
    assert full.response_metadata["model_name"] == "big-model"
    assert full.usage_metadata == usage(11, 7)
    assert chunks[-1].chunk_position == "last"


@pytest.mark.asyncio
async def test_astream_ainvoke_abatch() -> None:
    llm = router_model(ALWAYS_WEAK)
    chunks = [c async for c in llm.astream("hello")]
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert full.content == "weak answer here"
    assert full.response_metadata["routellm"]["side"] == "weak"
    assert full.usage_metadata == usage(5, 3)
    msg = await llm.ainvoke("hello")
    assert msg.response_metadata["model_name"] == "small-model"
    assert msg.usage_metadata == usage(5, 3)
    results = await llm.abatch(["a", "b", "c"])
    assert [r.content for r in results] == ["weak answer here"] * 3
    assert all(r.usage_metadata == usage(5, 3) for r in results)


def test_batch() -> None:
    llm = router_model(threshold=0.5)
    results = llm.batch(["a", "b", "c", "d", "e", "f"])
    sides = {r.response_metadata["routellm"]["side"] for r in results}
    for r in results:
        side = r.response_metadata["routellm"]["side"]
        assert r.content == f"{side} answer here"
        assert r.response_metadata["model_name"] == (
            "big-model" if side == "strong" else "small-model"
        )
    assert sides <= {"strong", "weak"}


def test_streaming_field_streams_inside_invoke() -> None:
    llm = router_model(ALWAYS_STRONG, streaming=True)
    msg = llm.invoke("hello")
    assert llm.strong.calls[-1].get("streamed") is True
    assert msg.content == "strong answer here"
    assert msg.usage_metadata == usage(11, 7)
    assert msg.response_metadata["model_name"] == "big-model"


# -- async routing does not block the loop ----------------------------------------------------------


class SlowRouter(Router):
    family = "slow"

    def __init__(self, seconds: float) -> None:
        super().__init__("slow", calibration=routellm_base.RandomRouter().calibration)
        self.seconds = seconds
        self.threads: list[int] = []

    def _win_rate(self, texts: list[str]) -> np.ndarray:
        self.threads.append(threading.get_ident())
        time.sleep(self.seconds)  # a blocking embedder
        return np.full(len(texts), 0.9)


@pytest.mark.asyncio
async def test_async_routing_never_blocks_the_event_loop() -> None:
    router = SlowRouter(0.3)
    llm = router_model(0.5, router=router)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    msg = await llm.ainvoke("hello")
    chunks = [c async for c in llm.astream("hello")]
    task.cancel()
    assert msg.response_metadata["routellm"]["side"] == "strong"
    assert chunks[0].response_metadata["routellm"]["side"] == "strong"
    # 0.6 s of blocking router work ran in worker threads while the loop kept ticking
    assert ticks >= 20
    assert threading.get_ident() not in router.threads


# -- callbacks: one run per call, usage counted once ---------------------------------------------


def test_run_inside_a_chain_keeps_tags_and_metadata() -> None:
    from langchain_core.prompts import ChatPromptTemplate

    llm = router_model(ALWAYS_STRONG)
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm
    for how in ("invoke", "stream"):
        rec = RunRecorder()
        config = {"callbacks": [rec], "tags": ["mytag"], "metadata": {"user": "u1"}}
        if how == "invoke":
            chain.invoke({"q": "hi"}, config=config)
        else:
            list(chain.stream({"q": "hi"}, config=config))
        (run,) = rec.starts
        assert run["parent_run_id"] is not None  # the chain's step
        assert "mytag" in run["tags"] and run["metadata"]["user"] == "u1"
        assert run["metadata"]["ls_provider"] == "routellm"
        answer = rec.ends[run["run_id"]].generations[0][0].message
        assert answer.response_metadata["routellm"]["side"] == "strong"
        assert answer.usage_metadata == usage(11, 7)


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_usage_metadata_callback_counts_once(mode: str) -> None:
    llm = router_model(ALWAYS_STRONG)
    handler = UsageMetadataCallbackHandler()
    for _ in range(2):
        if mode == "invoke":
            llm.invoke("hello", config={"callbacks": [handler]})
        else:
            list(llm.stream("hello", config={"callbacks": [handler]}))
    assert handler.usage_metadata == {"big-model": usage(22, 14)}


def test_get_usage_metadata_callback_counts_once() -> None:
    from langchain_core.callbacks import get_usage_metadata_callback

    llm = router_model(ALWAYS_WEAK)
    with get_usage_metadata_callback() as cb:
        llm.invoke("hello")
        list(llm.stream("hello"))
    assert cb.usage_metadata == {"small-model": usage(10, 6)}


# -- tools and structured output --------------------------------------------------------------


class Weather(BaseModel):
    """Weather in a city."""

    city: str
    celsius: int


def _tool_reply(name: str, args: dict) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": "call_1"}],
        usage_metadata=usage(20, 8),
    )


def test_bind_tools_binds_both_sides_and_chosen_gets_them() -> None:
    strong = scripted("big-model", _tool_reply("Weather", {"city": "Oslo", "celsius": 3}))
    weak = scripted("small-model", "no tools")
    llm = RouterChatModel(
        strong=strong, weak=weak, router=routellm_base.RandomRouter(seed=0), threshold=0.0
    )
    bound = llm.bind_tools([Weather], tool_choice="any")
    msg = bound.invoke("weather in Oslo?")
    assert msg.tool_calls[0]["args"] == {"city": "Oslo", "celsius": 3}
    assert msg.response_metadata["routellm"]["side"] == "strong"
    call = strong.calls[-1]
    assert call["tools"][0]["function"]["name"] == "Weather"
    assert call["tool_choice"] == "any"
    # the bound copy shares the original's engine (created once)
    assert bound.bound.engine is llm.engine
    # streaming through the bound router keeps tool calls
    chunks = list(bound.stream("weather?"))
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert full.tool_calls[0]["name"] == "Weather"


@pytest.mark.parametrize("bad_side", ["strong", "weak"])
def test_bind_tools_error_names_the_side(bad_side: str) -> None:
    good = scripted("good", "x")
    bad = fake("bad")  # GenericFakeChatModel cannot bind tools
    sides = {"strong": bad, "weak": good} if bad_side == "strong" else {"strong": good, "weak": bad}
    llm = RouterChatModel(**sides, router="random", threshold=0.5)
    with pytest.raises(ValueError, match=f"the {bad_side} model \\(GenericFakeChatModel\\)"):
        llm.bind_tools([Weather])
    with pytest.raises(ValueError, match=f"the {bad_side} model \\(GenericFakeChatModel\\)"):
        llm.with_structured_output(Weather)


@pytest.mark.asyncio
@pytest.mark.parametrize("threshold", [ALWAYS_STRONG, ALWAYS_WEAK])
async def test_with_structured_output_routes(threshold: float) -> None:
    strong = scripted("big-model", _tool_reply("Weather", {"city": "Oslo", "celsius": 3}))
    weak = scripted("small-model", _tool_reply("Weather", {"city": "Rome", "celsius": 20}))
    llm = RouterChatModel(
        strong=strong, weak=weak, router=routellm_base.RandomRouter(seed=0), threshold=threshold
    )
    structured = llm.with_structured_output(Weather)
    expected = (
        Weather(city="Oslo", celsius=3)
        if threshold == ALWAYS_STRONG
        else Weather(city="Rome", celsius=20)
    )
    assert structured.invoke("weather?") == expected
    assert await structured.ainvoke("weather?") == expected
    rec = RunRecorder()
    forced = structured.invoke(
        "weather?", config={"metadata": {"routellm_force": "strong"}, "callbacks": [rec]}
    )
    assert forced == Weather(city="Oslo", celsius=3)
    (router_run,) = rec.starts  # one model run: the router's, which carries the decision
    answer = rec.ends[router_run["run_id"]].generations[0][0].message
    assert answer.response_metadata["routellm"]["side"] == "strong"


# -- validation and engine lifecycle ----------------------------------------------------------------


def test_policy_errors_come_at_construction() -> None:
    with pytest.raises(ValidationError, match="either threshold or strong_share"):
        router_model(threshold=0.3, strong_share=0.3)
    with pytest.raises(ValidationError, match="threshold"):
        router_model(threshold=1.5)
    with pytest.raises(ValidationError, match="unknown router 'nope'"):
        router_model(router="nope")
    with pytest.raises(ValidationError, match="routing_text_mode"):
        router_model(routing_text_mode="everything")
    with pytest.raises(ValidationError, match="max_tokens must be a positive integer"):
        router_model(routing_text_max_tokens=0)
    with pytest.raises(ValidationError, match="strong_shar"):  # typo: extra fields are refused
        router_model(threshold=None, strong_shar=0.3)
    with pytest.raises(ValidationError, match="price"):
        router_model(prices={"big-model": "cheap"})


def test_no_user_turn_is_a_clear_error() -> None:
    llm = router_model()
    with pytest.raises(RoutingInputError, match="no user turn and no system text"):
        llm.invoke([AIMessage("only an assistant turn")])
    with pytest.raises(RoutingInputError, match="no text to route on"):
        llm.invoke([HumanMessage(content=[{"type": "image_url", "image_url": {"url": "x"}}])])


def test_engine_is_lazy_cached_and_thread_safe() -> None:
    llm = router_model()
    assert not llm._services.engines  # nothing loaded at construction
    engines = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        engines.append(llm.engine)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(e) for e in engines}) == 1
    llm.invoke("hello")
    assert llm.engine is engines[0]


def test_messages_to_turns_and_skipped_parts() -> None:
    messages = [
        SystemMessage("sys"),
        HumanMessage(
            content=[
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "u"}},
            ]
        ),
        AIMessage("ok"),
        ToolMessage("42", tool_call_id="t1"),
        ChatMessage(role="critic", content="hm"),
    ]
    turns = messages_to_turns(messages)
    assert [t.role for t in turns] == ["system", "user", "assistant", "tool", "critic"]
    msg = router_model().invoke(messages[:2])
    assert msg.response_metadata["routellm"]["skipped_parts"] == ["image_url"]


def test_routing_text_options_reach_the_engine() -> None:
    llm = router_model(routing_text_mode="conversation", routing_text_max_tokens=5)
    d = llm.invoke(
        [
            HumanMessage("one two three four five six seven eight"),
            AIMessage("x"),
            HumanMessage("nine"),
        ]
    )
    assert d.response_metadata["routellm"]["routing_text_tokens"] == 5
    assert llm.engine.routing_text_options.mode == "conversation"


def test_decide_without_calling_a_model() -> None:
    llm = router_model(ALWAYS_WEAK)
    d = llm.decide("hello")
    assert d.side == "weak" and d.model == "small-model"
    assert llm.strong.calls == [] and llm.weak.calls == []


def test_identifying_and_ls_params() -> None:
    llm = router_model(threshold=0.4)
    assert llm._identifying_params["strong"] == "big-model"
    assert llm._identifying_params["threshold"] == 0.4
    ls = llm._get_ls_params(stop=["x"])
    assert ls["ls_provider"] == "routellm"
    assert ls["ls_model_name"] == "big-model|small-model"
    assert ls["ls_stop"] == ["x"]


def test_model_name_defaults_and_overrides() -> None:
    llm = RouterChatModel(
        strong=fake("a"),
        weak=fake("b"),
        router="random",
        threshold=0.0,
        strong_model_name="my-strong",
    )
    msg = llm.invoke("hi")
    assert msg.response_metadata["model_name"] == "my-strong"
    llm2 = RouterChatModel(strong=fake("a"), weak=fake("b"), router="random", threshold=1.0)
    assert llm2.invoke("hi").response_metadata["model_name"] == "GenericFakeChatModel"


def test_default_router_is_task_experts() -> None:
    assert RouterChatModel.model_fields["router"].default == "task_experts"


@pytest.mark.asyncio
async def test_astream_events_show_one_model_run_with_the_decision() -> None:
    llm = router_model(ALWAYS_STRONG)
    events = [e async for e in llm.astream_events("hello", version="v2")]
    starts = [e for e in events if e["event"] == "on_chat_model_start"]
    assert [e["name"] for e in starts] == ["RouterChatModel"]
    tokens = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    assert "".join(str(t.content) for t in tokens) == "strong answer here"
    assert tokens[0].response_metadata["routellm"]["side"] == "strong"


@pytest.mark.parametrize("router_name", ["mf", "task_experts"])
def test_bundled_router_end_to_end(router_name: str) -> None:
    llm = RouterChatModel(
        strong=scripted("big-model", "s"),
        weak=scripted("small-model", "w"),
        strong_share=0.5,
        router=router_name,
    )
    for prompt in [
        "hi",
        "thanks!",
        "Prove the Cauchy-Schwarz inequality in an inner product space.",
        "Derive the closed form of the sum of the first n squares by induction.",
    ]:
        msg = llm.invoke(prompt)
        d = msg.response_metadata["routellm"]
        assert d["router"] == router_name
        assert d["threshold"] == pytest.approx(llm.engine.threshold)
        assert d["side"] == ("strong" if d["win_rate"] >= d["threshold"] else "weak")
        assert msg.content == d["side"][0]
    assert llm.engine.router.name == router_name
