"""The research-only joint fine-tuning recipe: what it trains on and what it declares.

Training itself (30-45 minutes on 2 cores) is not run here; the `bert` family's training path is
tested in test_bert_router.py. This checks the recipe's data: each source's fold 0 held out,
RMB's battles named after the routed pair, and every evaluation prompt handed to decontamination."""

import json

import pytest

from routellm_base.data import GPT4, MIXTRAL, crossfit_fold, load_gsm8k, load_mt_bench, load_rmb
from routellm_base.train.chat_bert import (
    BENCHMARKS,
    research_only_card,
    train_argv,
    write_training_files,
)
from routellm_base.train.command import add_train_parser


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("fold", [0, 3])
def test_training_files_hold_out_one_fold_and_exclude_every_evaluation_prompt(
    tmp_path, data_dir, fold
):
    files = write_training_files(data_dir, tmp_path, mmlu_items=200, seed=0, fold=fold)
    chat, mmlu, gsm8k = _read(files["chat"]), _read(files["mmlu"]), _read(files["gsm8k"])
    assert len(mmlu) == 200 and len(gsm8k) == sum(
        crossfit_fold(r.prompt) != fold for r in load_gsm8k(data_dir)
    )
    assert all(crossfit_fold(r["prompt"]) != fold for r in chat + mmlu + gsm8k)
    assert len(chat) > 2000  # RMB's top-vs-mid battles of the four other folds
    assert {frozenset((b["model_a"], b["model_b"])) for b in chat} == {frozenset((GPT4, MIXTRAL))}
    excluded = {r["prompt"] for r in _read(files["exclude"])}
    held_out = {r.prompt for r in load_rmb(data_dir, "all") if crossfit_fold(r.prompt) == fold}
    assert held_out and held_out <= excluded
    assert {t for r in load_mt_bench(data_dir) for t in r.extra["turns"]} <= excluded
    assert not excluded & {r["prompt"] for r in chat + mmlu + gsm8k}


def test_train_command_declares_the_folds_and_the_licence(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers(dest="command"))
    files = {k: tmp_path / k for k in ("chat", "mmlu", "gsm8k", "exclude", "calibration")}
    args = parser.parse_args(train_argv(files, tmp_path / "out", seed=1, epochs=3))
    assert (
        args.family == "bert" and args.trained_on_benchmark == list(BENCHMARKS) and args.seed == 1
    )
    assert "research-only" in args.data_licence
    card = research_only_card("# Router checkpoint (bert)\n\nbody", 3000)
    assert card.startswith("# Router checkpoint: `chat_bert` (RESEARCH ONLY") and card.endswith(
        "body"
    )
