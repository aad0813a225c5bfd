"""The bert router family: label mapping, `routellm train bert` on a tiny real slice, loading."""

import json
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from routellm_base import CheckpointError, RoutingEngine, load_router
from routellm_base.data import GPT4, MIXTRAL, load_gsm8k, write_scored_jsonl
from routellm_base.train.battles import Battles
from routellm_base.train.loop import frequency_loss, pair_labels


def test_frequency_loss_is_the_prompt_blind_cross_entropy():
    labels = np.array([0, 0, 0, 1, 2, 0, 2])
    train, scored = np.arange(5), np.array([5, 6])
    # training counts 3 / 1 / 1, add-one smoothed: 4/8, 2/8, 2/8; scored labels 0 and 2
    assert frequency_loss(labels, train, scored, 3) == pytest.approx(-(np.log(4 / 8) + np.log(2 / 8)) / 2)
    # a label never seen in training costs log(total), not infinity
    assert frequency_loss(np.array([0, 0, 1]), np.arange(2), np.array([2]), 3) == pytest.approx(np.log(5))


def test_fit_report_scores_the_prompt_blind_predictor_on_the_validation_rows():
    from routellm_base.train.loop import FitResult, PairRows, fit_report

    labels = np.array([0, 0, 0, 0, 2, 2, 1])  # training rows mostly strong wins, validation weak
    rows = PairRows(labels, np.arange(7), train_rows=np.arange(4), val_rows=np.arange(4, 7))
    report = fit_report(FitResult({}, 0, 1.0, [1.0]), rows, ("strong", "tie", "weak"))
    assert report["prompt_blind_loss"] == pytest.approx(frequency_loss(labels, rows.train_rows, rows.val_rows, 3))
    assert report["prompt_blind_loss"] != pytest.approx(frequency_loss(labels, rows.train_rows, rows.train_rows, 3))
    # without validation rows, the training rows themselves
    no_val = PairRows(labels, np.arange(7), train_rows=np.arange(7), val_rows=np.arange(0))
    assert fit_report(FitResult({}, 0, 1.0, [1.0]), no_val, ("strong", "tie", "weak"))["prompt_blind_loss"] == pytest.approx(
        frequency_loss(labels, no_val.train_rows, no_val.train_rows, 3)
    )


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
    run = subprocess.run(
        [sys.executable, "-m", "routellm_base", "train", "bert", "--data", f"scores:{tmp / 'train.jsonl'}",
         "--strong", GPT4, "--weak", MIXTRAL, "--out", str(out), "--epochs", "1", "--max-length", "64",
         "--calibration-prompts", str(tmp / "calibration.jsonl"), "--data-licence", "MIT", "--no-progress"],
        check=True, capture_output=True, text=True,
    )
    (tmp / "stderr.txt").write_text(run.stderr)
    return out


def test_train_cli_writes_a_loadable_bert_checkpoint(bert_checkpoint):
    config = json.loads((bert_checkpoint / "config.json").read_text())
    assert config["router"] == "bert" and config["embedder"] is None
    # --no-progress silences transformers' weight-loading bar too
    assert "Loading weights" not in (bert_checkpoint.parent / "stderr.txt").read_text()
    assert config["params"]["base_model"] == "all-MiniLM-L6-v2" and len(config["params"]["base_sha256"]) == 64
    # a head cut is the default and is not written, so older versions still load the checkpoint
    assert "truncation" not in config["params"]
    card = (bert_checkpoint / "MODEL_CARD.md").read_text()
    assert "all-MiniLM-L6-v2" in card and "Apache-2.0" in card and "routellm train bert" in card
    assert re.search(r"Validation \(\d+ of \d+ reference-pair battles, split by prompt with seed \d+\): kept epoch \d of \d[, ]", card)
    assert re.search(r"For comparison, a prompt-blind predictor \(the training battles' label frequencies\) scores \d\.\d{4}", card)

    router = load_router(bert_checkpoint)
    assert router.family == "bert" and router.embedder is None and router.truncation == "head"
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


