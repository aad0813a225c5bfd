import numpy as np

from routellm_base.decontaminate import contaminated_mask
from routellm_base.embedders import load_embedder


def test_exact_matches_ignore_case_and_whitespace():
    mask = contaminated_mask(["What is  2+2?", "Name a colour."], ["what is 2+2?"])
    assert mask.tolist() == [True, False]


def test_near_duplicates_by_cosine_on_the_router_embedder():
    embedder = load_embedder("minilm-l6-static-256")
    train = [
        "Janet's ducks lay 16 eggs per day. She eats three for breakfast.",
        "Write a sonnet about the ocean at night.",
    ]
    evals = ["Janet’s ducks lay 16 eggs per day. She eats 3 for breakfast."]
    train_emb, eval_emb = embedder.embed(train), embedder.embed(evals)
    assert float(train_emb[0] @ eval_emb[0]) >= 0.95  # the premise of the test
    mask = contaminated_mask(train, evals, train_emb, eval_emb)
    assert mask.tolist() == [True, False]
    # Without embeddings only exact matches count.
    assert contaminated_mask(train, evals).tolist() == [False, False]


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 8)).astype(np.float32)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    evals = train[[3, 17, 42]] + 0.01
    evals /= np.linalg.norm(evals, axis=1, keepdims=True)
    names = [f"t{i}" for i in range(50)]
    full = contaminated_mask(names, ["e"] * 3, train, evals, chunk=4096)
    chunked = contaminated_mask(names, ["e"] * 3, train, evals, chunk=7)
    assert full.tolist() == chunked.tolist()
    assert np.flatnonzero(full).tolist() == [3, 17, 42]


def test_decontaminate_cli(tmp_path):
    import json
    import subprocess
    import sys

    train = tmp_path / "train.jsonl"
    train.write_text(
        "\n".join(json.dumps({"id": i, "prompt": p}) for i, p in [
            ("t1", "Janet's ducks lay 16 eggs per day. She eats three for breakfast."),
            ("t2", "Write a sonnet about the ocean at night."),
            ("t3", "what is 2+2?"),
        ]) + "\n"
    )
    evals = tmp_path / "eval.txt"
    evals.write_text("Janet’s ducks lay 16 eggs per day. She eats 3 for breakfast.\nWhat is 2+2?\n")
    out = subprocess.run(
        [sys.executable, "-m", "routellm_base", "decontaminate", "--train", str(train), "--eval", str(evals), "--json"],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(out.stdout) == {"train": 3, "eval": 2, "flagged": ["t1", "t3"]}
