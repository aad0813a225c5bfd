"""The bert router family: label mapping, `routellm train bert` on a tiny real slice, loading."""

import json
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from routellm_base import CheckpointError, RoutingEngine, load_router
from routellm_base.data import GPT4, MIXTRAL, load_gsm8k, write_scored_jsonl
from routellm_base.train.battles import Battles
from routellm_base.train.loop import pair_labels


def test_pair_labels_read_outcome_from_the_strong_side():
    # models: 0 strong, 1 weak, 2 other; outcome is model_a's score (1 win, 0.5 tie, 0 loss)
    battles = Battles(
        prompts=["p0", "p1", "p2", "p3", "p4", "p5", "p6"],
        prompt_index=np.arange(7),
        model_a=np.array([0, 1, 0, 1, 0, 1, 0]),
        model_b=np.array([1, 0, 1, 0, 1, 0, 2]),
        outcome=np.array([1.0, 1.0, 0.0, 0.0, 0.5, 0.5, 1.0]),
        models=["strong", "weak", "other"],
        counts={},
    )
    idx, labels = pair_labels(battles, "strong", "weak")
    assert idx.tolist() == [0, 1, 2, 3, 4, 5]  # the battle against "other" is not the reference pair
    # strong first & wins -> 0; weak first & wins -> 2; strong first & loses -> 2;
    # weak first & loses -> 0; ties -> 1 whatever the order
    assert labels.tolist() == [0, 2, 2, 0, 1, 1]
    _, swapped = pair_labels(battles, "weak", "strong")
    assert swapped.tolist() == [2, 0, 0, 2, 1, 1]
    with pytest.raises(ValueError, match="in no battle"):
        pair_labels(battles, "strong", "gpt-5")


@pytest.fixture(scope="module")
def bert_checkpoint(tmp_path_factory, data_dir):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    tmp = tmp_path_factory.mktemp("bert")
    rows = load_gsm8k(data_dir)
    write_scored_jsonl(rows[:150], tmp / "train.jsonl")
    with open(tmp / "calibration.jsonl", "w") as handle:
        for row in rows[1000:1020]:
            handle.write(json.dumps({"prompt": row.prompt}) + "\n")
    out = tmp / "ckpt"
    subprocess.run(
        [sys.executable, "-m", "routellm_base", "train", "bert", "--data", f"scores:{tmp / 'train.jsonl'}",
         "--strong", GPT4, "--weak", MIXTRAL, "--out", str(out), "--epochs", "1", "--max-length", "64",
         "--calibration-prompts", str(tmp / "calibration.jsonl"), "--data-licence", "MIT", "--no-progress"],
        check=True, capture_output=True, text=True,
    )
    return out


def test_train_cli_writes_a_loadable_bert_checkpoint(bert_checkpoint):
    config = json.loads((bert_checkpoint / "config.json").read_text())
    assert config["router"] == "bert" and config["embedder"] is None
    assert config["params"]["base_model"] == "all-MiniLM-L6-v2" and len(config["params"]["base_sha256"]) == 64
    card = (bert_checkpoint / "MODEL_CARD.md").read_text()
    assert "all-MiniLM-L6-v2" in card and "Apache-2.0" in card and "routellm train bert" in card

    router = load_router(bert_checkpoint)
    assert router.family == "bert" and router.embedder is None
    assert router.calibration is not None and router.calibration.n_prompts == 20
    texts = ["What is 2+2?", "Prove that there are infinitely many primes.", "", "x " * 400]
    rates = router.strong_win_rate(texts)
    assert rates.shape == (4,) and np.all((rates >= 0) & (rates <= 1))
    probs = router.class_probabilities(texts)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(rates, probs[:, 0] + 0.5 * probs[:, 1], rtol=1e-6)
    # batching does not change the answer, and concurrent callers are served
    np.testing.assert_allclose(router.strong_win_rate(texts[:1]), rates[:1], rtol=1e-5)
    results = []
    threads = [threading.Thread(target=lambda: results.append(router.strong_win_rate(texts))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and all(np.allclose(r, rates, rtol=1e-5) for r in results)

    decision = RoutingEngine(bert_checkpoint, threshold=0.5).decide("A shop sells 3 apples for $2. How much do 12 cost?")
    assert decision.side in ("strong", "weak") and decision.router == str(bert_checkpoint)


def test_bert_checkpoint_refuses_tampered_weights_and_an_embedder(bert_checkpoint, tmp_path):
    copy = tmp_path / "ckpt"
    shutil.copytree(bert_checkpoint, copy)
    with pytest.raises(CheckpointError, match="takes no embedder"):
        load_router(copy, embedder="minilm-l6-static-256")
    weights = copy / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_router(copy)


def test_importing_the_engine_stays_torch_free():
    code = (
        "import sys, routellm_base\n"
        "routellm_base.load_router('mf')\n"
        "from routellm_base.routers.bert import BertRouter\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert result.stdout.strip() == "[]"
