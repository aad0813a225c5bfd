"""`routellm train` end to end on real data (GSM8K correctness), and the battle-data readers."""

import json
import subprocess
import sys

import numpy as np
import pytest

from routellm_base import RoutingEngine, load_router
from routellm_base.data import GPT4, MIXTRAL, load_gsm8k, write_scored_jsonl
from routellm_base.train.data import (
    battles_from_alpaca_eval,
    load_battles_jsonl,
    merge_battles,
    parse_model_map,
)


def _write_battles(path, rows):
    with open(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def test_battles_jsonl_keeps_and_counts_ties(tmp_path):
    path = tmp_path / "b.jsonl"
    _write_battles(path, [
        {"prompt": "p1", "model_a": "big", "model_b": "small", "winner": "model_a"},
        {"prompt": "p1", "model_a": "small", "model_b": "mid", "winner": "tie (bothbad)"},
        {"prompt": "p2", "model_a": "gpt4", "model_b": "small", "winner": "tie"},
    ])
    battles = load_battles_jsonl(path, {"gpt4": "big"})
    assert battles.models == ["big", "small", "mid"]
    assert battles.outcome.tolist() == [1.0, 0.5, 0.5]
    assert battles.counts == {"model_a": 1, "tie (bothbad)": 1, "tie": 1}
    assert battles.prompts == ["p1", "p2"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "p", "model_a": "a", "model_b": "b", "winner": "draw"}, "winner 'draw' is not one of"),
        ({"prompt": "p", "model_a": "a", "winner": "tie"}, "field 'model_b' missing"),
        ({"prompt": "p", "model_a": "a", "model_b": "a", "winner": "tie"}, "a model battles itself"),
        # a scored-prompt line given without the scores: prefix says so
        ({"id": "q1", "prompt": "p", "scores": {"a": 1, "b": 0}},
         r"field 'model_a' missing or not a string \(this looks like a scored-prompt line: give the file as --data scores:PATH"),
    ],
)
def test_malformed_battles_name_the_line(tmp_path, row, message):
    path = tmp_path / "b.jsonl"
    _write_battles(path, [{"prompt": "ok", "model_a": "a", "model_b": "b", "winner": "tie"}, row])
    with pytest.raises(ValueError, match=f"b.jsonl:2: {message}"):
        load_battles_jsonl(path)


def test_model_map_syntax():
    assert parse_model_map(["a=b", "c=d=e"]) == {"a": "b", "c": "d=e"}
    with pytest.raises(ValueError, match="SOURCE=TARGET"):
        parse_model_map(["gpt4"])


def test_alpaca_eval_converter_on_real_judgments(tmp_path, data_dir):
    lines = (data_dir / "alpaca_eval" / "judgments.csv").read_text().splitlines()
    (tmp_path / "j.csv").write_text("\n".join(lines[:201]) + "\n")  # header + 200 judgments
    battles = battles_from_alpaca_eval(
        tmp_path / "j.csv", data_dir / "alpaca_eval" / "prompts.jsonl", {"gpt4_1106_preview": GPT4}
    )
    assert len(battles) == 200 and battles.models[0] == GPT4
    preferences = np.array([float(line.split(",")[-1]) for line in lines[1:201]])
    # model_b (the compared model) wins exactly where the judge preferred it.
    np.testing.assert_array_equal(battles.outcome == 0.0, preferences > 1.5)


