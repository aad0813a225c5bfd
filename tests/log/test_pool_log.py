"""Calls routed among a pool of several models in the routing log (schema 5), on SQLite and on a
real PostgreSQL server: each decision's candidates, predictions, policy and choice written and
read back, a schema-4 log upgraded with its rows, shadow comparisons to a seeded sample of the
other candidates, judged, and read back as named battles by ``pool_battles``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pool_helpers import BIG, MID, PRICES, QUALITY, SMALL
from pool_helpers import pool_call as _call
from pool_helpers import pool_engine as _engine
from pool_helpers import pool_judge as _judge
from sqlalchemy import create_engine

from routellm_base.errors import RouteLLMError
from routellm_base.log import (
    RoutingLog,
    read_comparisons,
    read_decisions,
    read_pool_candidates,
)
from routellm_base.log.report import build_report
from routellm_base.log.store import MIGRATIONS, log_url
from routellm_base.log.training_data import labelled_calls, pool_battle_objects, pool_battles
from routellm_base.shadow import ShadowRunner


def _expected(name: str, prompt: str) -> float:
    return (len(prompt) / 4 * PRICES[name][0] + 256 * PRICES[name][1]) / 1e6


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "log.db")
    return request.getfixturevalue("postgres_db")


def test_pool_decisions_are_written_and_read_back(target: str) -> None:
    engine = _engine()
    with RoutingLog(target, store_prompts=True, prices=PRICES) as log:
        routed = _call(engine, log, "What is 2+2?")
        capped = _call(engine, log, "Name a prime.", route={"allowed": [MID, SMALL]})
        fell = _call(engine, log, "Spell cat.", failing=(BIG, MID))
        forced = _call(engine, log, "Hi.", force=MID)
    assert log.stats().failed == 0 and log.stats().written == 4
    rows = {r["call_id"]: r for r in read_decisions(target)}
    row = rows[routed.decision.call_id]
    # lambda 0.02 per USD per 1,000 calls: 0.9 - 20 * big's cost beats 0.8 - 20 * mid's.
    assert (row["side"], row["model"]) == (BIG, BIG)
    assert (row["pool_policy"], row["pool_knob"], row["pool_cost_weight"]) == (
        "cost_weight",
        0.02,
        0.02,
    )
    assert row["threshold"] is None and row["win_rate"] is None and row["pool_max_cost"] is None
    assert row["expected_cost_usd"] == pytest.approx(_expected(BIG, "What is 2+2?"))
    assert row["cost_usd"] == pytest.approx((100 * 2.5 + 50 * 10.0) / 1e6)  # the pool's prices
    assert rows[capped.decision.call_id]["side"] == MID
    fell_row = rows[fell.decision.call_id]
    assert (fell_row["side"], fell_row["fallback_from"]) == (SMALL, BIG)
    assert f"{BIG}: ConnectionError" in fell_row["fallback_reason"]
    assert f"{MID}: ConnectionError" in fell_row["fallback_reason"]
    forced_row = rows[forced.decision.call_id]
    assert forced_row["pool_policy"] == "forced" and forced_row["forced"]
    assert forced_row["pool_knob"] is None  # no policy ran; the forced model's cost is known
    assert forced_row["expected_cost_usd"] == pytest.approx(_expected(MID, "Hi."))

    candidates: dict[str, dict[str, dict[str, Any]]] = {}
    for c in read_pool_candidates(target):
        candidates.setdefault(c["call_id"], {})[c["model"]] = c
    assert set(candidates) == set(rows)
    first = candidates[routed.decision.call_id]
    assert {m: c["quality"] for m, c in first.items()} == QUALITY
    assert {m: c["rank"] for m, c in first.items()} == {BIG: 0, MID: 1, SMALL: 2}
    for name, c in first.items():
        assert c["expected_cost_usd"] == pytest.approx(_expected(name, "What is 2+2?"))
    assert {m: c["rank"] for m, c in candidates[capped.decision.call_id].items()} == {
        MID: 0,
        SMALL: 1,
        BIG: None,  # not allowed
    }
    assert {m: c["rank"] for m, c in candidates[forced.decision.call_id].items()} == {
        MID: 0,
        BIG: 1,
        SMALL: 2,
    }
    assert all(c["quality"] is None for c in candidates[forced.decision.call_id].values())
    for name, c in candidates[forced.decision.call_id].items():
        assert c["expected_cost_usd"] == pytest.approx(_expected(name, "Hi."))


@contextlib.contextmanager
def _log_at_revision(target: str, revision: str) -> Iterator[None]:
    """A log migrated only to ``revision`` holding one two-model decision ``'old'``."""
    from alembic import command
    from alembic.config import Config

    engine = create_engine(log_url(target))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.exec_driver_sql(
                "INSERT INTO routellm_decisions (call_id, created_at, router, threshold, side, "
                "model, forced, no_known_tokens, routing_seconds, fallback_from) VALUES "
                "('old', '2025-01-01 00:00:00', 'mf', 0.5, 'weak', 'w', false, false, 0.001, "
                "'strong')"
            )
        yield
    finally:
        engine.dispose()


def test_a_schema_4_log_is_upgraded_keeping_its_two_model_rows(target: str) -> None:
    with _log_at_revision(target, "0004"):
        pass
    with RoutingLog(target) as log:
        _call(_engine(), log, "What is 2+2?", failing=(BIG,))
    assert log.stats().written == 1
    old, new = read_decisions(target)
    assert (old["call_id"], old["side"], old["fallback_from"], old["threshold"]) == (
        "old",
        "weak",
        "strong",
        0.5,
    )
    assert old["pool_policy"] is None and old["expected_cost_usd"] is None
    assert (new["side"], new["fallback_from"]) == (MID, BIG)  # names longer than six characters


def _shadowed_log(target: str, seed: int, store_prompts: bool = True) -> list[tuple[str, str]]:
    """Twelve pool calls (every third forced to the cheapest model), each shadowed to a seeded
    sample of the other candidates and judged; the (answered, shadowed) models in call order."""
    engine = _engine()
    with RoutingLog(target, store_prompts=store_prompts, prices=PRICES) as log:
        runner = ShadowRunner(log, 1.0, judge=_judge(), seed=seed, workers=1)
        calls = [
            _call(engine, log, f"question {i}", runner=runner, force=SMALL if i % 3 == 0 else None)
            for i in range(12)
        ]
        assert runner.flush(30)
        assert runner.stats().judged == 12 and runner.stats().failed == 0
    order = {c.decision.call_id: i for i, c in enumerate(calls)}
    rows = sorted(read_comparisons(target), key=lambda r: order[r["call_id"]])
    pairs = []
    for row in rows:
        answered = row["strong_model"] if row["answered_side"] == "strong" else row["weak_model"]
        shadowed = row["weak_model"] if row["answered_side"] == "strong" else row["strong_model"]
        pairs.append((answered, shadowed))
    return pairs


def test_pool_shadow_comparisons_are_seeded_named_and_judged(tmp_path: Path) -> None:
    target = str(tmp_path / "a.db")
    pairs = _shadowed_log(target, seed=3)
    assert [answered for answered, _ in pairs] == [SMALL if i % 3 == 0 else BIG for i in range(12)]
    assert all(shadowed != answered for answered, shadowed in pairs)
    assert {s for a, s in pairs if a == BIG} == {MID, SMALL}  # the sample explores the pool
    # The same seed draws the same candidates; another seed other ones.
    assert _shadowed_log(str(tmp_path / "b.db"), seed=3) == pairs
    assert _shadowed_log(str(tmp_path / "c.db"), seed=4) != pairs
    rank = [BIG, MID, SMALL]  # priciest first at a 500-token prompt
    for row in read_comparisons(target):
        # Stored as the pricier model against the cheaper one; the judge prefers the big answer.
        assert rank.index(row["strong_model"]) < rank.index(row["weak_model"])
        assert row["verdict"] == ("strong" if row["strong_model"] == BIG else "tie")
        assert row["strong_answer"].startswith(("good", "plain"))
        shadow = row["weak_model"] if row["answered_side"] == "strong" else row["strong_model"]
        # the shadow call's tokens at the shadowed model's pool price
        assert row["shadow_cost_usd"] == pytest.approx(
            (100 * PRICES[shadow][0] + 40 * PRICES[shadow][1]) / 1e6
        )


def test_pool_battles_are_named_pairs_from_the_judged_comparisons(tmp_path: Path) -> None:
    target = str(tmp_path / "log.db")
    pairs = _shadowed_log(target, seed=3)
    battles, summary = pool_battles(target)
    assert len(battles) == summary.battles == 12 and summary.unjudged_comparisons == 0
    for battle, (answered, shadowed) in zip(battles, pairs):
        assert {battle.model_a, battle.model_b} == {answered, shadowed}
        assert battle.answered == answered and battle.source == "judge"
        assert battle.prompt.startswith("question ")
        assert battle.winner == ("model_a" if battle.model_a == BIG else "tie")
    assert sum(summary.by_pair.values()) == 12
    label, obj = pool_battle_objects(battles)[0]
    assert set(obj) == {"prompt", "model_a", "model_b", "winner"} and battles[0].call_id in label
    # The two-model reader leaves pool calls alone.
    with pytest.raises(RouteLLMError, match="no call has a golden label"):
        labelled_calls(target)


def test_the_readers_take_an_open_routing_log_and_see_what_it_queued(tmp_path: Path) -> None:
    # The README's ``pool_battles(log)``: a RoutingLog object, not only its path, and one still
    # open, whose queued records the reader waits for (flush) instead of missing them.
    target = str(tmp_path / "log.db")
    _shadowed_log(target, seed=3)
    log = RoutingLog(target, store_prompts=True, prices=PRICES)
    try:
        _call(_engine(), log, "one more question")  # queued, not judged
        assert len(read_decisions(log)) == 13
        assert len(read_comparisons(log)) == len(read_comparisons(target))
        assert len(read_pool_candidates(log)) == len(read_pool_candidates(target))
        battles, summary = pool_battles(log)
        assert (len(battles), summary.battles) == (12, 12)
        assert pool_battles(log) == pool_battles(target)
        with pytest.raises(RouteLLMError, match="no call has a golden label"):
            labelled_calls(log)
        assert build_report(log).to_dict() == build_report(target).to_dict()
    finally:
        log.close()


def test_pool_battles_need_stored_prompts_and_judged_comparisons(tmp_path: Path) -> None:
    hashed = str(tmp_path / "hashed.db")
    _shadowed_log(hashed, seed=1, store_prompts=False)
    with pytest.raises(RouteLLMError, match="store_prompts=True"):
        pool_battles(hashed)
    empty = str(tmp_path / "empty.db")
    with RoutingLog(empty) as log:
        _call(_engine(), log, "What is 2+2?")
    with pytest.raises(RouteLLMError, match="no judged shadow comparison of a pool call") as e:
        pool_battles(empty)
    # A trial: it named "run routellm judge --log" for a log with nothing to judge.
    assert "shadow_rate > 0" in str(e.value) and "store_prompts=True" in str(e.value)
    assert "judge --log" not in str(e.value)


def test_pool_comparisons_whose_shadow_call_failed_are_not_sent_to_the_judge(
    tmp_path: Path,
) -> None:
    """A trial: a failed shadow call's comparison was counted as waiting for routellm judge,
    which has nothing to judge in it, and the report said "no judged comparison yet"."""
    target = str(tmp_path / "log.db")
    with RoutingLog(target, store_prompts=True, prices=PRICES) as log:
        runner = ShadowRunner(log, 1.0, seed=3, workers=1)  # no judge: nothing judged anyway
        for i in range(3):
            _call(_engine(), log, f"q{i}", runner=runner, shadow_error=RuntimeError("down"))
        assert runner.flush(30) and runner.stats().shadow_failed == 3
    with pytest.raises(RouteLLMError) as raised:
        pool_battles(target)
    message = str(raised.value)
    assert "3 comparisons whose shadow call failed" in message and "judge --log" not in message
    report = build_report(target)
    assert report.pool is not None and report.pool.shadow_failed == 3
    assert report.to_dict()["pool"]["shadow_failed"] == 3
    text = report.format()
    assert "the 3 comparisons recorded all had their shadow call fail" in text
    assert "no judged comparison yet" not in text


def test_train_reads_a_pool_log_as_battles_between_named_models(tmp_path: Path) -> None:
    from routellm_base.errors import PoolError
    from routellm_base.pool.data import load_pool_source

    target = str(tmp_path / "log.db")
    pairs = _shadowed_log(target, seed=3)
    data = load_pool_source(f"log:{target}")
    assert data.n_battles == len(pairs) == 12
    named = {
        frozenset((data.models[a], data.models[b])) for a, b in zip(data.battle_a, data.battle_b)
    }
    assert named == {frozenset(pair) for pair in pairs}
    for a, outcome in zip(data.battle_a, data.battle_outcome):
        assert outcome == (1.0 if data.models[a] == BIG else 0.5)
    empty = str(tmp_path / "empty.db")
    with RoutingLog(empty) as log:
        _call(_engine(), log, "What is 2+2?")
    with pytest.raises(PoolError, match="no battles.*two-model calls.*pool calls"):
        load_pool_source(f"log:{empty}")