def _tokenizer():
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from routellm_base.routers.bert import resolve_base_path

    return AutoTokenizer.from_pretrained(str(resolve_base_path("all-MiniLM-L6-v2")), local_files_only=True)


def test_head_tail_truncation_keeps_both_ends_of_a_long_prompt():
    pytest.importorskip("torch")
    from routellm_base.routers.bert import encode_prompts

    tokenizer = _tokenizer()
    document = " ".join(f"fact{i}" for i in range(300))
    long = f"Background: {document}\nQuestion: which colour is the zebra?"
    batch = encode_prompts(tokenizer, ["Hi there", long], 32, "head_tail")
    assert batch["input_ids"].shape == (2, 32) and batch["attention_mask"][1].sum() == 32
    kept = tokenizer.decode(batch["input_ids"][1], skip_special_tokens=True)
    assert kept.startswith("background : fact0") and kept.endswith("which colour is the zebra?")
    assert "fact150" not in kept  # the middle is what goes
    ids = batch["input_ids"][1].tolist()
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    head = encode_prompts(tokenizer, ["Hi there", long], 32, "head")
    assert "zebra" not in tokenizer.decode(head["input_ids"][1])
    # a prompt within the budget is encoded exactly as the head cut encodes it
    assert batch["input_ids"][0].tolist() == head["input_ids"][0].tolist()
    assert batch["attention_mask"][0].tolist() == head["attention_mask"][0].tolist()
    # nothing is lost from a text that fits, whatever its length in characters
    spaced = "question: what is the capital of France?" + "\n" * 3000 + " middle words " + "\n" * 3000 + " end"
    whole = tokenizer.decode(encode_prompts(tokenizer, [spaced], 32, "head_tail")["input_ids"][0], skip_special_tokens=True)
    assert "middle words" in whole and whole.endswith("end")
    with pytest.raises(ValueError, match="'middle'"):
        encode_prompts(tokenizer, ["x"], 32, "middle")
    with pytest.raises(ValueError, match="max_length 3 leaves 1 of its tokens .* give at least 4"):
        encode_prompts(tokenizer, ["x"], 3, "head_tail")
    # The head cut needs room for one token of text too; at 1 the encoder failed on a tensor shape.
    with pytest.raises(ValueError, match="head: max_length 1 leaves 0 of its tokens .* give at least 3"):
        encode_prompts(tokenizer, ["x"], 1, "head")
    assert encode_prompts(tokenizer, ["a long text"], 3, "head")["input_ids"].shape == (1, 3)


def test_a_head_tail_checkpoint_routes_on_the_end_of_a_long_prompt(tmp_path, data_dir):
    pytest.importorskip("torch")
    rows = load_gsm8k(data_dir)
    write_scored_jsonl(rows[:40], tmp_path / "train.jsonl")
    out = tmp_path / "ckpt"
    subprocess.run(
        [sys.executable, "-m", "routellm_base", "train", "bert", "--data", f"scores:{tmp_path / 'train.jsonl'}",
         "--strong", GPT4, "--weak", MIXTRAL, "--out", str(out), "--epochs", "1", "--max-length", "32",
         "--truncation", "head_tail", "--data-licence", "MIT", "--no-progress"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["params"]["truncation"] == "head_tail" and config["params"]["max_length"] == 32
    assert "first and last halves of 32 tokens" in (out / "MODEL_CARD.md").read_text()
    router = load_router(out)
    assert router.truncation == "head_tail"
    shared = " ".join(f"item {i} costs {i} dollars." for i in range(100))
    prompts = [f"{shared} How much do items 3 and 4 cost together?", f"{shared} Write a poem about the sea."]
    tail_rates = router.strong_win_rate(prompts)
    assert tail_rates[0] != tail_rates[1]  # the endings differ, and the router saw them

    config["params"]["truncation"] = "head"
    (out / "config.json").write_text(json.dumps(config))
    head_rates = load_router(out).strong_win_rate(prompts)
    np.testing.assert_allclose(head_rates[0], head_rates[1], rtol=1e-6)  # the same first 32 tokens

    config["params"]["truncation"] = "middle"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="truncation must be one of"):
        load_router(out)
