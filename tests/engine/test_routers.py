import numpy as np
import pytest

from routellm_base import MFRouter, RandomRouter, RoutingInputError, SWRankingRouter
from routellm_base.embedders.base import Embedder, l2_normalise


class TableEmbedder(Embedder):
    """Embeds known texts to fixed vectors: lets router maths be checked by hand."""

    kind = "table"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        super().__init__("table", len(next(iter(table.values()))))

    def _embed_uncached(self, texts):
        return l2_normalise(np.stack([self.table[t] for t in texts]).astype(np.float32))


def test_random_router_is_seeded_and_in_range():
    a = RandomRouter(seed=7).strong_win_rate(["x"] * 100)
    b = RandomRouter(seed=7).strong_win_rate(["x"] * 100)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1 and a.std() > 0.2


def test_random_router_deep_copies_and_pickles_with_its_sequence():
    import copy
    import pickle

    router = RandomRouter(seed=3)
    router.strong_win_rate(["x"] * 5)  # advance the generator first: copies go on from here
    clone = copy.deepcopy(router)
    restored = pickle.loads(pickle.dumps(router))
    expected = router.strong_win_rate(["x"] * 50)
    for other in (clone, restored):
        assert other.seed == 3 and other.name == "random"
        assert other._lock is not router._lock and other._rng is not router._rng
        np.testing.assert_array_equal(other.strong_win_rate(["x"] * 50), expected)
    # A fresh router with the same seed replays the sequence from the start.
    fresh = RandomRouter(seed=3)
    fresh.strong_win_rate(["x"] * 5)
    np.testing.assert_array_equal(fresh.strong_win_rate(["x"] * 50), expected)


def test_router_input_validation():
    router = RandomRouter()
    with pytest.raises(RoutingInputError, match="not a single string"):
        router.strong_win_rate("just a string")
    with pytest.raises(RoutingInputError, match="#1 is int"):
        router.strong_win_rate(["ok", 3])
    assert router.strong_win_rate([]).shape == (0,)


def _mf_tensors(rng, n_models=3, dim=4, text_dim=5):
    return {
        "model_embeddings": rng.normal(size=(n_models, dim)),
        "proj_weight": rng.normal(size=(dim, text_dim)),
        "proj_bias": rng.normal(size=dim),
        "classifier_weight": rng.normal(size=dim),
    }


def test_mf_folded_inference_equals_the_bilinear_formula():
    rng = np.random.default_rng(0)
    tensors = _mf_tensors(rng)
    texts = {f"t{i}": rng.normal(size=5) for i in range(6)}
    embedder = TableEmbedder(texts)
    router = MFRouter("mf", tensors, ["s", "w", "o"], "s", "w", embedder=embedder)
    got = router.strong_win_rate(list(texts))

    v = tensors["model_embeddings"] / np.linalg.norm(tensors["model_embeddings"], axis=1, keepdims=True)
    expected = []
    for text in texts:
        q = embedder.embed([text])[0]
        x = tensors["proj_weight"] @ q + tensors["proj_bias"]
        score = [tensors["classifier_weight"] @ (v[m] * x) for m in range(3)]
        expected.append(1 / (1 + np.exp(-(score[0] - score[1]))))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Swapping the pair mirrors the win rate.
    np.testing.assert_allclose(router.for_pair("w", "s").strong_win_rate(list(texts)), 1 - got, rtol=1e-5)


def _slow_bt(weights, a, b, outcome, n_models, prior, pairs, iterations=50):
    """Reference weighted Bradley-Terry MLE by Newton's method, one query at a time."""
    rows = [(w, i, j, y) for w, i, j, y in zip(weights, a, b, outcome)]
    rows += [(prior, i, j, 0.5) for i, j in pairs]  # prior: one tie per observed pair
    theta = np.zeros(n_models)
    for _ in range(iterations):
        grad = np.zeros(n_models)
        hess = np.zeros((n_models, n_models))
        for w, i, j, y in rows:
            p = 1 / (1 + np.exp(theta[j] - theta[i]))
            d = np.zeros(n_models)
            d[i], d[j] = 1.0, -1.0
            grad += w * (y - p) * d
            hess -= w * p * (1 - p) * np.outer(d, d)
        # theta[0] is pinned to 0: BT strengths are defined up to a constant.
        theta[1:] -= np.linalg.solve(hess[1:, 1:], grad[1:])
    return theta


def test_sw_ranking_matches_a_per_query_bradley_terry_fit():
    rng = np.random.default_rng(1)
    n_battles, n_models, dim = 40, 3, 6
    prompts = l2_normalise(rng.normal(size=(n_battles, dim)))
    a = rng.integers(0, n_models, n_battles)
    b = (a + rng.integers(1, n_models, n_battles)) % n_models
    outcome = rng.choice([0.0, 0.5, 1.0], n_battles)
    queries = {f"q{i}": rng.normal(size=dim) for i in range(3)}
    embedder = TableEmbedder(queries)
    router = SWRankingRouter(
        "sw",
        {"prompt_embeddings": prompts, "model_a": a, "model_b": b, "outcome": outcome},
        ["s", "w", "o"],
        "s",
        "w",
        embedder=embedder,
        iterations=2000,
    )
    got = router.strong_win_rate(list(queries))
    pairs = sorted({(min(i, j), max(i, j)) for i, j in zip(a, b)})
    for k, text in enumerate(queries):
        q = embedder.embed([text])[0]
        sims = prompts @ q
        weights = 10 * 10 ** (sims / sims.max())
        theta = _slow_bt(weights, a, b, outcome, n_models, 1.0, pairs)
        expected = 1 / (1 + np.exp(theta[1] - theta[0]))
        assert got[k] == pytest.approx(expected, abs=2e-3)


def test_sw_ranking_follows_similar_battles():
    # Strong wins every maths battle, weak wins every chit-chat battle.
    maths, chat = np.eye(4)[0], np.eye(4)[1]
    prompts = np.stack([maths] * 10 + [chat] * 10)
    a = np.zeros(20, dtype=np.int64)
    b = np.ones(20, dtype=np.int64)
    outcome = np.array([1.0] * 10 + [0.0] * 10)
    embedder = TableEmbedder({"maths": maths + 0.1 * chat, "chat": chat + 0.1 * maths})
    router = SWRankingRouter(
        "sw", {"prompt_embeddings": prompts, "model_a": a, "model_b": b, "outcome": outcome},
        ["s", "w"], "s", "w", embedder=embedder,
    )
    rate_maths, rate_chat = router.strong_win_rate(["maths", "chat"])
    assert rate_maths > 0.7 and rate_chat < 0.3
