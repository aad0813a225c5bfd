"""`routellm train` end to end on real data (GSM8K correctness), the battle-data readers, and
which family reads which option."""

import argparse
import dataclasses
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from routellm_base import RoutingEngine, load_router
from routellm_base.cli import build_parser, main
from routellm_base.data import GPT4, MIXTRAL, load_gsm8k, write_scored_jsonl
from routellm_base.train import command as train_command
from routellm_base.train.command import (
    EVERY_FAMILY,
    FAMILIES,
    FAMILY_OPTIONS,
    PAIR_FAMILIES,
    POOL_KNN,
    POOL_MF,
    check_family_options,
)
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
         "--data-licence", "Apache-2.0", "--no-progress",
         *(["--epochs", "8", "--batch-size", "256"] if family == "mf" else [])],
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
    assert cut.returncode == 2
    assert "train sw_ranking does not read --truncation: --truncation is for bert" in cut.stderr
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


# --- which family reads which option ---------------------------------------------------------

TRAINERS = (*PAIR_FAMILIES, POOL_KNN, POOL_MF)
"""The families as FAMILY_OPTIONS names them: a pool router with its --pool-router."""


def _train_actions() -> dict[str, argparse.Action]:
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {a.dest: a for a in sub.choices["train"]._actions}


def test_every_train_option_is_in_the_family_table_or_read_by_every_family():
    actions = _train_actions()
    # A new option must be classified: read by every family, or listed with its readers.
    assert set(actions) - set(FAMILY_OPTIONS) - EVERY_FAMILY == set()
    assert set(FAMILY_OPTIONS) - set(actions) == set() and not set(FAMILY_OPTIONS) & EVERY_FAMILY
    assert {r for readers in FAMILY_OPTIONS.values() for r in readers} <= set(TRAINERS)
    assert {t.split()[0] for t in TRAINERS} == set(FAMILIES)
    # Given or not must be told apart: each defaults to None, the family's default resolved later.
    assert [d for d in FAMILY_OPTIONS if actions[d].default is not None] == []


def _argv(dest: str, trainer: str, tmp_path) -> list[str]:
    """``routellm train`` of ``trainer`` with ``dest`` given a valid value, on data that does not
    exist (so any data read fails with its own error)."""
    family, _, router = trainer.partition(" --pool-router ")
    action = _train_actions()[dest]
    value = [] if action.nargs == 0 else [str(action.choices[0]) if action.choices else "1"]
    if dest == "pool_router" and router:
        value = [router]
    argv = [
        "train",
        family,
        "--data",
        str(tmp_path / "missing.jsonl"),
        "--out",
        str(tmp_path / "out"),
    ]
    if router and dest != "pool_router":
        argv += ["--pool-router", router]
    if family != "pool" and dest not in ("strong", "weak"):
        argv += ["--strong", "a", "--weak", "b"]
    return [*argv, action.option_strings[0], *value]


REFUSED = [(d, t) for d, readers in FAMILY_OPTIONS.items() for t in TRAINERS if t not in readers]
READ = [(d, t) for d, readers in FAMILY_OPTIONS.items() for t in readers]


@pytest.mark.parametrize(("dest", "trainer"), REFUSED)
def test_an_option_the_family_does_not_read_is_refused_before_any_data_is_read(
    dest, trainer, tmp_path, capsys, monkeypatch
):
    def no_data(*args, **kwargs):
        raise AssertionError("data was read before the options were checked")

    monkeypatch.setattr(train_command, "load_data_spec", no_data)
    monkeypatch.setattr("routellm_base.pool.command.load_pool_sources", no_data)
    option = _train_actions()[dest].option_strings[0]
    assert main(_argv(dest, trainer, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"routellm: error: routellm train {trainer} does not read {option}")
    readers = FAMILY_OPTIONS[dest]
    named = ["pool"] if set(readers) == {POOL_KNN, POOL_MF} else readers
    assert f"{option} is for {', '.join(named)}" in err
    assert "missing.jsonl" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("dest", "trainer"), READ)
