"""kNN and MF pool routers, add_model and checkpoints on synthetic data with a known answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pool_synthetic import MODELS, pool_data, prompts, scores

from routellm_base.embedders import load_embedder
from routellm_base.errors import CheckpointError, PoolError, UnknownRouterError
from routellm_base.pool import (
    KnnPoolRouter,
    Pool,
    PoolEngine,
    PoolMFRouter,
    add_model,
    load_pool_router,
    save_pool_router,
)
from routellm_base.pool.data import PoolData, merge
from routellm_base.pool.mf import BlendPoolRouter
from routellm_base.pool.training import PoolMFConfig, battle_scores, fit_knn, train_pool_mf

EMBEDDER = "minilm-l6-static-256"


@pytest.fixture(scope="module")
def embedder():
    return load_embedder(EMBEDDER)


@pytest.fixture(scope="module")
def train(embedder):
    data = pool_data(300, seed=0)
    return data, embedder.embed(data.prompts)


@pytest.fixture(scope="module")
def test_set(embedder):
    texts, topic = prompts(100, seed=7)
    return texts, topic, embedder.embed(texts)


def _topic_accuracy(pred: np.ndarray, topic: np.ndarray) -> float:
    """Share of prompts whose best predicted model is the topic's specialist."""
    return float((pred[:, :2].argmax(axis=1) == topic).mean())


def test_knn_mean_of_the_neighbours_skips_missing_scores():
    e = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    s = np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 0.0]])
    router = KnnPoolRouter("t", e, s, ["a", "b"], k=2)
    q = router.quality_from_embeddings(np.array([[1.0, 0.0]], dtype=np.float32))
    # neighbours of (1, 0): rows 0 and 1; model b has no score on row 0 -> its next scored
    # neighbours are rows 1 and 2 (b is searched among the prompts it has scores on)
    assert q[0, 0] == pytest.approx(0.5)
    assert q[0, 1] == pytest.approx(0.5)
    weighted = KnnPoolRouter("t", e, s, ["a", "b"], k=2, weighted=True)
    qw = weighted.quality_from_embeddings(np.array([[1.0, 0.0]], dtype=np.float32))
    assert qw[0, 0] == pytest.approx(1.0 / 1.8)  # weights 1 and 0.8


def test_knn_router_finds_each_topics_specialist(train, test_set, embedder):
    data, emb = train
    texts, topic, _ = test_set
    router = fit_knn(emb, data, k=15, embedder=embedder)
    pool = Pool({m: (1.0, 1.0) for m in MODELS})
    assert _topic_accuracy(router.quality(texts, pool), topic) >= 0.95


def test_mf_learns_from_scores_and_from_battles_alone(train, test_set):
    data, emb = train
    _, topic, test_emb = test_set
    config = PoolMFConfig(dim=8, steps=200, lr=0.02, weight_decay=1e-4)
    tensors, report = train_pool_mf(emb, data, config)
    mf = PoolMFRouter("mf", tensors, data.models)
    assert _topic_accuracy(mf.quality_from_embeddings(test_emb), topic) >= 0.95
    assert report["prompts_validation"] > 0
    # the same data as battles only (every pair where scores differ; equal scores tie)
    s = data.scores
    bp, ba, bb, bo = [], [], [], []
    for i in range(len(s)):
        for a, b in ((0, 1), (0, 2), (1, 2)):
            bp.append(i), ba.append(a), bb.append(b)
            bo.append(0.5 if s[i, a] == s[i, b] else float(s[i, a] > s[i, b]))
    battles = PoolData(
        data.prompts,
        data.models,
        np.full(s.shape, np.nan),
        battle_prompt=np.array(bp),
        battle_a=np.array(ba),
        battle_b=np.array(bb),
        battle_outcome=np.array(bo),
    )
    tensors_bt, _ = train_pool_mf(emb, battles, config)
    bt = PoolMFRouter("bt", tensors_bt, data.models)
    assert _topic_accuracy(bt.quality_from_embeddings(test_emb), topic) >= 0.95


