import json
import shutil

import numpy as np
import pytest

from routellm_base import (
    CheckpointError,
    EmbedderMismatchError,
    MFRouter,
    UnknownRouterError,
    load_router,
    save_checkpoint,
)
from routellm_base.calibration import Calibration
from routellm_base.embedders import load_embedder


@pytest.fixture()
def checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    embedder = load_embedder("minilm-l6-static-256")
    tensors = {
        "model_embeddings": rng.normal(size=(2, 8)).astype(np.float32),
        "proj_weight": rng.normal(size=(8, 256)).astype(np.float32),
        "proj_bias": rng.normal(size=8).astype(np.float32),
        "classifier_weight": rng.normal(size=8).astype(np.float32),
    }
    return save_checkpoint(
        tmp_path / "ckpt",
        router_family="mf",
        tensors=tensors,
        models=["big", "small"],
        strong_model="big",
        weak_model="small",
        embedder=embedder,
        calibration=Calibration.from_win_rates(rng.random(100), "test prompts"),
        model_card="# test checkpoint\n",
    )


def test_round_trip(checkpoint):
    router = load_router(checkpoint)
    assert isinstance(router, MFRouter)
    assert router.strong_model == "big" and router.calibration.n_prompts == 100
    rates = router.strong_win_rate(["hello", "prove Fermat's last theorem"])
    assert rates.shape == (2,) and np.all((rates >= 0) & (rates <= 1))
    assert (checkpoint / "MODEL_CARD.md").read_text().startswith("# test checkpoint")


def test_tampered_weights_are_refused(checkpoint):
    weights = checkpoint / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_router(checkpoint)


def test_missing_and_malformed_configs(tmp_path, checkpoint):
    with pytest.raises(CheckpointError, match="no config.json"):
        load_router_dir = tmp_path / "empty"
        load_router_dir.mkdir()
        load_router(load_router_dir)
    (checkpoint / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_router(checkpoint)


def test_unknown_family_is_refused(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    config["router"] = "oracle"
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown router family 'oracle'"):
        load_router(checkpoint)


def test_loading_with_another_embedder_is_an_error(checkpoint):
    config = json.loads((checkpoint / "config.json").read_text())
    config["embedder"] = {"type": "sentence_transformer", "name": "all-MiniLM-L6-v2", "dim": 384}
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(EmbedderMismatchError, match="trained with embedder sentence_transformer:all-MiniLM-L6-v2"):
        load_router(checkpoint, embedder=load_embedder("minilm-l6-static-256"))


def test_unknown_router_name():
    with pytest.raises(UnknownRouterError, match="unknown router 'gpt-router'"):
        load_router("gpt-router")


def test_tampered_bundled_config_is_refused(tmp_path, monkeypatch):
    import routellm_base.checkpoints as checkpoints

    folder, sha = checkpoints.BUNDLED_ROUTERS["mf"]
    copy = tmp_path / folder
    shutil.copytree(checkpoints.BUNDLED_DIR / folder, copy)
    config = json.loads((copy / "config.json").read_text())
    config["calibration"]["quantiles"][500] = 0.0
    (copy / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(checkpoints, "BUNDLED_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="bundled router 'mf' config failed its sha256 check"):
        load_router("mf")


def test_retarget_to_another_trained_pair():
    reference = load_router("mf")
    other = load_router("mf", strong_model="llama-3.3-nemotron-super-49b-v1", weak_model="mistral-7b-instruct-v0.3")
    texts = ["Write a haiku.", "Integrate x^2 from 0 to 3."]
    assert other.strong_model == "llama-3.3-nemotron-super-49b-v1"
    assert other.calibration is None  # stored quantiles describe the reference pair only
    assert not np.allclose(other.strong_win_rate(texts), reference.strong_win_rate(texts))
    with pytest.raises(CheckpointError, match="does not know model 'gpt-5'"):
        load_router("mf", strong_model="gpt-5")


def test_a_pool_router_where_a_strong_weak_router_is_taken_gets_one_message(tmp_path):
    """A folder of `routellm train pool` said "unknown router family 'pool_knn'", the name
    'pool_knn' pointed to load_pool_router/PoolEngine: one message now, by name or folder,
    naming models=/prices= and the commands that take a pool router."""
    import subprocess
    import sys

    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from langchain_routellm import RouterChatModel
    from routellm_base.checkpoints import BUNDLED_DIR, BUNDLED_POOL_ROUTERS

    def chat_model(spec):
        strong, weak = FakeListChatModel(responses=["s"]), FakeListChatModel(responses=["w"])
        return RouterChatModel(strong=strong, weak=weak, router=spec)

    folder = tmp_path / "my-pool"
    shutil.copytree(BUNDLED_DIR / BUNDLED_POOL_ROUTERS["pool_knn"][0], folder)
    for spec in ("pool_knn", "zero_shot", str(folder)):
        for load in (load_router, chat_model):
            with pytest.raises(ValueError) as raised:  # pydantic wraps it for RouterChatModel
                load(spec)
            message = str(raised.value)
            assert f"{spec!r}" in message and "is a pool router" in message, message
            assert "models= (the pool's models) and prices=" in message
            assert "routellm eval --pool" in message
            assert "`routellm route` routes a strong/weak" in message
            assert "unknown router family" not in message and "PoolEngine" not in message
    result = subprocess.run(
        [sys.executable, "-m", "routellm_base", "route", "hi", "--router", str(folder)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2 and "(a pool_knn checkpoint) is a pool router" in result.stderr
