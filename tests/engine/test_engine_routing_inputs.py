"""Routing inputs that used to fail or route silently wrong (issue 11, "Text that breaks token
counting" and "Routing inputs"), and the routing-text hook (issue 14)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from routellm_base import (
    Calibration,
    ChatTurn,
    InvalidPolicyError,
    RoutingEngine,
    RoutingInputError,
    RoutingPolicy,
    RoutingTextOptions,
    load_router,
    routing_text,
)
from routellm_base.costs import CostTracker
from routellm_base.routers.base import Router
from routellm_base.routing_text import TemplateField
from routellm_base.tokens import (
    MAX_ENCODE_CHARS,
    count_tokens,
    get_encoding,
    measure_tokens,
    token_ids,
    truncate_head,
)

SPECIAL = "What does <|endoftext|> mean? And <|fim_prefix|>?"
HUGE = "word " * 250_000  # 1.25 million characters
UNREADABLE = ["สวัสดี สบายดีไหม", "😀🎉🔥", "你好"]


class ScriptedRouter(Router):
    """Fixed win rates per text, with an optional real embedder; records what it scored."""

    family = "scripted"

    def __init__(
        self, rates: dict[str, float], default: float = 0.5, embedder=None, calibration=None
    ):
        super().__init__("scripted", embedder=embedder, calibration=calibration)
        self.rates = rates
        self.default = default
        self.scored: list[str] = []

    def _win_rate(self, texts):
        self.scored.extend(texts)
        return np.asarray([self.rates.get(t, self.default) for t in texts])


@pytest.fixture(scope="module")
def bundled_embedder():
    return load_router("mf").embedder


# -- text that looks like a special token ----------------------------------------------------


def test_special_token_text_is_counted_as_plain_text():
    plain = get_encoding().encode_ordinary(SPECIAL)
    assert count_tokens(SPECIAL) == len(plain)
    assert count_tokens("<|endoftext|>") > 1  # its characters, not the one special id
    text, tokens, truncated = truncate_head(SPECIAL, 5)
    assert tokens == 5 and truncated and SPECIAL.startswith(text)


@pytest.mark.parametrize(
    "options",
    [
        RoutingTextOptions(max_tokens=128),
        RoutingTextOptions(mode="conversation"),
        RoutingTextOptions(mode="conversation", max_tokens=8),
    ],
)
def test_special_token_text_routes_whenever_tokens_are_counted(options):
    conversation = [ChatTurn("system", "<|im_start|>system"), ChatTurn("user", SPECIAL)]
    decision = RoutingEngine(
        ScriptedRouter({}), threshold=0.5, routing_text_options=options
    ).decide(conversation)
    assert decision.routing_text_tokens is not None and decision.routing_text_tokens > 0


def test_cost_tracker_counts_special_token_text_when_the_model_reports_no_usage():
    tracker = CostTracker({"w": (1.0, 1.0)})
    tracker.record("weak", "w", input_text=SPECIAL, output_text="<|endoftext|> ends a document")
    weak = tracker.report().weak
    assert weak.input_tokens == len(get_encoding().encode_ordinary(SPECIAL))
    assert weak.estimated_calls == 1 and weak.extrapolated_calls == 0


# -- oversized input ----------------------------------------------------------------------------


def test_oversized_text_is_extrapolated_not_refused():
    exact = measure_tokens("word " * 1000)
    assert exact == (len(get_encoding().encode_ordinary("word " * 1000)), False)
    estimate = measure_tokens(HUGE)
    assert estimate.estimated
    assert estimate.tokens == pytest.approx(250_000, rel=0.01)


@pytest.mark.parametrize("unit", ["word ", "a  b\n", "x\ty "])
def test_token_ids_of_long_text_are_those_of_one_encoding(unit):
    # Longer than one piece: cut before a space (where cl100k never joins), else at the length.
    text = SPECIAL + unit * (3 * MAX_ENCODE_CHARS // len(unit))
    assert token_ids(text) == get_encoding().encode_ordinary(text)
    assert token_ids("") == [] and token_ids(SPECIAL) == get_encoding().encode_ordinary(SPECIAL)


def test_cost_report_says_when_a_count_is_extrapolated():
    tracker = CostTracker({"w": (1.0, 1.0)})
    tracker.record("weak", "w", input_text=HUGE, output_text="short answer")
    tracker.record("weak", "w", input_text="hi", output_text="hello")
    report = tracker.report()
    assert report.weak.calls == 2 and report.weak.estimated_calls == 2
    assert report.weak.extrapolated_calls == 1
    assert report.weak.input_tokens == pytest.approx(250_000, rel=0.01)
    assert f"1 extrapolated from the first {MAX_ENCODE_CHARS:,} characters" in report.format()
    assert report.to_dict()["weak"]["extrapolated_calls"] == 1


@pytest.mark.parametrize(
    "options",
    [RoutingTextOptions(max_tokens=128), RoutingTextOptions(mode="conversation", max_tokens=128)],
)
def test_oversized_routing_text_is_truncated_before_tokenising(options):
    conversation = [
        ChatTurn("user", "summarise this"),
        ChatTurn("tool", HUGE),
        ChatTurn("user", HUGE),
    ]
    result = routing_text(conversation, options)
    assert result.truncated and result.tokens is not None and result.tokens <= 128
    assert count_tokens(result.text) <= 128


# -- no known token -----------------------------------------------------------------------------


def test_static_embedder_counts_known_tokens(bundled_embedder):
    counts = bundled_embedder.known_token_counts([*UNREADABLE, "hello world", "héllo 😀"])
    assert list(counts[:3]) == [0, 0, 0]
    assert counts[3] == 2 and counts[4] >= 1


def test_unreadable_text_goes_by_the_rule_not_the_embedding_of_nothing(bundled_embedder):
    router = ScriptedRouter({}, default=0.1, embedder=bundled_embedder)  # would go weak
    engine = RoutingEngine(router, threshold=0.5)
    decisions = engine.decide_many([*UNREADABLE, "hello world"])
    for d in decisions[:3]:
        assert d.no_known_tokens and d.win_rate is None
        assert d.side == "strong"  # the documented default side
        assert d.to_dict()["no_known_tokens"] is True
    assert not decisions[3].no_known_tokens and decisions[3].side == "weak"
    assert router.scored == ["hello world"]  # the router never scored the empty embeddings


def test_unreadable_side_is_configurable(bundled_embedder):
    router = ScriptedRouter({}, default=0.9, embedder=bundled_embedder)
    weak = RoutingEngine(router, threshold=0.5, no_known_tokens_side="weak").decide(UNREADABLE[0])
    assert weak.side == "weak" and weak.no_known_tokens
    scored = RoutingEngine(router, threshold=0.5, no_known_tokens_side=None).decide(UNREADABLE[0])
    assert scored.side == "strong" and scored.win_rate == 0.9 and scored.no_known_tokens
    with pytest.raises(InvalidPolicyError, match="no_known_tokens_side"):
        RoutingPolicy(no_known_tokens_side="medium")  # type: ignore[arg-type]


def test_scoring_unreadable_text_anyway_still_records_no_known_tokens(bundled_embedder):
    """no_known_tokens_side=None scores an emoji-only prompt (as documented) but the decision
    said no_known_tokens=False: the fact was lost. It is kept; only the routing ignores it."""
    router = ScriptedRouter({}, default=0.2, embedder=bundled_embedder)
    engine = RoutingEngine(router, threshold=0.5, no_known_tokens_side=None)
    emoji, hello = engine.decide_many(["😀🎉🔥", "hello world"])
    assert emoji.no_known_tokens and emoji.to_dict()["no_known_tokens"] is True
    assert emoji.win_rate == 0.2 and emoji.side == "weak"  # scored and routed by its win rate
    assert not hello.no_known_tokens and router.scored == ["😀🎉🔥", "hello world"]


def test_a_pool_without_the_rule_still_records_no_known_tokens(bundled_embedder):
    from live_routers import FixedPoolRouter

    from routellm_base.pool import Pool, PoolEngine

    router = FixedPoolRouter({"big": 0.9, "small": 0.8})
    router.embedder = bundled_embedder
    prices = {"big": (10.0, 30.0), "small": (0.1, 0.3)}
    engine = PoolEngine(router, Pool(prices), no_known_tokens_rule=False)
    emoji, hello = engine.decide_many(["😀🎉🔥", "hello world"])
    assert emoji.no_known_tokens and not hello.no_known_tokens
    assert emoji.pool.quality == {"big": 0.9, "small": 0.8}  # scored, not ruled
    ruled = PoolEngine(router, Pool(prices)).decide("😀🎉🔥")
    assert ruled.no_known_tokens and ruled.pool.quality == {} and ruled.side == "big"


def test_a_strong_share_of_0_or_1_holds_for_unreadable_text_too(bundled_embedder):
    """The ends promise no call strong and every call strong: the no-known-tokens rule yields."""
    router = ScriptedRouter({}, default=0.9, embedder=bundled_embedder)
    router.calibration = None  # the ends need none
    none = RoutingEngine(router, strong_share=0.0).decide_many([*UNREADABLE, "hello world"])
    assert [d.side for d in none] == ["weak"] * 4 and none[0].no_known_tokens
    every = RoutingEngine(router, strong_share=1.0, no_known_tokens_side="weak").decide_many([*UNREADABLE, "hi"])
    assert [d.side for d in every] == ["strong"] * 4 and every[0].no_known_tokens
    # a fixed threshold keeps the rule
    assert RoutingEngine(router, threshold=0.0, no_known_tokens_side="weak").decide(UNREADABLE[0]).side == "weak"


def test_bundled_router_flags_thai_and_emoji():
    engine = RoutingEngine("mf", strong_share=0.5, no_known_tokens_side="weak")
    for text in UNREADABLE:
        decision = engine.decide(text)
        assert decision.no_known_tokens and decision.side == "weak"
    assert not engine.decide("Prove that sqrt(2) is irrational").no_known_tokens


# -- a conversation with only a system message ----------------------------------------------------


@pytest.mark.parametrize("mode", ["last_user", "conversation"])
def test_system_only_conversation_routes_on_the_system_text(mode):
    conversation = [ChatTurn("system", "Summarise: the cat sat on the mat")]
    result = routing_text(conversation, RoutingTextOptions(mode=mode))
    assert "Summarise: the cat sat on the mat" in result.text and result.source == "system"
    router = ScriptedRouter({"Summarise: the cat sat on the mat": 0.8})
    decision = RoutingEngine(
        router, threshold=0.5, routing_text_options=RoutingTextOptions(mode=mode)
    ).decide(conversation)
    assert decision.routing_text_source == "system"
    if mode == "last_user":
        assert decision.side == "strong" and decision.win_rate == 0.8


def test_user_turn_still_wins_over_system_text():
    result = routing_text([ChatTurn("system", "be terse"), ChatTurn("user", "hi")])
    assert result.text == "hi" and result.source == "user"


# -- strong_share = 1.0 -------------------------------------------------------------------------


def test_share_one_sends_every_call_strong():
    calibration = Calibration.from_win_rates([0.3, 0.5, 0.7], "three prompts")
    assert calibration.threshold_for_share(1.0) == 0.0
    router = ScriptedRouter({"easy": 0.01, "zero": 0.0}, calibration=calibration)
    decisions = RoutingEngine(router, strong_share=1.0).decide_many(["easy", "zero", "other"])
    assert [d.side for d in decisions] == ["strong"] * 3


def test_share_one_with_the_bundled_router():
    engine = RoutingEngine("mf", strong_share=1.0)
    prompts = ["hi", "ok", "thanks", "What is 2+2?", "Prove Fermat's last theorem."]
    assert {d.side for d in engine.decide_many(prompts)} == {"strong"}


# -- conversation mode keeps the last user turn ----------------------------------------------------


def test_conversation_mode_keeps_the_last_user_request_after_a_large_tool_result():
    tool_json = (
        '{"rows": [' + ", ".join(f'{{"id": {i}, "temp": {i % 30}}}' for i in range(3000)) + "]}"
    )
    conversation = [
        ChatTurn("system", "You are a weather agent."),
        ChatTurn("user", "Compare this week's temperatures in Paris and Rome."),
        ChatTurn("assistant", "calling get_weather"),
        ChatTurn("tool", tool_json),
    ]
    result = routing_text(conversation, RoutingTextOptions(mode="conversation", max_tokens=256))
    assert "user: Compare this week's temperatures in Paris and Rome." in result.text
    assert result.truncated and count_tokens(result.text) <= 256
    # Chronological order; the newest turn (the tool result) fills what is left of the budget.
    lines = result.text.split("\n")
    assert lines[0].startswith("user: Compare") and lines[1].startswith("tool: {")
    assert "calling get_weather" not in result.text


def test_conversation_mode_truncates_a_last_user_turn_longer_than_the_budget():
    conversation = [ChatTurn("assistant", "earlier"), ChatTurn("user", "please " * 500)]
    result = routing_text(conversation, RoutingTextOptions(mode="conversation", max_tokens=32))
    assert result.text.startswith("user: please") and "earlier" not in result.text
    assert result.truncated and count_tokens(result.text) <= 32


# -- routing-text hook --------------------------------------------------------------------------


def test_routing_text_fn_replaces_the_default_rule_and_is_recorded():
    seen = []

    def question_only(turns):
        seen.append([t.role for t in turns])
        return "the question"

    router = ScriptedRouter({"the question": 0.9}, default=0.1)
    engine = RoutingEngine(
        router, threshold=0.5, routing_text_options=RoutingTextOptions(fn=question_only)
    )
    decision = engine.decide(
        [ChatTurn("system", "s"), ChatTurn("user", "context ... the question")]
    )
    assert seen == [["system", "user"]]
    assert decision.side == "strong" and decision.routing_text_source == "routing_text_fn"
    assert router.scored == ["the question"]


def test_routing_text_fn_none_falls_back_and_bad_values_raise():
    fallback = routing_text("hello", RoutingTextOptions(fn=lambda turns: None))
    assert fallback.text == "hello" and fallback.source == "user"
    budgeted = routing_text("x", RoutingTextOptions(fn=lambda turns: "word " * 100, max_tokens=10))
    assert budgeted.tokens == 10 and budgeted.truncated
    for bad in ("  ", 42):
        with pytest.raises(RoutingInputError, match="routing_text_fn"):
            routing_text("hello", RoutingTextOptions(fn=lambda turns, bad=bad: bad))
    with pytest.raises(RoutingInputError, match="callable"):
        RoutingTextOptions(fn="question")  # type: ignore[arg-type]


RAG_TEMPLATE = "Use the context to answer.\nContext:\n{context}\n---\nQuestion: {question}\nAnswer:"


def test_template_field_reads_the_question_back_out_of_a_filled_prompt():
    field = TemplateField([RAG_TEMPLATE], "question")
    context = "Question: a decoy line inside a document\n" + "Paris is in France. " * 50
    filled = RAG_TEMPLATE.format(context=context, question="Where is Paris?\nBe brief.")
    assert field([ChatTurn("user", filled)]) == "Where is Paris?\nBe brief."
    assert field([ChatTurn("user", "an unrelated prompt")]) is None
    assert pickle.loads(pickle.dumps(field)) == field
    with pytest.raises(RoutingInputError, match="question"):
        TemplateField(["no fields here {context}"], "question")


def test_the_unreadable_check_reuses_the_embedding_the_router_scores():
    # Asking which texts are unreadable must not tokenise them a second time: the router's
    # embedding of the same texts comes from the embedder's cache.
    from routellm_base import load_router

    router = load_router("task_experts")
    router.embedder._cache.clear()
    misses, hits = router.embedder.cache_misses, router.embedder.cache_hits
    decisions = RoutingEngine(router, threshold=0.5).decide_many(["a fresh prompt about monads", "สวัสดี"])
    assert decisions[1].no_known_tokens and not decisions[0].no_known_tokens
    assert router.embedder.cache_misses - misses == 2  # each text embedded once
    assert router.embedder.cache_hits - hits == 1  # the scored text was read back from the cache
