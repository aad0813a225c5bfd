"""RMB's open-chat pairs: the loader, the held-out benchmark and its CLI row (real data)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from routellm_base.data import (
    MID_TIER,
    RMB_MID_TIER,
    RMB_TOP_TIER,
    TOP_TIER,
    crossfit_fold,
    load_rmb,
    load_rmb_pairs,
    rmb_split,
    rmb_tier_battles,
    rmb_tier_scores,
    tier_outcome,
)
from routellm_base.data.rmb import RMBPair
from routellm_base.evals import load_benchmark


def pair(prompt: str, winner: str, loser: str, category: str = "Code/Debugging") -> RMBPair:
    return RMBPair("x", "pairwise", category, ({"role": "user", "content": prompt},), winner, loser)


def test_tier_scores_by_hand():
    top, mid, other = RMB_TOP_TIER[0], RMB_MID_TIER[0], "vicuna-7b-v1.5"
    rows = rmb_tier_scores(
        [
            pair("p", top, mid),
            pair("p", mid, RMB_TOP_TIER[1]),
            pair("p", top, RMB_MID_TIER[1]),
            pair("p", top, other),  # not a top-vs-mid battle: ignored
            pair("q", top, RMB_TOP_TIER[2]),  # q has no top-vs-mid battle: no row
        ]
    )
    assert [r.prompt for r in rows] == ["p"]
    assert rows[0].scores == {TOP_TIER: pytest.approx(2 / 3), MID_TIER: pytest.approx(1 / 3)}
    assert rows[0].extra == {"category": "Code", "battles": 3}
    assert tier_outcome(pair("p", other, top)) is None


def test_prompt_is_the_last_user_turn():
    p = RMBPair("x", "pairwise", "Chat", (
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "last"},
    ), "a", "b")
    assert p.prompt == "last" and p.task == "Chat"


def test_malformed_line_is_named(tmp_path):
    (tmp_path / "rmb").mkdir()
    (tmp_path / "rmb" / "pairs.jsonl").write_text('{"id": 1, "category": "Chat", "conversation": [], "winner": "a", "loser": "b"}\n')
    with pytest.raises(ValueError, match="pairs.jsonl:1: RMB conversation has no user turn"):
        load_rmb_pairs(tmp_path)
    with pytest.raises(ValueError, match="split must be"):
        rmb_split([], "test")  # type: ignore[arg-type]


def test_real_split_is_by_prompt_and_disjoint(data_dir):
    pairs = load_rmb_pairs(data_dir)
    assert len(pairs) == 10665
    holdout, train = rmb_split(pairs, "holdout"), rmb_split(pairs, "train")
    assert len(holdout) + len(train) == len(pairs)
    assert not {p.prompt for p in holdout} & {p.prompt for p in train}
    bench = load_rmb(data_dir)
    assert all(crossfit_fold(r.prompt) == 0 for r in bench)
    # Figures of this data: 1,237 prompts have a top-vs-mid battle, 266 of them in fold 0.
    assert len(load_rmb(data_dir, "all")) == 1237 and len(bench) == 266
    shares = np.array([r.scores[TOP_TIER] for r in bench])
    assert 0.7 < shares.mean() < 0.85  # the top tier wins most, not all, of its battles


def test_named_benchmark_and_cli_band(data_dir):
    bench = load_benchmark("rmb", data_dir)
    assert (bench.strong_model, bench.weak_model) == (TOP_TIER, MID_TIER) and len(bench.rows) == 266
    out = subprocess.run(
        [sys.executable, "-m", "routellm_base", "eval", "--benchmark", "rmb", "--data-dir", str(data_dir),
         "--router", "random", "--json", "--no-progress"],
        capture_output=True, text=True, check=True,
    )
    (row,) = json.loads(out.stdout)
    assert row["benchmark"] == "rmb" and row["n"] == 266
    assert abs(row["random_apgr"] - 0.5) < 0.02 and 0.01 < row["random_apgr_std"] < 0.05
    text = subprocess.run(
        [sys.executable, "-m", "routellm_base", "eval", "--benchmark", "rmb", "--data-dir", str(data_dir),
         "--router", "random", "--no-progress"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "random (200)" in text and f"{row['random_apgr']:.3f}±{row['random_apgr_std']:.3f}" in text


def test_tier_battles_name_the_tiers_as_the_routed_pair():
    top, mid = RMB_TOP_TIER[1], RMB_MID_TIER[2]
    battles = rmb_tier_battles([pair("p", top, mid), pair("q", mid, top), pair("r", top, RMB_TOP_TIER[0])], "big", "small")
    assert battles == [
        {"prompt": "p", "model_a": "big", "model_b": "small", "winner": "model_a"},
        {"prompt": "q", "model_a": "small", "model_b": "big", "winner": "model_a"},
    ]
