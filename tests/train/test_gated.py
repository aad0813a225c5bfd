"""The ``gated`` router family and its research-only recipe ``chat_gated``.

The recipe runs end to end on the real data with its torch-free chat expert (``--chat-expert
ridge``, about a minute); the fine-tuned chat expert's training path is the ``bert`` family's,
tested in test_bert_router.py, and its command line is checked here."""

import argparse
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from routellm_base import load_router
from routellm_base.data import crossfit_fold, load_gsm8k, load_mmlu, load_rmb
from routellm_base.errors import CheckpointError
from routellm_base.routers.base import Router

sklearn = pytest.importorskip("sklearn")  # the train extra; the suite installs it

from routellm_base.routers.gated import GATE_SETTINGS, GatedRouter, TextGate  # noqa: E402
from routellm_base.train.chat_gated import chat_bert_argv  # noqa: E402
from routellm_base.train.gated import fit_text_gate  # noqa: E402


@pytest.fixture(scope="module")
def gated_checkpoint(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("gated") / "ck"
    # The ridge variant trains with `[gated]` alone: torch and transformers are made unimportable.
    no_torch = (
        "import runpy, sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers', 'sentence_transformers'):\n"
        "            raise ImportError(f'{name} is blocked in this test')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "runpy.run_module('routellm_base.train.chat_gated', run_name='__main__')\n"
    )
    subprocess.run(
        [sys.executable, "-c", no_torch, "--data-dir", str(data_dir), "--out", str(out), "--chat-expert", "ridge"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out


def test_text_gate_tells_quiz_word_problem_and_chat_apart_on_held_out_prompts(data_dir):
    sources = [
        [r.prompt for r in load_mmlu(data_dir)],
        [r.prompt for r in load_gsm8k(data_dir)],
        [r.prompt for r in load_rmb(data_dir, "all")],
    ]
    train = [[p for p in s if crossfit_fold(p) != 0][:400] for s in sources]
    held_out = [[p for p in s if crossfit_fold(p) == 0][:150] for s in sources]
    kind = np.concatenate([np.full(len(t), k) for k, t in enumerate(train)])
    gate, record = fit_text_gate([p for t in train for p in t], kind, 3, cs=(10.0,))
    assert record["C"] == 10.0 and record["texts_per_kind"] == [400, 400, 400]
    assert 0 < record["cv_log_loss"]["10"] < 0.5
    for k, prompts in enumerate(held_out):
        probabilities = gate.probabilities(prompts)
        assert probabilities.shape == (len(prompts), 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
        assert (probabilities.argmax(axis=1) == k).mean() > 0.9, k


def test_gate_refuses_a_kind_too_small_to_cross_validate():
    with pytest.raises(ValueError, match=r"at least 4 texts.*\[5, 3\]"):
        fit_text_gate(["a b"] * 8, np.array([0] * 5 + [1] * 3), 2)


def test_two_kind_gate_is_the_logistic_regression_as_a_softmax():
    quiz = [
        f"Which is {i}?\nA. {i}\nB. {i + 1}\nC. {i + 2}\nD. {i + 3}\nAnswer:" for i in range(20)
    ]
    chat = [f"write me a friendly note about topic number {i}, please" for i in range(20)]
    gate, _ = fit_text_gate(quiz + chat, np.array([0] * 20 + [1] * 20), 2, cs=(10.0,))
    assert gate.weight.shape == (2, GATE_SETTINGS["n_features"])
    p = gate.probabilities(
        ["Which is 99?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:", "write me a note about cats, please"]
    )
    assert p[0, 0] > 0.5 and p[1, 1] > 0.5


class _Constant(Router):
    """A unit-test expert: a fixed win rate, counting the texts it was asked about."""

    family = "constant"

    def __init__(self, rate: float) -> None:
        super().__init__(f"constant {rate}")
        self.rate, self.asked = rate, 0

    def _win_rate(self, texts):
        self.asked += len(texts)
        return np.full(len(texts), self.rate)


def _gate_tensors(bias):
    n = GATE_SETTINGS["n_features"]
    return {
        "gate_idf": np.ones(n),
        "gate_weight": np.zeros((len(bias), n)),
        "gate_bias": np.array(bias, float),
    }


def test_win_rate_is_the_gate_weighted_mean_of_each_kinds_scaled_ensemble_gap():
    a, b, c = _Constant(0.9), _Constant(0.6), _Constant(0.1)
    router = GatedRouter(
        "unit", _gate_tensors([0.0, np.log(3.0), -40.0]), ["s", "w"], "s", "w", kinds=["a", "b", "c"],
        expert_scale=[1.0, 0.5, 1.0], expert_shift=[0.0, 0.1, 0.0], expert_routers={"a": [a], "b": [b, _Constant(0.4)], "c": [c]},
    )  # fmt: skip
    rates = router.strong_win_rate(["one", "two"])
    # P = (1/4, 3/4, ~0); gaps: a 0.8, b 0.5 * mean(0.2, -0.2) + 0.1 = 0.1.
    np.testing.assert_allclose(rates, (1 + 0.25 * 0.8 + 0.75 * 0.1) / 2, atol=1e-9)
    assert (a.asked, b.asked, c.asked) == (2, 2, 2)


def test_inconsistent_gated_configs_are_refused_with_the_reason():
    experts = {"a": [_Constant(0.5)], "b": [_Constant(0.5)]}
    with pytest.raises(CheckpointError, match="2 kinds, a gate over 3, 2 scales"):
        GatedRouter(
            "x",
            _gate_tensors([0, 0, 0]),
            [],
            "s",
            "w",
            kinds=["a", "b"],
            expert_scale=[1, 1],
            expert_shift=[0, 0],
            expert_routers=experts,
        )
    with pytest.raises(CheckpointError, match=r"no expert for kinds \['b'\]"):
        GatedRouter(
            "x",
            _gate_tensors([0, 0]),
            [],
            "s",
            "w",
            kinds=["a", "b"],
            expert_scale=[1, 1],
            expert_shift=[0, 0],
            expert_routers={"a": experts["a"]},
        )
    with pytest.raises(CheckpointError, match="lacks tensors"):
        GatedRouter(
            "x",
            {},
            [],
            "s",
            "w",
            kinds=["a"],
            expert_scale=[1],
            expert_shift=[0],
            expert_routers=experts,
        )
    with pytest.raises(CheckpointError, match="do not match"):
        TextGate(np.ones(3), np.zeros((2, 3)), np.zeros(2))


def test_recipe_checkpoint_loads_its_experts_and_routes_as_the_formula_says(gated_checkpoint):
    router = load_router(gated_checkpoint)
    assert router.family == "gated" and router.kinds == ["mmlu", "gsm8k", "chat"]
    experts = [
        load_router(gated_checkpoint / "experts" / name) for name in ("mmlu", "gsm8k", "chat-ridge")
    ]
    texts = ["Glycogen breakdown in muscle results in:\nA. glucose\nB. G1P\nC. G6P\nD. lactate\nAnswer:",
             "Tom has 3 apples and buys 4 more. How many apples does he have?",
             "Write a short poem about the sea in the style of a pirate.", "Hi! How are you?"]  # fmt: skip
    gate = router.kind_probabilities(texts)
    assert list(gate.argmax(axis=1)[:3]) == [0, 1, 2]
    config = json.loads((gated_checkpoint / "config.json").read_text())["params"]
    gaps = np.stack(
        [
            (2 * e.strong_win_rate(texts) - 1) * s + t
            for e, s, t in zip(experts, config["expert_scale"], config["expert_shift"])
        ],
        axis=1,
    )
    np.testing.assert_allclose(
        router.strong_win_rate(texts), np.clip((1 + (gate * gaps).sum(1)) / 2, 0, 1), atol=1e-9
    )


def test_recipe_is_scored_on_held_out_folds_beats_the_default_on_chat_and_says_research_only(
    gated_checkpoint, data_dir
):
    card = (gated_checkpoint / "MODEL_CARD.md").read_text()
    assert (
        card.startswith("# Router checkpoint: `chat_gated` (RESEARCH ONLY")
        and "research-only" in card
    )
    training = json.loads((gated_checkpoint / "config.json").read_text())["training"]
    assert set(training["trained_on_benchmarks"]) == {"mmlu", "gsm8k", "rmb"}
    assert min(training["gate"]["held_out_accuracy"].values()) > 0.9
    out = subprocess.run(
        [sys.executable, "-m", "routellm_base", "eval", "--benchmark", "rmb", "--benchmark", "mmlu", "--data-dir", str(data_dir),
         "--router", str(gated_checkpoint), "--router", "task_experts", "--json", "--no-progress"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = {(r["router"], r["benchmark"]): r for r in json.loads(out.stdout)}
    chat = rows[(str(gated_checkpoint), "rmb")]
    assert chat["n"] == 266  # RMB's held-out fold only
    assert chat["apgr"] > rows[("task_experts", "rmb")]["apgr"] + 2 * chat["random_apgr_std"]
    assert (
        rows[(str(gated_checkpoint), "mmlu")]["apgr"] > 0.62
    )  # chat gained without giving knowledge away


def test_a_modified_expert_or_an_expert_outside_the_folder_is_refused(gated_checkpoint, tmp_path):
    copy = tmp_path / "ck"
    shutil.copytree(gated_checkpoint, copy)
    expert_config = copy / "experts" / "gsm8k" / "config.json"
    expert_config.write_text(expert_config.read_text() + " ")
    with pytest.raises(CheckpointError, match="experts/gsm8k/config.json failed its sha256 check"):
        load_router(copy)
    shutil.rmtree(copy)
    shutil.copytree(gated_checkpoint, copy)
    config = json.loads((copy / "config.json").read_text())
    config["params"]["experts"]["mmlu"] = ["../../elsewhere"]
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="lies outside it"):
        load_router(copy)


def test_chat_expert_command_trains_bert_on_rmb_battles_alone_and_declares_rmb(tmp_path):
    from routellm_base.train.command import add_train_parser

    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers(dest="command"))
    files = {k: tmp_path / k for k in ("chat", "exclude", "calibration")}
    args = parser.parse_args(chat_bert_argv(files, tmp_path / "out", seed=1, epochs=3))
    assert args.family == "bert" and args.data == [str(files["chat"])] and args.seed == 1
    assert args.trained_on_benchmark == ["rmb"] and "research-only" in args.data_licence
    assert (args.epochs, args.max_length, args.truncation) == (3, 128, "head")
    cut = parser.parse_args(chat_bert_argv(files, tmp_path / "out", 1, 3, truncation="head_tail"))
    assert cut.truncation == "head_tail"
    from routellm_base.train.chat_gated import main

    with pytest.raises(SystemExit) as refused:  # the ridge expert cuts nothing: an error, not ignored
        main(["--out", str(tmp_path / "r"), "--chat-expert", "ridge", "--truncation", "head_tail"])
    assert refused.value.code == 2 and not (tmp_path / "r").exists()
    # A cross-fitting fold's expert trained on RMB's fold 0: it must not claim fold 0 is held out.
    other = parser.parse_args(chat_bert_argv(files, tmp_path / "out", seed=1, epochs=3, fold=2))
    assert other.trained_on_benchmark in (None, [])


class _Length(Router):
    """A unit-test stand-in for one fold's trained router: longer prompts win more often."""

    family = "length"

    def _win_rate(self, texts):
        return np.array([min(len(t), 2000) / 2000 for t in texts])


def test_crossfit_trains_each_other_fold_once_and_scores_every_item_by_its_fold_router(
    monkeypatch, data_dir
):
    """The plumbing of ``--crossfit`` on the real benchmarks; training is stood in for (it is
    the recipe's own ``train_parts``, run for fold 0 by the recipe test above)."""
    from routellm_base.evals import load_benchmark
    from routellm_base.train import chat_gated

    trained, folders = [], []

    def fake_parts(data_dir_, work, data_work, fold, **options):
        trained.append((fold, options["seeds"]))
        folders.append(work)
        work.mkdir(parents=True)
        return chat_gated.FoldParts(_Length(f"fold {fold}"), None, {}, [], [], {})

    monkeypatch.setattr(chat_gated, "train_parts", fake_parts)
    figures = chat_gated.crossfit_figures(data_dir, _Length("fold 0"), {"seeds": [0, 1]})
    assert sorted(trained) == [(k, [0, 1]) for k in (1, 2, 3, 4)]
    assert not any(f.exists() for f in folders)  # fold routers are temporaries
    pooled = {r["benchmark"]: r for r in figures["pooled"]}
    assert pooled["rmb"]["n"] == len(load_rmb(data_dir, "all")) > 4 * len(load_rmb(data_dir))
    assert pooled["mmlu"]["n"] == len(load_mmlu(data_dir))
    assert pooled["gsm8k"]["n"] == len(load_gsm8k(data_dir))
    assert all(0.3 < r["apgr"] < 0.8 and r["random_apgr_std"] > 0 for r in pooled.values())
    assert all(len(r["apgr_by_fold"]) == 5 for r in pooled.values())
    # Each fold's own figure is its items' APGR: RMB's fold 2, computed here independently.
    from routellm_base.data.rmb import MID_TIER, TOP_TIER
    from routellm_base.evals import quality_curve
    from routellm_base.evals.benchmarks import Benchmark

    fold2 = Benchmark("rmb", [r for r in load_rmb(data_dir, "all") if crossfit_fold(r.prompt) == 2], TOP_TIER, MID_TIER)
    own = quality_curve(_Length("x").strong_win_rate(fold2.prompts), fold2.strong, fold2.weak).apgr()
    assert pooled["rmb"]["apgr_by_fold"][2] == own  # kept unrounded: a card rounds once, for display
    assert len(set(pooled["rmb"]["apgr_by_fold"])) > 1
    # Every fold router routes MT Bench the same way here, so each fold's figure is the same.
    mt = load_benchmark("mt-bench", data_dir)
    expected = quality_curve(_Length("x").strong_win_rate(mt.prompts), mt.strong, mt.weak).apgr()
    assert figures["mt_bench_apgr_by_fold"] == [expected] * 5
    assert figures["mt_bench_apgr_mean"] == pytest.approx(expected, abs=1e-12)
    card = chat_gated.crossfit_section(figures)
    assert "| rmb | 1237 |" in card and f"mean {expected:.3f}" in card
    assert "--crossfit" in chat_gated.crossfit_section(None)


def test_gated_checkpoint_routes_inside_a_langchain_chain(gated_checkpoint):
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from langchain_routellm import RouterChatModel

    def model(text):
        return GenericFakeChatModel(messages=iter([AIMessage(content=text)] * 4))

    router = load_router(gated_checkpoint)
    quiz = (
        "Glycogen breakdown in muscle results in:\nA. glucose\nB. G1P\nC. G6P\nD. lactate\nAnswer:"
    )
    threshold = float(router.strong_win_rate([quiz])[0])
    llm = RouterChatModel(
        router=str(gated_checkpoint),
        strong=model("strong"),
        weak=model("weak"),
        threshold=threshold,
    )
    chain = ChatPromptTemplate.from_messages([("human", "{q}")]) | llm
    reply = chain.invoke({"q": quiz})
    decision = reply.response_metadata["routellm"]
    assert decision["win_rate"] == pytest.approx(threshold) and decision["side"] == "strong"
    assert (chain | StrOutputParser()).invoke({"q": quiz}) == "strong"


def test_recipe_refuses_to_write_over_a_folder_that_is_not_empty(tmp_path, data_dir, capsys):
    from routellm_base.train.chat_gated import main

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        main(["--data-dir", str(data_dir), "--out", str(tmp_path), "--chat-expert", "ridge"])
    assert exit_info.value.code == 1
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_gate_tensors_survive_safetensors_whatever_the_weights_memory_order(tmp_path):
    from safetensors.numpy import load_file, save_file

    n = GATE_SETTINGS["n_features"]
    weight = np.asfortranarray(np.random.default_rng(0).normal(size=(3, n)))  # as coef_ may be
    gate = TextGate(np.ones(n), weight, np.zeros(3))
    save_file(gate.tensors(), str(tmp_path / "gate.safetensors"))
    loaded = load_file(str(tmp_path / "gate.safetensors"))
    np.testing.assert_allclose(loaded["gate_weight"], weight.astype(np.float32))
