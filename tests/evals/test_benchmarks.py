import json
import subprocess
import sys

import pytest

from routellm_base import RandomRouter
from routellm_base.evals import evaluate, load_benchmark


def test_named_benchmarks_match_the_published_reference_figures(data_dir):
    # Figures from ../shared/data/README.md, after the paper's contamination filter.
    mmlu = load_benchmark("mmlu", data_dir)
    gsm8k = load_benchmark("gsm8k", data_dir)
    mt = load_benchmark("mt-bench", data_dir)
    assert len(mmlu.rows) == 14037 and round(mmlu.strong.mean() * 100, 2) == 80.59 and round(mmlu.weak.mean() * 100, 2) == 68.09
    assert len(gsm8k.rows) == 1307 and round(gsm8k.strong.mean() * 100, 2) == 85.77 and round(gsm8k.weak.mean() * 100, 2) == 63.73
    assert len(mt.rows) == 72 and round(mt.strong.mean(), 2) == 9.21 and round(mt.weak.mean(), 2) == 8.28
    # MT Bench routes on turn 1 and scores both turns.
    assert mt.rows[0].prompt == mt.rows[0].extra["turns"][0]


def test_random_router_apgr_near_half(data_dir):
    bench = load_benchmark("mmlu", data_dir)
    apgrs = [evaluate(RandomRouter(seed=s), bench).curve.apgr() for s in range(3)]
    assert all(abs(a - 0.5) < 0.05 for a in apgrs), apgrs


def test_generic_jsonl_skips_and_counts_incomplete_rows(tmp_path):
    path = tmp_path / "bench.jsonl"
    rows = [
        {"id": "a", "prompt": "p1", "scores": {"big": 1, "small": 0}},
        {"id": "b", "prompt": "p2", "scores": {"big": 1, "small": 1}},
        {"id": "c", "prompt": "p3", "scores": {"big": 0}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    bench = load_benchmark(str(path), strong_model="big", weak_model="small")
    assert len(bench.rows) == 2 and bench.skipped == 1
    with pytest.raises(ValueError, match="needs --strong and --weak"):
        load_benchmark(str(path))
    with pytest.raises(ValueError, match="models present"):
        load_benchmark(str(path), strong_model="huge", weak_model="small")


def test_malformed_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "prompt": "p", "scores": {"big": 1}}\n{"id": "b", "prompt": "q", "scores": {"big": "yes"}}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: score of 'big'"):
        load_benchmark(str(path), strong_model="big", weak_model="small")


def test_eval_cli_json_and_plot(tmp_path, data_dir):
    plot = tmp_path / "curves.png"
    out = subprocess.run(
        [sys.executable, "-m", "routellm_base", "eval", "--benchmark", "mt-bench", "--benchmark", "gsm8k",
         "--data-dir", str(data_dir), "--router", "mf", "--router", "random", "--json", "--plot", str(plot),
         "--no-progress"],
        capture_output=True, text=True, check=True,
    )
    rows = json.loads(out.stdout)
    assert [(r["router"], r["benchmark"]) for r in rows] == [
        ("mf", "mt-bench"), ("random", "mt-bench"), ("mf", "gsm8k"), ("random", "gsm8k")
    ]
    for row in rows:
        assert {"router", "benchmark", "n", "strong_score", "weak_score", "apgr", "cpt20", "cpt50", "cpt80"} <= set(row)
    # The default was trained on 80% of GSM8K: both routers are scored on the held-out 20% only.
    mf_gsm8k, random_gsm8k = rows[2], rows[3]
    assert mf_gsm8k["n"] < 400 and any("held-out 20% only" in n for n in mf_gsm8k["notes"])
    assert random_gsm8k["n"] == mf_gsm8k["n"]
    assert rows[0]["n"] == rows[1]["n"] == 72
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_cli_on_a_generic_jsonl_made_from_real_data(tmp_path, data_dir):
    from routellm_base.data import load_llmrouter, write_scored_jsonl

    path = tmp_path / "llmrouter_test.jsonl"
    write_scored_jsonl(load_llmrouter(data_dir, "test"), path)
    out = subprocess.run(
        [sys.executable, "-m", "routellm_base", "eval", "--benchmark", str(path), "--router", "random",
         "--strong", "llama-3.3-nemotron-super-49b-v1", "--weak", "mistral-7b-instruct-v0.3", "--json", "--no-progress"],
        capture_output=True, text=True, check=True,
    )
    (row,) = json.loads(out.stdout)
    assert row["benchmark"] == "llmrouter_test.jsonl" and row["n"] == 500
    assert row["strong_score"] > row["weak_score"]
    assert 0.3 < row["apgr"] < 0.7
