import numpy as np
import pytest

from routellm_base import load_router, save_checkpoint
from routellm_base.data import ScoredPrompt
from routellm_base.embedders.base import Embedder, l2_normalise
from routellm_base.metrics import roc_auc
from routellm_base.train.battles import battles_from_scores


def test_golden_label_battles_keep_ties():
    rows = [
        ScoredPrompt("1", "p1", {"big": 1, "small": 0, "mid": 1}),
        ScoredPrompt("2", "p2", {"big": 1, "small": 1}),
    ]
    battles = battles_from_scores(rows, models=["big", "small", "mid"])
    # p1: big-small (big wins), big-mid (tie), small-mid (mid wins); p2: big-small (tie)
    assert len(battles) == 4
    assert battles.counts == {"model_a": 1, "tie": 2, "model_b": 1}
    assert battles.outcome.tolist() == [1.0, 0.5, 0.0, 0.5]
    restricted = battles_from_scores(rows, models=["big", "small", "mid"], pairs=[("big", "small")])
    assert len(restricted) == 2


def test_pair_mean_loss_is_the_prompt_blind_loss_of_each_pair():
    from routellm_base.train.mf import pair_mean_loss

    rows = [ScoredPrompt(str(i), f"p{i}", s) for i, s in enumerate(
        [{"big": 1, "small": 0}, {"big": 1, "small": 0}, {"big": 0, "small": 0}, {"big": 1, "small": 0}, {"mid": 1, "small": 0}]
    )]  # fmt: skip
    battles = battles_from_scores(rows, models=["big", "small", "mid"])
    train = np.array([True, True, True, False, False])
    weights = np.ones(len(battles))
    # big vs small in training: 2 wins and a tie = 2.5 of 3, smoothed (2.5 + 1) / (3 + 2) = 0.7;
    # mid vs small never battled in training: 0.5
    expected = (-np.log(0.7) - np.log(0.5)) / 2
    assert pair_mean_loss(battles, weights, train, ~train) == pytest.approx(expected)
    # read from the other side, the same pair gives the same loss
    flipped = battles_from_scores(rows, models=["small", "big", "mid"])
    assert pair_mean_loss(flipped, weights, train, ~train) == pytest.approx(expected)
    # battle weights count in the shares and in the mean: the tie weighs 3, the mid battle 2
    weights = np.array([1.0, 1.0, 3.0, 1.0, 2.0])
    share = (2 + 1.5 + 1) / (5 + 2)  # big's weighted wins over small, smoothed
    assert pair_mean_loss(battles, weights, train, ~train) == pytest.approx((-np.log(share) - 2 * np.log(0.5)) / 3)


class VectorEmbedder(Embedder):
    kind = "vector"

    def __init__(self, table):
        self.table = table
        super().__init__("vectors", 16)

    def _embed_uncached(self, texts):
        return l2_normalise(np.stack([self.table[t] for t in texts]))


def test_mf_learns_which_prompts_need_the_strong_model(tmp_path):
    pytest.importorskip("torch")
    from routellm_base.train.mf import MFTrainConfig, train_mf

    rng = np.random.default_rng(0)
    n = 1200
    vectors = rng.normal(size=(n, 16)).astype(np.float32)
    hard = vectors[:, 0] > 0  # the hidden "task kind" the weak model fails at
    strong_ok = rng.random(n) < 0.9
    weak_ok = np.where(hard, rng.random(n) < 0.2, rng.random(n) < 0.85)
    rows = [ScoredPrompt(str(i), f"prompt {i}", {"big": float(s), "small": float(w)})
            for i, (s, w) in enumerate(zip(strong_ok, weak_ok))]
    battles = battles_from_scores(rows[:1000], models=["big", "small"])
    table = {f"prompt {i}": vectors[i] for i in range(n)}
    embedder = VectorEmbedder(table)
    tensors, report = train_mf(embedder.embed(battles.prompts), battles, MFTrainConfig(dim=8, epochs=60, lr=3e-2, batch_size=128, patience=10), progress=False)
    assert report["best_epoch"] >= 1 and report["n_battles_validation"] > 0

    path = save_checkpoint(
        tmp_path / "mf", router_family="mf", tensors=tensors, models=["big", "small"],
        strong_model="big", weak_model="small", embedder=embedder, calibration=None, model_card="# t\n",
    )
    router = load_router(path, embedder=embedder)
    held_out = [f"prompt {i}" for i in range(1000, n)]
    rates = router.strong_win_rate(held_out)
    assert roc_auc(rates, hard[1000:]) > 0.9