def test_an_option_the_family_reads_passes_the_check(dest, trainer, tmp_path):
    check_family_options(build_parser().parse_args(_argv(dest, trainer, tmp_path)))


def test_the_refusal_names_every_option_and_says_why():
    args = build_parser().parse_args(
        [
            "train",
            "task_experts",
            "--data",
            "x",
            "--out",
            "o",
            "--epochs",
            "3",
            "--lr",
            "0.1",
            "--k",
            "5",
        ]
    )
    with pytest.raises(ValueError) as refused:
        check_family_options(args)
    assert str(refused.value) == (
        "routellm train task_experts does not read --epochs, --lr, --k (task_experts is fitted in "
        "closed form): --epochs is for mf, bert, causal_llm; --lr is for mf, bert, causal_llm, "
        "pool --pool-router mf; --k is for pool --pool-router knn"
    )
    args = build_parser().parse_args(
        ["train", "pool", "--data", "x", "--out", "o", "--strong", "a"]
    )
    with pytest.raises(
        ValueError,
        match=r"pool --pool-router knn does not read --strong \(a pool router has no strong/weak pair\)",
    ):
        check_family_options(args)


class _Stop(Exception):
    """Raised by a patched trainer once it has what it was given."""


# (family, extra argv, the trainer that receives the settings, what it receives): the defaults are
# each family's as before they were resolved per family; given values pass through.
TRAINER_SETTINGS = [
    ("mf", [], "routellm_base.train.mf.train_mf",
     {"dim": 128, "epochs": 40, "lr": 3e-3, "batch_size": 2048, "patience": 4, "seed": 0}),
    ("mf", ["--dim", "8", "--epochs", "3", "--lr", "0.5", "--batch-size", "7", "--patience", "0", "--seed", "9"],
     "routellm_base.train.mf.train_mf",
     {"dim": 8, "epochs": 3, "lr": 0.5, "batch_size": 7, "patience": 0, "seed": 9}),
    ("bert", [], "routellm_base.train.bert.train_bert",
     {"base_model": "all-MiniLM-L6-v2", "epochs": 2, "lr": 3e-5, "batch_size": 16, "patience": 1,
      "max_length": 128, "truncation": "head", "seed": 0}),
    ("bert", ["--max-length", "64", "--truncation", "head_tail", "--seed", "3"],
     "routellm_base.train.bert.train_bert", {"max_length": 64, "truncation": "head_tail", "seed": 3}),
    ("causal_llm", [], "routellm_base.train.causal_llm.train_causal_llm",
     {"base_model": "SmolLM2-135M-Instruct", "train_layers": 2, "epochs": 1, "lr": 1e-4,
      "batch_size": 8, "patience": 1, "max_length": 128, "seed": 0}),
    ("causal_llm", ["--train-layers", "1", "--max-length", "32"],
     "routellm_base.train.causal_llm.train_causal_llm", {"train_layers": 1, "max_length": 32}),
    ("task_experts", [], "routellm_base.train.task_experts.train_task_experts", {"seed": 0}),
    ("task_experts", ["--seed", "4"], "routellm_base.train.task_experts.train_task_experts", {"seed": 4}),
    ("pool", [], "routellm_base.pool.command.fit_knn", {"k": 20, "weighted": False}),
    ("pool", ["--k", "7", "--weighted"], "routellm_base.pool.command.fit_knn", {"k": 7, "weighted": True}),
    ("pool", ["--pool-router", "mf"], "routellm_base.pool.command.train_pool_mf",
     {"dim": 32, "steps": 300, "lr": 3e-3, "weight_decay": 1e-3, "battle_weight": 1.0, "seed": 0}),
    ("pool", ["--pool-router", "mf", "--dim", "4", "--steps", "5", "--lr", "0.1", "--weight-decay", "0",
              "--battle-weight", "2", "--seed", "6"], "routellm_base.pool.command.train_pool_mf",
     {"dim": 4, "steps": 5, "lr": 0.1, "weight_decay": 0.0, "battle_weight": 2.0, "seed": 6}),
]  # fmt: skip


