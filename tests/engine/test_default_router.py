"""The bundled default router: loads offline, needs no torch, ranks held-out items above chance."""

import json
import subprocess
import sys

import numpy as np
import pytest

from routellm_base import RoutingEngine, load_router
from routellm_base.data import GPT4, MIXTRAL, holdout_split, load_gsm8k, load_mmlu
from routellm_base.metrics import roc_auc
from routellm_base.routing_text import ChatTurn, RoutingTextOptions


def test_bundled_default_ranks_held_out_items_above_chance(data_dir):
    # The default was trained on the other 80% of MMLU/GSM8K (split by sha1 of the prompt, the
    # same holdout_split used here), so none of these items was seen in training.
    rows = [r for r in load_mmlu(data_dir) + load_gsm8k(data_dir) if holdout_split(r.prompt)]
    diff = np.array([r.scores[GPT4] - r.scores[MIXTRAL] for r in rows])
    decisive = diff != 0
    rates = load_router().strong_win_rate([r.prompt for r in rows])
    auc = roc_auc(rates[decisive], diff[decisive] > 0)
    assert decisive.sum() > 500
    # Standard error of the AUC here is about 0.02: 0.55 is well clear of chance.
    assert auc > 0.55, auc


def test_routing_with_the_default_does_not_import_torch():
    code = (
        "import sys, routellm_base as r\n"
        "e = r.RoutingEngine(strong_share=0.3)\n"
        "d = e.decide('Prove that there are infinitely many primes.')\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print(d.side, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    side, heavy = out.stdout.split(" ", 1)
    assert side in ("strong", "weak")
    assert heavy.strip() == "[]"


def test_cli_route_json():
    out = subprocess.run(
        [sys.executable, "-m", "routellm_base", "route", "--json", "What is 2+2?"],
        capture_output=True,
        text=True,
        check=True,
    )
    decision = json.loads(out.stdout)
    assert {"side", "win_rate", "threshold", "router"} <= set(decision)
    assert decision["router"] == "task_experts" and 0 <= decision["win_rate"] <= 1
    assert decision["side"] == (
        "strong" if decision["win_rate"] >= decision["threshold"] else "weak"
    )


def test_cli_policy_flags_and_errors():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "routellm_base",
            "route",
            "--threshold",
            "0",
            "--strong",
            "gpt-4o",
            "hi",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("strong (gpt-4o)")
    # With no model named, the side alone: not "weak (weak)".
    unnamed = subprocess.run(
        [sys.executable, "-m", "routellm_base", "route", "--threshold", "1", "hi"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert unnamed.stdout.startswith("weak: win rate ")
    # Naming only the strong model does not name the weak side after the side.
    half = subprocess.run(
        [
            sys.executable,
            "-m",
            "routellm_base",
            "route",
            "--threshold",
            "1",
            "--strong",
            "gpt-4o",
            "hi",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert half.stdout.startswith("weak: win rate ")
    # A strong share of 0 puts the threshold just above 1; it is not printed as 1.0000.
    none_strong = subprocess.run(
        [sys.executable, "-m", "routellm_base", "route", "--strong-share", "0", "hi"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "< threshold above 1 (no call goes strong)" in none_strong.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "routellm_base", "route", "--strong-share", "1.5", "hi"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--strong-share: must be a share in [0, 1]" in bad.stderr
    unknown = subprocess.run(
        [sys.executable, "-m", "routellm_base", "route", "--router", "nope", "hi"],
        capture_output=True,
        text=True,
    )
    assert unknown.returncode == 2 and "unknown router 'nope'" in unknown.stderr


def test_cli_calibrate_on_real_chat_prompts(tmp_path, data_dir):
    lines = (data_dir / "arena_hard" / "questions.jsonl").read_text().splitlines()
    prompts = [json.loads(line)["prompt"] for line in lines]
    path = tmp_path / "traffic.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": p}) for p in prompts[:200]) + "\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "routellm_base",
            "calibrate",
            "--prompts",
            str(path),
            "--strong-share",
            "0.3",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    assert result["prompts"] == 200 and 0 <= result["threshold"] <= 1
    assert abs(result["achieved_share"] - 0.3) <= 0.01
    # The threshold really routes that share: route the same prompts through the engine.
    from routellm_base import RoutingEngine

    engine = RoutingEngine(threshold=result["threshold"])
    sides = [d.side for d in engine.decide_many(prompts[:200])]
    assert sides.count("strong") / 200 == result["achieved_share"]


@pytest.mark.parametrize("mode", ["last_user", "conversation"])
@pytest.mark.parametrize("prompt", ["สวัสดี", "🙂🎉🚀"])
def test_no_known_tokens_rule_reads_the_turns_not_the_role_labels(mode, prompt):
    # The conversation mode writes "user: สวัสดี"; the label is a known token, but the call
    # still has none of its own, so it must go by the rule in both modes.
    options = RoutingTextOptions(mode=mode)
    engine = RoutingEngine(load_router(), strong_share=0.3, routing_text_options=options)
    decision = engine.decide(prompt)
    assert (decision.side, decision.no_known_tokens, decision.win_rate) == ("strong", True, None)
    with_system = engine.decide(
        [ChatTurn("system", "Explain the proof."), ChatTurn("user", prompt)]
    )
    # Only the conversation mode reads the system turn, whose own words are readable.
    assert with_system.no_known_tokens is (mode == "last_user")