def test_blend_averages_two_routers(train, test_set):
    data, emb = train
    _, _, test_emb = test_set
    knn = fit_knn(emb, data, k=15)
    mf = PoolMFRouter("mf", train_pool_mf(emb, data, PoolMFConfig(dim=4, steps=20))[0], data.models)
    blend = BlendPoolRouter("b", knn, mf, 0.25)
    expected = 0.25 * knn.quality_from_embeddings(test_emb) + 0.75 * mf.quality_from_embeddings(
        test_emb
    )
    assert np.allclose(blend.quality_from_embeddings(test_emb), expected)


@pytest.mark.parametrize("family", ["knn", "mf"])
def test_add_model_fits_the_new_model_alone(family, train, test_set, embedder):
    data, emb = train
    texts, topic, test_emb = test_set
    known = data.select_models(["coder", "generalist"])
    if family == "knn":
        router = fit_knn(emb, known, k=15, embedder=embedder)
    else:
        tensors, _ = train_pool_mf(emb, known, PoolMFConfig(dim=8, steps=200, lr=0.02))
        router = PoolMFRouter("mf", tensors, known.models, embedder=embedder)
    before = router.quality_from_embeddings(test_emb)
    probe_texts, probe_topic = prompts(120, seed=11)
    probe_scores = scores(probe_topic, seed=12)[:, 1]  # the poet's
    added = add_model(router, "poet", probe_texts, probe_scores)
    assert added.models == ("coder", "generalist", "poet")
    after = added.quality_from_embeddings(test_emb)
    assert np.allclose(after[:, :2], before, atol=1e-5)  # the known models are frozen
    poet = after[:, 2]
    assert poet[topic == 1].mean() > poet[topic == 0].mean() + 0.4
    with pytest.raises(PoolError, match="at least 100 scored prompts, got 99"):
        add_model(router, "poet", probe_texts[:99], probe_scores[:99])
    with pytest.raises(PoolError, match="already knows"):
        add_model(router, "coder", probe_texts, probe_scores)
    nan_scores = probe_scores.copy()
    nan_scores[:30] = np.nan  # NaN entries are dropped before counting
    with pytest.raises(PoolError, match="got 90"):
        add_model(router, "poet", probe_texts, nan_scores)


def test_engine_routes_and_names_unseen_models(train, embedder):
    data, emb = train
    router = fit_knn(emb, data, k=15, embedder=embedder)
    engine = PoolEngine(
        router, Pool({"coder": (3.0, 3.0), "poet": (3.0, 3.0), "generalist": (0.1, 0.1)})
    )
    decision = engine.decide("write a python function with a loop and recursion", cost_weight=0.0)
    assert decision.model == "coder"
    with pytest.raises(PoolError, match=r"never seen \['gpt-x'\].*add_model"):
        PoolEngine(router, Pool({"coder": (1, 1), "gpt-x": (1, 1)}))


@pytest.mark.parametrize("family", ["knn", "mf"])
def test_checkpoint_round_trip_and_tamper_detection(family, train, test_set, embedder, tmp_path):
    data, emb = train
    _, _, test_emb = test_set
    if family == "knn":
        router = fit_knn(emb, data, k=15, weighted=True, embedder=embedder)
    else:
        tensors, _ = train_pool_mf(emb, data, PoolMFConfig(dim=8, steps=50))
        router = PoolMFRouter("mf", tensors, data.models, embedder=embedder)
    out = save_pool_router(router, tmp_path / family, model_card="# card\n", training={"x": 1})
    assert not list(out.glob("*.pkl")) and (out / "MODEL_CARD.md").is_file()
    loaded = load_pool_router(out)
    assert loaded.family == router.family and loaded.models == router.models
    assert np.allclose(
        loaded.quality_from_embeddings(test_emb),
        router.quality_from_embeddings(test_emb),
        atol=2e-3,
    )
    weights = out / "weights.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0x01
    weights.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="sha256"):
        load_pool_router(out)


def test_loading_errors(tmp_path):
    with pytest.raises(UnknownRouterError, match="pool_knn"):
        load_pool_router("no-such-pool-router")
    (tmp_path / "config.json").write_text(
        json.dumps({"format": "routellm-checkpoint", "format_version": 1, "router": "mf"})
    )
    with pytest.raises(CheckpointError, match="not a pool router"):
        load_pool_router(tmp_path)