@pytest.mark.parametrize(("family", "extra", "trainer", "expected"), TRAINER_SETTINGS)
def test_the_trainer_receives_the_family_default_or_the_given_value(
    family, extra, trainer, expected, tmp_path, monkeypatch
):
    received = {}

    def capture(*args, **kwargs):
        config = next((a for a in args if type(a).__name__.endswith("Config")), None)
        received.update(dataclasses.asdict(config) if config is not None else kwargs)
        raise _Stop

    monkeypatch.setattr(trainer, capture)
    data = tmp_path / "battles.jsonl"
    _write_battles(data, [
        {"prompt": f"question {i}", "model_a": "big", "model_b": "small", "winner": w}
        for i, w in enumerate(["model_a", "model_b", "tie", "model_a"])
    ])  # fmt: skip
    if family == "pool":
        prompts = SimpleNamespace(
            prompts=["question 0", "question 1"],
            scores=np.array([[1.0, 0.0], [0.0, 1.0]]),  # varies: not refused as ties only
            battle_outcome=np.zeros(0),
            n_battles=0,
        )
        monkeypatch.setattr("routellm_base.pool.command.load_pool_sources", lambda *a: prompts)
    pair = [] if family == "pool" else ["--strong", "big", "--weak", "small"]
    argv = ["train", family, "--data", str(data), "--out", str(tmp_path / "out"), *pair, *extra]
    with pytest.raises(_Stop):
        main(argv)
    assert {name: received[name] for name in expected} == expected