def test_merge_battles_shares_models_and_prompts(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _write_battles(a, [{"prompt": "p", "model_a": "x", "model_b": "y", "winner": "model_a"}])
    _write_battles(b, [{"prompt": "p", "model_a": "y", "model_b": "z", "winner": "model_b"}])
    merged = merge_battles([load_battles_jsonl(a), load_battles_jsonl(b)])
    assert merged.models == ["x", "y", "z"] and merged.prompts == ["p"]
    assert merged.model_a.tolist() == [0, 1] and merged.model_b.tolist() == [1, 2]


@pytest.mark.parametrize("family", ["mf", "sw_ranking"])
def test_train_cli_end_to_end(tmp_path, data_dir, family):
    if family == "mf":
        pytest.importorskip("torch")
    rows = load_gsm8k(data_dir)
    train, held_out = rows[:1000], rows[1000:]
    write_scored_jsonl(train, tmp_path / "train.jsonl")
    write_scored_jsonl(held_out, tmp_path / "eval.jsonl")
    out = tmp_path / family
    subprocess.run(
        [sys.executable, "-m", "routellm_base", "train", family, "--data", f"scores:{tmp_path / 'train.jsonl'}",
         "--strong", GPT4, "--weak", MIXTRAL, "--exclude", str(tmp_path / "eval.jsonl"), "--out", str(out),
         "--calibration-prompts", str(data_dir / "arena_hard" / "questions.jsonl"),
         "--data-licence", "Apache-2.0", "--epochs", "8", "--batch-size", "256", "--no-progress"],
        check=True, capture_output=True, text=True,
    )
    card = (out / "MODEL_CARD.md").read_text()
    assert "train.jsonl" in card and "Apache-2.0" in card and "routellm train" in card
    router = load_router(out)
    assert router.family == family and router.calibration.n_prompts == 498
    decision = RoutingEngine(out, strong_share=0.3).decide("A shop sells 3 apples for $2. How much do 12 cost?")
    assert decision.side in ("strong", "weak") and decision.router == str(out)
    # Trained on GSM8K correctness, it ranks held-out GSM8K items above chance.
    result = subprocess.run(
        [sys.executable, "-m", "routellm_base", "eval", "--benchmark", str(tmp_path / "eval.jsonl"),
         "--strong", GPT4, "--weak", MIXTRAL, "--router", str(out), "--json", "--no-progress"],
        check=True, capture_output=True, text=True,
    )
    assert json.loads(result.stdout)[0]["apgr"] > 0.5


def test_train_cli_rejects_unknown_reference_models(tmp_path, data_dir):
    write_scored_jsonl(load_gsm8k(data_dir)[:50], tmp_path / "t.jsonl")
    result = subprocess.run(
        [sys.executable, "-m", "routellm_base", "train", "sw_ranking", "--data", f"scores:{tmp_path / 't.jsonl'}",
         "--strong", "gpt-5", "--weak", MIXTRAL, "--out", str(tmp_path / "o")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2 and "'gpt-5' is in no battle" in result.stderr
    cut = subprocess.run(
        [sys.executable, "-m", "routellm_base", "train", "sw_ranking", "--data", f"scores:{tmp_path / 't.jsonl'}",
         "--strong", GPT4, "--weak", MIXTRAL, "--truncation", "head_tail", "--out", str(tmp_path / "o")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert cut.returncode == 2 and "--truncation cuts bert's prompts; sw_ranking takes none" in cut.stderr
    assert not (tmp_path / "o").exists()


def test_trained_on_benchmark_makes_eval_score_the_held_out_fold_only(tmp_path, data_dir):
    from routellm_base.data import crossfit_fold

    rows = load_gsm8k(data_dir)
    write_scored_jsonl([r for r in rows if crossfit_fold(r.prompt) != 0], tmp_path / "train.jsonl")
    out = tmp_path / "sw"
    subprocess.run(
        [sys.executable, "-m", "routellm_base", "train", "sw_ranking", "--data", f"scores:{tmp_path / 'train.jsonl'}",
         "--strong", GPT4, "--weak", MIXTRAL, "--out", str(out), "--trained-on-benchmark", "gsm8k", "--no-progress"],
        check=True, capture_output=True, text=True,
    )
    assert load_router(out).metadata["training"]["trained_on_benchmarks"] == {"gsm8k": {"held_out_percent": 20}}
    result = subprocess.run(
        [sys.executable, "-m", "routellm_base", "eval", "--benchmark", "gsm8k", "--data-dir", str(data_dir),
         "--router", str(out), "--json", "--no-progress"],
        check=True, capture_output=True, text=True,
    )
    assert json.loads(result.stdout)[0]["n"] == sum(crossfit_fold(r.prompt) == 0 for r in rows)


def test_a_checkpoint_trained_in_process_records_the_command_that_built_it(tmp_path, data_dir):
    """Recipes call the CLI's ``main(argv)`` in-process; the checkpoint must record that argv,
    not the recipe's own ``sys.argv`` (it recorded ``routellm --data-dir ...`` before)."""
    from routellm_base.cli import main

    write_scored_jsonl(load_gsm8k(data_dir)[:80], tmp_path / "t.jsonl")
    argv = ["train", "sw_ranking", "--data", f"scores:{tmp_path / 't.jsonl'}", "--strong", GPT4,
            "--weak", MIXTRAL, "--out", str(tmp_path / "with space"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    command = load_router(tmp_path / "with space").metadata["training"]["command"]
    assert command.startswith("routellm train sw_ranking --data scores:")
    assert f"--out '{tmp_path / 'with space'}'" in command  # quoted so it can be pasted into a shell
    assert f"routellm train sw_ranking --data scores:{tmp_path / 't.jsonl'}" in (tmp_path / "with space" / "MODEL_CARD.md").read_text()


def test_model_card_names_the_validation_split_it_had():
    from routellm_base.train.command import _validation_line

    split = {"validation_loss_history": [0.9, 0.8, 0.85], "best_epoch": 1, "best_validation_loss": 0.8,
             "prompt_blind_loss": 0.81234, "n_battles_train": 268, "n_battles_validation": 32,
             "config": {"epochs": 3, "patience": 1, "seed": 0}}  # fmt: skip
    blind = " For comparison, a prompt-blind predictor (the training battles' label frequencies) scores 0.8123 on the same battles"
    assert _validation_line(split, "bert") == (
        "Validation (32 of 300 battles, split by prompt with seed 0): kept epoch 2 of 3 (the epoch limit), "
        "the lowest validation loss (0.8000)."
        + blind + ".\n"
    )
    assert _validation_line(split, "bert", "reference-pair battles").startswith(
        "Validation (32 of 300 reference-pair battles"
    )
    assert "(each model pair's share of training wins) scores 0.8123" in _validation_line(split, "mf")
    # Early stopping is said, with the epoch limit it cut short and the epochs run after the kept one.
    stopped = {**split, "config": {"epochs": 7, "patience": 1, "seed": 0}}
    assert "kept epoch 2 of 3 (of at most 7; stopped after 1 epoch without improvement), the lowest" in (
        _validation_line(stopped, "bert")
    )
    longer = {**split, "validation_loss_history": [0.9, 0.8, 0.85, 0.82], "config": {"epochs": 7, "patience": 2, "seed": 3}}
    assert "split by prompt with seed 3): kept epoch 2 of 4 (of at most 7; stopped after 2 epochs without improvement)" in (
        _validation_line(longer, "mf")
    )
    # Stopped by the epoch limit with the last epoch the best: the loss was still falling.
    falling = {**split, "validation_loss_history": [0.9, 0.8], "best_epoch": 1, "config": {"epochs": 2, "patience": 1, "seed": 0}}
    assert "kept epoch 2 of 2 (the epoch limit; the loss was still falling)" in _validation_line(falling, "bert")
    # An API caller's validation_fraction=0: no split to name, the kept epoch said plainly, and
    # the comparison marked as measured on the training battles themselves.
    none = {**split, "n_battles_train": 300, "n_battles_validation": 0, "validation_loss_history": [0.9, 0.7],
            "best_validation_loss": 0.7, "config": {"epochs": 2, "patience": 1, "seed": 0}}  # fmt: skip
    assert _validation_line(none, "bert") == (
        "No validation split: kept epoch 2 of 2 (the epoch limit; the loss was still falling), the lowest training "
        "loss (0.7000)." + blind + ", both in-sample.\n"
    )