def test_bundled_pool_router_config_is_pinned(tmp_path, monkeypatch):
    from routellm_base import checkpoints

    router = load_pool_router("pool_knn")
    assert router.family == "pool_knn" and "gpt-4-0314" in router.models
    folder = checkpoints.BUNDLED_DIR / checkpoints.BUNDLED_POOL_ROUTERS["pool_knn"][0]
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    config = json.loads((copy / "config.json").read_text())
    config["params"]["k"] = 1
    (copy / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(checkpoints, "BUNDLED_DIR", tmp_path)
    monkeypatch.setitem(
        checkpoints.BUNDLED_POOL_ROUTERS,
        "pool_knn",
        ("copy", checkpoints.BUNDLED_POOL_ROUTERS["pool_knn"][1]),
    )
    import routellm_base.pool.checkpoints as pool_checkpoints

    monkeypatch.setattr(pool_checkpoints, "BUNDLED_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="sha256"):
        load_pool_router("pool_knn")


def test_pool_data_merge_subset_and_battle_scores():
    a = PoolData(["p", "q"], ["x", "y"], np.array([[1.0, 0.0], [np.nan, 1.0]]))
    b = PoolData(
        ["q", "r"],
        ["y", "z"],
        np.full((2, 2), np.nan),
        battle_prompt=np.array([0, 1, 1]),
        battle_a=np.array([0, 1, 1]),
        battle_b=np.array([1, 0, 0]),
        battle_outcome=np.array([1.0, 0.5, 0.0]),
    )
    m = merge([a, b])
    assert m.prompts == ["p", "q", "r"] and m.models == ["x", "y", "z"]
    assert m.battle_prompt.tolist() == [1, 2, 2] and m.battle_a.tolist() == [1, 2, 2]
    s = battle_scores(m)
    # q: y has a score (1.0) which wins over its battle; z lost that battle -> 0
    assert s[1].tolist()[1:] == [1.0, 0.0]
    # r: z vs y twice, a tie and a loss for z -> z 0.25, y 0.75
    assert s[2, 2] == pytest.approx(0.25) and s[2, 1] == pytest.approx(0.75)
    sub = m.subset(np.array([False, False, True]))
    assert sub.prompts == ["r"] and sub.n_battles == 2 and sub.battle_prompt.tolist() == [0, 0]
    sel = m.select_models(["y", "z"])
    assert sel.n_battles == 3 and sel.battle_a.tolist() == [0, 1, 1]
    with pytest.raises(PoolError, match="not in the data's models"):
        m.column("w")
    with pytest.raises(PoolError, match=r"\[0, 1\]"):
        PoolData(["p"], ["x"], np.array([[2.0]]))


def test_a_routing_log_gives_battles_between_its_two_sides(tmp_path):
    pytest.importorskip("sqlalchemy")
    from routellm_base import RoutingDecision
    from routellm_base.log import RoutingLog
    from routellm_base.pool.data import load_pool_source

    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    labels = {"q1": "strong", "q2": "weak", "q3": "tie"}
    for prompt, label in labels.items():
        d = RoutingDecision(
            side="weak", model="W", win_rate=0.4, threshold=0.5, router="random", seconds=0.001
        )
        log.record(
            d, conversation=[{"role": "user", "content": prompt}], strong_model="S", weak_model="W"
        )
        log.feedback(d.call_id, label=label, source="golden")
    assert log.flush(10)
    log.close()
    data = load_pool_source(f"log:{path}", {"S": "gpt-s"})
    assert data.models == ["gpt-s", "W"] and data.licences == {
        "log": "the routing log owner's own data"
    }
    outcome = dict(zip(data.prompts, data.battle_outcome[np.argsort(data.battle_prompt)]))
    assert outcome == {"q1": 1.0, "q2": 0.0, "q3": 0.5}
    assert (data.battle_a == 0).all() and (data.battle_b == 1).all()


def test_zero_shot_loads_by_name_and_unknown_names_list_it():
    from routellm_base.errors import UnknownRouterError
    from routellm_base.pool import ZeroShotPoolRouter
    from routellm_base.pool.checkpoints import load_pool_router

    assert isinstance(load_pool_router("zero_shot"), ZeroShotPoolRouter)
    with pytest.raises(UnknownRouterError, match=r"\['pool_knn', 'zero_shot'\]"):
        load_pool_router("nope")
