"""The task-experts router: its maths by hand, its trainer on synthetic and real data, the bundled copy."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from routellm_base import RoutingEngine, load_router
from routellm_base.data import (
    GPT4,
    MIXTRAL,
    crossfit_fold,
    load_gsm8k,
    load_mmlu,
    write_scored_jsonl,
)
from routellm_base.embedders.base import Embedder
from routellm_base.errors import CheckpointError, UnknownRouterError
from routellm_base.metrics import roc_auc
from routellm_base.routers.task_experts import TaskExpertsRouter, length_features
from routellm_base.train.battles import Battles
from routellm_base.train.task_experts import (
    TaskExpertsTrainConfig,
    fit_ridge,
    fit_ridge_cv,
    pair_gap_targets,
    train_task_experts,
)


class TableEmbedder(Embedder):
    kind = "table"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        super().__init__("table", len(next(iter(table.values()))))

    def _embed_uncached(self, texts):
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def _router(table, **tensors):
    return TaskExpertsRouter("t", tensors, ["s", "w"], "s", "w", kinds=["a", "b"], features=["log_chars", "log_words"],
                             embedder=TableEmbedder(table))


def test_win_rate_is_half_one_plus_the_gate_weighted_gap():
    table = {"one two": np.array([1.0, 0.0]), "three": np.array([0.0, 2.0])}
    gate_w, gate_b = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.0, 0.5])
    exp_w = np.array([[0.1, 0.0, 0.05, 0.0], [0.0, 0.2, 0.0, 0.1]])
    exp_b = np.array([0.0, -0.3])
    router = _router(table, gate_weight=gate_w, gate_bias=gate_b, expert_weight=exp_w, expert_bias=exp_b)
    texts = ["one two", "three"]
    emb = np.stack([table[t] for t in texts])
    logits = emb @ gate_w.T + gate_b
    gate = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    feats = np.hstack([emb, np.log1p([[7, 2], [5, 1]])])
    gap = (gate * (feats @ exp_w.T + exp_b)).sum(1)
    np.testing.assert_allclose(router.strong_win_rate(texts), (1 + gap) / 2, rtol=1e-6)
    np.testing.assert_allclose(router.kind_probabilities(texts), gate, rtol=1e-6)
    np.testing.assert_allclose(length_features(["one two"]), np.log1p([[7, 2]]))


def test_checkpoint_shape_and_feature_errors_name_the_problem():
    table = {"x": np.ones(2)}
    good = dict(gate_weight=np.zeros((2, 2)), gate_bias=np.zeros(2), expert_weight=np.zeros((2, 4)), expert_bias=np.zeros(2))
    with pytest.raises(CheckpointError, match="lacks tensors"):
        _router(table, **{k: v for k, v in good.items() if k != "gate_bias"})
    with pytest.raises(CheckpointError, match="experts take 3 features"):
        _router(table, **{**good, "expert_weight": np.zeros((2, 3))})
    with pytest.raises(CheckpointError, match="2 kinds"):
        _router(table, **{**good, "gate_weight": np.zeros((3, 2))})
    with pytest.raises(CheckpointError, match="uses features"):
        TaskExpertsRouter("t", good, ["s", "w"], "s", "w", kinds=["a", "b"], features=["log_chars"], embedder=TableEmbedder(table))


def test_pair_gap_targets_read_both_orders_ties_and_count_other_pairs():
    # prompt 0: strong wins as model_a, and ties as model_b -> mean outcome 0.75 -> gap +0.5
    # prompt 1: weak wins as model_a -> gap -1; prompt 2: only a battle of another pair
    battles = Battles(
        prompts=["p0", "p1", "p2"],
        prompt_index=np.array([0, 0, 1, 2]),
        model_a=np.array([0, 1, 1, 2]),
        model_b=np.array([1, 0, 0, 0]),
        outcome=np.array([1.0, 0.5, 1.0, 1.0]),
        models=["s", "w", "x"],
        counts={},
    )
    prompts, gap, other = pair_gap_targets(battles, "s", "w")
    assert prompts.tolist() == [0, 1] and other == 1
    np.testing.assert_allclose(gap, [0.5, -1.0])


def test_ridge_cv_recovers_a_linear_rule_and_refuses_too_little_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = x @ np.array([0.5, -0.2, 0.0, 0.1, 0.3]) + 0.1 + rng.normal(scale=0.05, size=400)
    fit = fit_ridge_cv(x, y, (0.1, 10.0, 1000.0), folds=5, seed=0)
    assert fit.penalty < 1000 and fit.cv_mse[1000.0] > fit.cv_mse[fit.penalty]
    np.testing.assert_allclose(fit.weight, [0.5, -0.2, 0.0, 0.1, 0.3], atol=0.03)
    with pytest.raises(ValueError, match="at least 10 labelled prompts"):
        fit_ridge_cv(x[:6], y[:6], (1.0,), folds=5, seed=0)


def test_trainer_separates_kinds_and_learns_each_kinds_gap():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(1)
    n = 600
    kind = np.repeat([0, 1], n // 2)
    centres = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    emb = centres[kind] + rng.normal(size=(n, 3))
    texts = ["word " * int(k * 20 + 3) for k in kind]
    # kind a: the weak model fails when the third coordinate is high; kind b: it never does
    gap = np.where(kind == 0, (emb[:, 2] > 0).astype(float), 0.0)
    tensors, report = train_task_experts(texts, emb, kind, gap, ["a", "b"], TaskExpertsTrainConfig(), progress=False)
    assert report["gate_validation_accuracy"] > 0.95
    assert report["kinds"]["a"]["prompts"] == 300 and abs(report["kinds"]["b"]["mean_gap"]) < 1e-9
    router = TaskExpertsRouter("t", tensors, ["s", "w"], "s", "w", kinds=["a", "b"], features=["log_chars", "log_words"],
                               embedder=TableEmbedder({t: e for t, e in zip([f"{i}" for i in range(n)], emb)}))
    rates = router.strong_win_rate([f"{i}" for i in range(n)])
    assert roc_auc(rates[kind == 0], gap[kind == 0] > 0) > 0.9  # within kind a: the rule is found
    assert rates[kind == 0].mean() > rates[kind == 1].mean()  # between kinds: a needs the strong model more


def _split_files(tmp_path, data_dir):
    mmlu = load_mmlu(data_dir)
    rng = np.random.default_rng(0)
    mmlu = [mmlu[i] for i in rng.choice(len(mmlu), 3000, replace=False)]
    gsm8k = load_gsm8k(data_dir)
    for name, rows in (("mmlu", mmlu), ("gsm8k", gsm8k)):
        write_scored_jsonl([r for r in rows if crossfit_fold(r.prompt) != 0], tmp_path / f"{name}.jsonl")
        write_scored_jsonl([r for r in rows if crossfit_fold(r.prompt) == 0], tmp_path / f"{name}_eval.jsonl")


def test_train_cli_task_experts_on_real_mmlu_and_gsm8k(tmp_path, data_dir):
    pytest.importorskip("sklearn")
    _split_files(tmp_path, data_dir)
    out = tmp_path / "te"
    cmd = [sys.executable, "-m", "routellm_base", "train", "task_experts",
           "--data", f"scores:{tmp_path / 'mmlu.jsonl'}", "--data", f"scores:{tmp_path / 'gsm8k.jsonl'}",
           "--strong", GPT4, "--weak", MIXTRAL, "--exclude", str(tmp_path / "mmlu_eval.jsonl"),
           "--exclude", str(tmp_path / "gsm8k_eval.jsonl"), "--out", str(out), "--data-licence", "Apache-2.0",
           "--calibration-prompts", str(data_dir / "arena_hard" / "questions.jsonl"), "--no-progress"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    card = (out / "MODEL_CARD.md").read_text()
    assert "| mmlu |" in card and "| gsm8k |" in card and "Gate accuracy" in card and "Apache-2.0" in card
    config = json.loads((out / "config.json").read_text())
    assert config["router"] == "task_experts" and config["params"]["kinds"] == ["mmlu", "gsm8k"]
    assert config["training"]["gate_validation_accuracy"] > 0.9
    router = load_router(out)
    assert router.family == "task_experts" and router.calibration.n_prompts == 498
    probs = router.kind_probabilities(["Natalia sold clips to 48 of her friends in April, and then she sold half as many "
                                       "clips in May. How many clips did Natalia sell altogether in April and May?"])
    assert probs[0, 1] > 0.5  # a GSM8K-style word problem goes to the gsm8k expert
    decision = RoutingEngine(out, strong_share=0.3).decide("What is the capital of Australia?")
    assert decision.side in ("strong", "weak") and decision.router == str(out)
    # Trained on the other folds, it ranks the held-out items above chance on both kinds.
    result = subprocess.run(
        [sys.executable, "-m", "routellm_base", "eval", "--benchmark", str(tmp_path / "mmlu_eval.jsonl"),
         "--benchmark", str(tmp_path / "gsm8k_eval.jsonl"), "--strong", GPT4, "--weak", MIXTRAL,
         "--router", str(out), "--json", "--no-progress"],
        check=True, capture_output=True, text=True,
    )
    assert all(r["apgr"] > 0.5 for r in json.loads(result.stdout)), result.stdout
    # A closed-form fit takes no optimiser options: saying so beats ignoring them.
    # (into a new folder: train refuses to write over the checkpoint just written)
    fresh = [str(tmp_path / "te-epochs") if a == str(out) else a for a in cmd[:-1]]
    bad = subprocess.run(fresh + ["--epochs", "3"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "task_experts does not read --epochs (task_experts is fitted in closed form)" in bad.stderr


def test_bundled_task_experts_ranks_held_out_items_above_chance_and_stays_torch_free(data_dir):
    # Trained on folds 1-4 of MMLU/GSM8K: fold 0 was never seen.
    rows = [r for r in load_mmlu(data_dir) + load_gsm8k(data_dir) if crossfit_fold(r.prompt) == 0]
    diff = np.array([r.scores[GPT4] - r.scores[MIXTRAL] for r in rows])
    decisive = diff != 0
    rates = load_router("task_experts").strong_win_rate([r.prompt for r in rows])
    assert roc_auc(rates[decisive], diff[decisive] > 0) > 0.55  # standard error about 0.02
    code = (
        "import sys, routellm_base as r\n"
        "d = r.RoutingEngine('task_experts', strong_share=0.3).decide('Prove that there are infinitely many primes.')\n"
        "print(d.side, sorted(m for m in ('torch', 'sklearn', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    side, heavy = out.stdout.split(" ", 1)
    assert side in ("strong", "weak") and heavy.strip() == "[]"


def test_task_experts_compares_only_its_own_pair():
    with pytest.raises(UnknownRouterError, match="cannot compare another model pair"):
        load_router("task_experts", strong_model="gpt-4o", weak_model="gpt-4o-mini")


def test_one_kind_needs_no_gate():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(50, 3))
    gap = (emb[:, 0] > 0).astype(float)
    tensors, report = train_task_experts([f"t{i}" for i in range(50)], emb, np.zeros(50, int), gap, ["only"], progress=False)
    assert report["gate_validation_accuracy"] is None and not tensors["gate_weight"].any()
    router = TaskExpertsRouter("t", tensors, ["s", "w"], "s", "w", kinds=["only"], features=["log_chars", "log_words"],
                               embedder=TableEmbedder({f"t{i}": e for i, e in enumerate(emb)}))
    rates = router.strong_win_rate([f"t{i}" for i in range(50)])
    np.testing.assert_allclose(router.kind_probabilities(["t0"]), [[1.0]])
    assert roc_auc(rates, gap > 0) > 0.9


def test_weighted_ridge_matches_unweighted_for_equal_weights_and_follows_heavy_rows():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3))
    y = np.where(np.arange(200) < 100, x[:, 0], -x[:, 0])  # two halves with opposite slopes
    plain = fit_ridge(x, y, 1.0)
    same = fit_ridge(x, y, 1.0, weights=np.full(200, 7.0))
    np.testing.assert_allclose(same[0], plain[0], atol=1e-10)
    heavy_first = fit_ridge(x, y, 1.0, weights=np.where(np.arange(200) < 100, 100.0, 1.0))
    assert heavy_first[0][0] > 0.9 and abs(plain[0][0]) < 0.3


def test_centred_kind_ranks_within_itself_and_keeps_its_raw_mean_in_the_report():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(2)
    n = 400
    kind = np.repeat([0, 1], n // 2)
    emb = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]])[kind] + rng.normal(size=(n, 3))
    texts = ["x"] * n
    # kind b ("chat") has tie-free labels: a large level (+0.6) plus a within-kind rule on coordinate 2
    gap = np.where(kind == 0, 0.1, 0.6 + 0.3 * np.sign(emb[:, 2]))
    tensors, report = train_task_experts(texts, emb, kind, gap, ["a", "b"], TaskExpertsTrainConfig(), progress=False, centred=["b"])
    assert report["kinds"]["b"]["centred"] and not report["kinds"]["a"]["centred"]
    assert report["kinds"]["b"]["mean_gap"] == pytest.approx(gap[kind == 1].mean(), abs=1e-4)  # the raw level is reported
    assert abs(float(tensors["expert_bias"][1]) + float(tensors["expert_weight"][1][:3] @ emb[kind == 1].mean(0))) < 0.1
    # The centred expert's level is about 0 on its own kind, while its ranking survives.
    pred = emb[kind == 1] @ tensors["expert_weight"][1][:3] + tensors["expert_bias"][1] + tensors["expert_weight"][1][3:] @ length_features(["x"])[0]
    assert abs(pred.mean()) < 0.1 and roc_auc(pred, emb[kind == 1, 2] > 0) > 0.9
    with pytest.raises(ValueError, match=r"centred kinds \['c'\]"):
        train_task_experts(texts, emb, kind, gap, ["a", "b"], progress=False, centred=["c"])


def test_class_balanced_gate_stops_a_large_kind_swallowing_a_small_one():
    pytest.importorskip("sklearn")
    from routellm_base.train.task_experts import fit_gate

    rng = np.random.default_rng(3)
    kind = np.array([0] * 1900 + [1] * 100)
    emb = np.array([[0.6, 0.0], [0.0, 0.6]])[kind] + rng.normal(size=(2000, 2))  # overlapping kinds
    shares = {}
    for balance in (0.0, 1.0):
        w, b = fit_gate(emb, kind, 2, TaskExpertsTrainConfig(gate_class_balance=balance))
        shares[balance] = float((np.argmax(emb[kind == 1] @ w.T + b, axis=1) == 1).mean())
    assert shares[0.0] < 0.2 < 0.6 < shares[1.0]  # the small kind is recognised once the prior is even
    with pytest.raises(ValueError, match="gate_class_balance must be in"):
        TaskExpertsTrainConfig(gate_class_balance=2.0)


def test_crossfit_table_shows_each_folds_figure_and_the_random_band_beside_the_pooled_one():
    from routellm_base.train.recipe import crossfit_table

    row = {"benchmark": "gsm8k", "n": 1307, "apgr": 0.6251, "random_apgr": 0.5012, "random_apgr_std": 0.0188,
           "cpt50": 0.318, "apgr_by_fold": [0.628, 0.623, 0.693, 0.603, 0.611]}  # fmt: skip
    table = crossfit_table([row])
    header, rule, line = table.splitlines()[-3:]
    assert header.startswith("| benchmark | items | APGR | random | CPT(50%) | APGR of folds 0-4")
    assert header.count("|") == rule.count("|") == line.count("|") == 7  # six columns in every line
    assert line == "| gsm8k | 1307 | 0.625 | 0.501 ± 0.019 | 31.8% | 0.628 · 0.623 · 0.693 · 0.603 · 0.611 |"
    assert "--crossfit" in crossfit_table(None) and "--crossfit" in crossfit_table([])
    # The bundled card was written by the same function from its recipe's --crossfit run.
    from routellm_base.checkpoints import BUNDLED_DIR, BUNDLED_ROUTERS

    card = (BUNDLED_DIR / BUNDLED_ROUTERS["task_experts"][0] / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "| mmlu | 14037 | 0.640 | 0.500 ± 0.009 | 30.3% |" in card and "APGR of folds 0-4" in card


def test_the_crossfit_command_prints_a_summary_and_where_the_json_went(
    tmp_path, monkeypatch, capsys
):
    """Not 95 lines of raw JSON and no "wrote" line: one line a benchmark, and the file."""
    import json as json_module

    from routellm_base.train import default_task_experts

    results = [
        {"benchmark": b, "n": n, "apgr": 0.64, "random_apgr": 0.5, "random_apgr_std": 0.02,
         "cpt50": 0.28, "apgr_by_fold": [0.6, 0.62, 0.64, 0.66, 0.68]}
        for b, n in (("mmlu", 14042), ("gsm8k", 1319))
    ]  # fmt: skip
    monkeypatch.setattr(default_task_experts, "crossfit", lambda *a, **k: results)
    monkeypatch.setattr(default_task_experts, "load_embedder", lambda name: None)
    out = tmp_path / "cf.json"
    default_task_experts.main(["--crossfit", "--crossfit-json", str(out)])
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) <= 4, printed
    assert any(line.startswith("mmlu: 14042 items, APGR 0.640") for line in printed)
    assert printed[-1] == f"wrote the cross-fitted metrics to {out}"
    assert json_module.loads(out.read_text()) == results


def test_the_crossfit_json_may_not_be_a_file_of_the_embeddings_cache(tmp_path, monkeypatch, capsys):
    """--crossfit-json naming the cache's prompts file replaced the list of prompts that its
    embeddings are the rows of, after the cross-fitting; refused before any work."""
    from routellm_base.train import default_task_experts

    def no_work(*args, **kwargs):
        raise AssertionError("the recipe ran")

    monkeypatch.setattr(default_task_experts, "crossfit", no_work)
    monkeypatch.setattr(default_task_experts, "load_embedder", no_work)
    prompts, rows = tmp_path / "prompts.json", tmp_path / "emb.npy"
    prompts.write_text('["q"]')
    cache = f"{prompts},{rows}"
    for given in (prompts, tmp_path / "." / "emb.npy"):
        with pytest.raises(SystemExit) as exit_info:
            default_task_experts.main(
                ["--crossfit", "--crossfit-json", str(given), "--embeddings-cache", cache]
            )
        assert exit_info.value.code == 2
        assert f"--crossfit-json {given} is the --embeddings-cache file" in capsys.readouterr().err
    assert prompts.read_text() == '["q"]'


def test_the_crossfit_json_without_crossfit_is_refused(tmp_path, monkeypatch, capsys):
    """--crossfit-json without --crossfit was silently ignored (nothing writes it)."""
    from routellm_base.train import default_task_experts

    def no_work(*args, **kwargs):
        raise AssertionError("the recipe ran")

    monkeypatch.setattr(default_task_experts, "build", no_work)
    monkeypatch.setattr(default_task_experts, "load_embedder", no_work)
    argv = ["--out", str(tmp_path / "ck"), "--crossfit-json", str(tmp_path / "x.json")]
    with pytest.raises(SystemExit) as exit_info:
        default_task_experts.main(argv)
    assert exit_info.value.code == 2
    assert "--crossfit-json names the file --crossfit writes: it needs --crossfit" in (
        capsys.readouterr().err
    )


def test_the_crossfit_json_goes_inside_out_not_the_current_folder(tmp_path, monkeypatch, capsys):
    """The guide's ``--out runs/task_experts --crossfit`` left crossfit_task_experts.json in the
    folder it was run from (the repository root); it belongs inside --out."""
    from routellm_base.train import default_task_experts

    results = [{"benchmark": "mmlu", "n": 10, "apgr": 0.6, "random_apgr": 0.5,
                "random_apgr_std": 0.02, "cpt50": 0.3}]  # fmt: skip
    monkeypatch.setattr(default_task_experts, "crossfit", lambda *a, **k: results)
    monkeypatch.setattr(default_task_experts, "load_embedder", lambda name: None)
    monkeypatch.setattr(default_task_experts, "build", lambda *a, **k: dict.fromkeys(
        ("sources", "removed_as_contaminated", "task_kinds", "metrics", "seconds")))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / "task_experts"
    default_task_experts.main(["--out", str(out), "--crossfit"])
    assert (out / "crossfit_task_experts.json").is_file()
    assert not (tmp_path / "crossfit_task_experts.json").exists()
    assert f"wrote the cross-fitted metrics to {out / 'crossfit_task_experts.json'}" in capsys.readouterr().out
    # Without --out there is no folder of the run: the current folder, as --crossfit-json says.
    parser = default_task_experts.build_parser()
    path = default_task_experts.crossfit_json_path
    assert path(parser.parse_args(["--crossfit"]), "x") == Path("crossfit_x.json")
    given = parser.parse_args(["--out", "o", "--crossfit", "--crossfit-json", "cf.json"])
    assert path(given, "x") == Path("cf.json")
    assert "inside --out" in parser.format_help()