@pytest.mark.parametrize("family", ["pool", "mf"])
def test_every_family_refuses_to_overwrite_a_folder_with_files_unless_forced(
    family, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "router"
    out.mkdir()
    (out / "config.json").write_text("{}")

    def no_data(*args):
        raise AssertionError("data read before --out was checked")

    monkeypatch.setattr("routellm_base.pool.command.load_pool_sources", no_data)
    monkeypatch.setattr(train_command, "load_data_spec", no_data)
    pair = [] if family == "pool" else ["--strong", "big", "--weak", "small"]
    argv = ["train", family, "--data", "x.jsonl", "--out", str(out), *pair]
    assert main(argv) == 2
    assert "already holds files (an earlier checkpoint?)" in capsys.readouterr().err
    assert (out / "config.json").read_text() == "{}"
    with pytest.raises(AssertionError, match="data read before"):  # --force goes on to the data
        main([*argv, "--force"])


@pytest.mark.parametrize("family", ["task_experts", "mf"])
def test_a_repeated_data_source_is_refused_naming_both(family, tmp_path, monkeypatch, capsys):
    """A trial: the same --data twice (or a byte-identical copy) doubled every battle, and
    task_experts learned two identical kinds, 'b' and 'b_2', behind a gate at 0.214 accuracy."""
    battles = tmp_path / "b.jsonl"
    _write_battles(battles, _pair_rows(["model_a", "model_b", "tie"] * 4))
    (tmp_path / "sub").mkdir()
    copy = tmp_path / "sub" / "b.jsonl"
    copy.write_bytes(battles.read_bytes())

    def no_training(*args):
        raise AssertionError("trained on repeated data")

    monkeypatch.setattr(train_command, "load_embedder", no_training)
    out = tmp_path / "router"
    argv = ["train", family, "--strong", GPT4, "--weak", MIXTRAL, "--out", str(out)]
    for first, second, said in [
        (battles, battles, f"--data {battles} is given twice"),
        (battles, tmp_path / "sub" / ".." / "b.jsonl", "name the same data"),
        (battles, copy, f"--data {battles} and --data {copy} hold the same data (sha256 "),
    ]:
        assert main([*argv, "--data", str(first), "--data", str(second)]) == 2
        err = capsys.readouterr().err
        assert said in err and "its battles would count twice" in err, err
    assert not out.exists()


@pytest.mark.parametrize("family", ["task_experts", "sw_ranking"])
def test_empty_calibration_prompts_are_named_before_training(family, tmp_path, monkeypatch, capsys):
    """A trial: an empty --calibration-prompts file failed after training with 'calibration needs
    at least one win rate', naming neither the option nor the file; calibrate's words, first."""
    battles = tmp_path / "b.jsonl"
    _write_battles(battles, _pair_rows(["model_a", "model_b", "tie"] * 4))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")

    def no_data(*args):
        raise AssertionError("data read before the calibration prompts")

    monkeypatch.setattr(train_command, "load_data_spec", no_data)
    out = tmp_path / "router"
    argv = ["train", family, "--data", str(battles), "--strong", GPT4, "--weak", MIXTRAL,
            "--calibration-prompts", str(empty), "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--calibration-prompts {empty} holds no prompt (an empty file, or only blank lines): " in err
    assert "calibration needs at least one win rate" not in err and not out.exists()


def test_sources_that_share_one_file_but_not_all_are_no_repeat():
    """One prompts file under two judgment tables (alpaca:), or LLMRouter's prices.json under
    two splits, is two sources; their files all alike is one given twice."""
    from routellm_base.data.repeats import refuse_repeated_data

    prompts = {"path": "prompts.jsonl", "sha256": "p" * 64}
    first = ("alpaca:j1.csv,prompts.jsonl", [{"path": "j1.csv", "sha256": "1" * 64}, prompts])
    second = ("alpaca:j2.csv,prompts.jsonl", [{"path": "j2.csv", "sha256": "2" * 64}, prompts])
    refuse_repeated_data([first, second])
    with pytest.raises(ValueError, match="alpaca:j1.csv,prompts.jsonl is given twice"):
        refuse_repeated_data([first, second, first])


def test_summary_and_card_count_the_prompts_trained_on_after_decontamination(
    tmp_path, data_dir, capsys
):
    """The prompt count was taken before decontamination (598 prompts for 558 battles on 558
    unique prompts); it must be the prompts trained on, with the removed ones named apart."""
    prompts = [r.prompt for r in load_gsm8k(data_dir)[:60]]
    _write_battles(tmp_path / "b.jsonl", [
        {"prompt": p, "model_a": GPT4, "model_b": MIXTRAL, "winner": "model_a" if i % 3 else "model_b"}
        for i, p in enumerate(prompts)
    ])  # fmt: skip
    _write_battles(tmp_path / "eval.jsonl", [{"prompt": p} for p in prompts[:10]])
    out = tmp_path / "sw"
    argv = ["train", "sw_ranking", "--data", str(tmp_path / "b.jsonl"), "--strong", GPT4, "--weak", MIXTRAL,
            "--exclude", str(tmp_path / "eval.jsonl"), "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "50 battles, 50 prompts, 10 battles (10 prompts) removed as contaminated" in printed
    training = load_router(out).metadata["training"]
    assert training["prompts"] == 50 and training["removed_as_contaminated_prompts"] == 10
    card = (out / "MODEL_CARD.md").read_text()
    assert "Battles: 50 over 50 prompts" in card
    assert "Decontamination: 10 battles over 10 prompts removed" in card


def _pair_rows(winners, a=GPT4, b=MIXTRAL):
    return [
        {"prompt": f"question {i}", "model_a": a, "model_b": b, "winner": w}
        for i, w in enumerate(winners)
    ]


@pytest.mark.parametrize("family", PAIR_FAMILIES)
@pytest.mark.parametrize(
    "winners, held, held_by_all",
    [
        (["tie"] * 20 + ["tie (bothbad)"] * 10, f"0 won by '{GPT4}', 30 ties, 0 won by",
         "{'tie': 20, 'tie (bothbad)': 10}"),
        (["model_a"] * 30, f"30 won by '{GPT4}', 0 ties, 0 won by '{MIXTRAL}'", "{'model_a': 30}"),
    ],
)  # fmt: skip
def test_battles_with_one_outcome_throughout_are_refused_before_anything_is_written(
    family, winners, held, held_by_all, tmp_path, capsys
):
    """All ties (a judge whose verdicts flip with answer order) trained a constant router that
    strong_share then sent everything strong; the strong model's wins only is as constant."""
    _write_battles(tmp_path / "b.jsonl", _pair_rows(winners))
    out = tmp_path / "router"
    argv = ["train", family, "--data", str(tmp_path / "b.jsonl"), "--strong", GPT4,
            "--weak", MIXTRAL, "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    if family in ("mf", "sw_ranking"):  # they learn from every battle
        assert "in the 30 battles, every pair of models has one outcome in all its battles " in err
        assert held_by_all in err
    else:
        assert f"in the 30 battles between '{GPT4}' and '{MIXTRAL}', all 30 have one outcome: " in err
        assert held in err
    assert "every prompt the same win rate" in err
    assert "Training needs battles whose outcomes differ" in err
    assert not out.exists()


def test_mf_and_sw_ranking_look_at_every_pair_the_others_at_the_reference_pair(tmp_path):
    # Wins and ties mixed vary (a tie is half a win): every family may train on them.
    _write_battles(tmp_path / "mixed.jsonl", _pair_rows(["model_a", "tie", "model_a"]))
    for family in PAIR_FAMILIES:
        train_command.check_decisive(load_battles_jsonl(tmp_path / "mixed.jsonl"), family, GPT4, MIXTRAL)
    # The reference pair's outcome is fixed, another pair's varies: enough for the families
    # that learn from every battle, not for those that learn from the pair's battles alone.
    rows = _pair_rows(["model_a", "model_b"]) + _pair_rows(["model_a", "model_b"], a=MIXTRAL, b="third")
    _write_battles(tmp_path / "b.jsonl", [{**r, "winner": "model_a"} for r in rows[:2]] + rows[2:])
    battles = load_battles_jsonl(tmp_path / "b.jsonl")
    for family in ("mf", "sw_ranking"):
        train_command.check_decisive(battles, family, GPT4, MIXTRAL)
    with pytest.raises(ValueError, match=f"between '{GPT4}' and '{MIXTRAL}', all 2 have one outcome"):
        train_command.check_decisive(battles, "bert", GPT4, MIXTRAL)
    _write_battles(tmp_path / "fixed.jsonl", [{**r, "winner": "model_a"} for r in rows])
    with pytest.raises(ValueError, match="in the 4 battles, every pair of models has one outcome"):
        train_command.check_decisive(load_battles_jsonl(tmp_path / "fixed.jsonl"), "mf", GPT4, MIXTRAL)


def test_decontamination_that_leaves_one_outcome_is_refused(tmp_path, data_dir):
    prompts = [r.prompt for r in load_gsm8k(data_dir)[:12]]
    _write_battles(tmp_path / "b.jsonl", [
        {"prompt": p, "model_a": GPT4, "model_b": MIXTRAL, "winner": "model_b" if i < 2 else "model_a"}
        for i, p in enumerate(prompts)
    ])  # fmt: skip
    _write_battles(tmp_path / "eval.jsonl", [{"prompt": p} for p in prompts[:2]])
    argv = ["train", "sw_ranking", "--data", str(tmp_path / "b.jsonl"), "--strong", GPT4,
            "--weak", MIXTRAL, "--exclude", str(tmp_path / "eval.jsonl"),
            "--out", str(tmp_path / "o"), "--no-progress"]  # fmt: skip
    left = "in the 10 battles left after decontamination, every pair of models has one outcome"
    with pytest.raises(ValueError, match=left):
        train_command.train_checkpoint(build_parser().parse_args(argv))
    assert not (tmp_path / "o").exists()


def test_train_pool_refuses_data_of_ties_only(tmp_path, monkeypatch, capsys):
    from routellm_base.pool.data import PoolData

    ties = PoolData(
        prompts=["p0", "p1", "p2"],
        models=["a", "b"],
        scores=np.full((3, 2), np.nan),
        battle_prompt=np.array([0, 1, 2]),
        battle_a=np.array([0, 0, 0]),
        battle_b=np.array([1, 1, 1]),
        battle_outcome=np.array([0.5, 0.5, 0.5]),
    )
    monkeypatch.setattr("routellm_base.pool.command.load_pool_sources", lambda *a, **k: ties)
    out = tmp_path / "pool"
    assert main(["train", "pool", "--data", "log:x.db", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no scored prompt and no decisive battle (3 battles, all ties)" in err
    assert not out.exists()


@pytest.mark.parametrize("family", ["pool", "mf"])
def test_cosine_without_evaluation_prompts_is_refused(family, tmp_path, capsys):
    # It only says how near a training prompt must be to an --exclude prompt: alone it did nothing.
    pair = [] if family == "pool" else ["--strong", "big", "--weak", "small"]
    argv = ["train", family, "--data", "x.jsonl", "--out", str(tmp_path / "o"), "--cosine", "0.9"]
    assert main([*argv, *pair]) == 2
    assert "--cosine sets how near a training prompt must be" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("family", PAIR_FAMILIES)
@pytest.mark.parametrize("form", ["battles", "scores", "alpaca"])
def test_a_model_map_source_no_data_has_is_refused_by_every_family(family, form, tmp_path, capsys):
    """A trial: ``train task_experts --model-map gpt4o=gpt-4o`` (a typo) wrote a checkpoint as
    if the mapping had applied; ``train pool`` refused it. Every family now refuses it the same
    way, before training, whatever --data form gave the names."""
    rows = _pair_rows(["model_a", "model_b", "tie"], a="gpt-4o", b="gpt-4o-mini")
    if form == "battles":
        data = str(tmp_path / "b.jsonl")
        _write_battles(data, rows)
    elif form == "scores":
        data = "scores:" + str(tmp_path / "s.jsonl")
        _write_battles(data[7:], [
            {"id": i, "prompt": r["prompt"], "scores": {"gpt-4o": i % 2, "gpt-4o-mini": 1}}
            for i, r in enumerate(rows)
        ])  # fmt: skip
    else:
        (tmp_path / "j.csv").write_text(
            "prompt_id,model_1,model_2,preference\n1,gpt-4o,gpt-4o-mini,1.0\n2,gpt-4o,gpt-4o-mini,2.0\n"
        )
        _write_battles(tmp_path / "p.jsonl", [{"prompt_id": i, "prompt": f"q{i}"} for i in (1, 2)])
        data = f"alpaca:{tmp_path / 'j.csv'},{tmp_path / 'p.jsonl'}"
    out = tmp_path / "router"
    argv = ["train", family, "--data", data, "--strong", "gpt-4o", "--weak", "gpt-4o-mini",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main([*argv, "--model-map", "gpt4o=gpt-4o"]) == 2
    err = capsys.readouterr().err
    assert "--model-map names ['gpt4o'], which no --data source has; models: ['gpt-4o', " in err
    assert not out.exists()
    # A SOURCE the data has passes the check (mapped to itself: nothing else changes).
    battles, _ = train_command.load_data_spec(data, {"gpt-4o": "gpt-4o"})
    assert battles.source_names == {"gpt-4o", "gpt-4o-mini"}


def test_the_data_names_survive_merging_and_subsets(tmp_path):
    _write_battles(tmp_path / "a.jsonl", _pair_rows(["model_a"], a="x", b="y"))
    _write_battles(tmp_path / "b.jsonl", _pair_rows(["model_b"], a="z", b="y"))
    merged = merge_battles([
        load_battles_jsonl(tmp_path / "a.jsonl", {"x": "big"}),
        load_battles_jsonl(tmp_path / "b.jsonl"),
    ])  # fmt: skip
    assert merged.models == ["big", "y", "z"] and merged.source_names == {"x", "y", "z"}
    assert merged.subset(np.array([True, False])).source_names == {"x", "y", "z"}


@pytest.mark.parametrize("family", ["bert", "causal_llm"])
def test_an_embedder_a_self_tokenising_family_would_not_read_is_refused(family, tmp_path, capsys):
    """bert and causal_llm read the prompt text themselves: --embedder only decontaminates
    against --exclude, and without it was dropped silently (the card still named it)."""
    argv = ["train", family, "--data", "x.jsonl", "--strong", "big", "--weak", "small",
            "--out", str(tmp_path / "o"), "--embedder", "minilm-l6-static-256"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"routellm train {family} reads --embedder only to decontaminate against --exclude" in err
    assert not (tmp_path / "o").exists()