def test_mf_without_validation_keeps_the_epoch_of_lowest_training_loss():
    """validation_fraction=0 (API only): each epoch is judged by the loss over every training
    battle, so the reported loss is that of the returned weights, not of a last minibatch."""
    pytest.importorskip("torch")
    from routellm_base.train.mf import MFTrainConfig, pair_mean_loss, train_mf

    rng = np.random.default_rng(1)
    vectors = l2_normalise(rng.normal(size=(300, 16)).astype(np.float32))
    rows = [ScoredPrompt(str(i), f"p{i}", {"big": float(rng.random() < 0.8), "small": float(v[0] > 0)})
            for i, v in enumerate(vectors)]  # fmt: skip
    battles = battles_from_scores(rows, models=["big", "small"])
    config = MFTrainConfig(dim=8, epochs=5, lr=3e-2, batch_size=64, validation_fraction=0.0)
    embeddings = vectors[[int(p[1:]) for p in battles.prompts]]  # rows in the battles' prompt order
    tensors, report = train_mf(embeddings, battles, config, progress=False)
    all_rows = np.ones(len(battles), bool)
    assert report["n_battles_validation"] == 0 and report["best_validation_loss"] == min(report["validation_loss_history"])

    v = tensors["model_embeddings"] / np.linalg.norm(tensors["model_embeddings"], axis=1, keepdims=True)
    x = embeddings[battles.prompt_index] @ tensors["proj_weight"].T + tensors["proj_bias"]
    z = (x * (v[battles.model_a] - v[battles.model_b]) * tensors["classifier_weight"]).sum(axis=1)
    y = battles.outcome
    loss = np.mean(np.logaddexp(0, z) - y * z)  # binary cross-entropy with logits, unit weights
    assert report["best_validation_loss"] == pytest.approx(loss, rel=1e-4)
    # no validation split: the prompt-blind comparison is over the training battles too
    assert report["prompt_blind_loss"] == pytest.approx(pair_mean_loss(battles, np.ones(len(battles)), all_rows, all_rows))


def test_mf_report_compares_with_the_prompt_blind_loss_on_its_validation_battles():
    pytest.importorskip("torch")
    from routellm_base.train.mf import MFTrainConfig, pair_mean_loss, train_mf

    rng = np.random.default_rng(2)
    rows = [ScoredPrompt(str(i), f"p{i}", {"big": float(rng.random() < 0.8), "small": float(rng.random() < 0.3)})
            for i in range(400)]  # fmt: skip
    battles = battles_from_scores(rows, models=["big", "small"])
    weights = rng.uniform(0.5, 2.0, len(battles))
    config = MFTrainConfig(dim=4, epochs=2, validation_fraction=0.3, seed=5)
    _, report = train_mf(rng.normal(size=(len(battles.prompts), 8)).astype(np.float32), battles, config, weights, progress=False)
    # the trainer's split: the same seeded draw over prompts
    is_val = np.less(np.random.default_rng(5).random(len(battles.prompts)), 0.3)[battles.prompt_index]
    assert report["n_battles_validation"] == is_val.sum() > 0
    assert report["prompt_blind_loss"] == pytest.approx(pair_mean_loss(battles, weights, ~is_val, is_val))
    assert report["prompt_blind_loss"] != pytest.approx(pair_mean_loss(battles, weights, ~is_val, ~is_val))
