"""The replay benchmark's smoke run (``benchmarks/own_traffic.py --quick``) on RMB's chat pairs:
traffic routed by the bundled router into a real SQLite log, 100 stored labels as judged shadow
comparisons, ``routellm train task_experts --data log:`` and ``routellm calibrate --prompts
log:``, all through the product."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from routellm_base import load_router
from routellm_base.log import read_comparisons, read_decisions

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "own_traffic.py"


def benchmark_module() -> Any:
    spec = importlib.util.spec_from_file_location("own_traffic_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_quick_replay_trains_on_the_logged_verdicts(tmp_path: Path, data_dir: Path) -> None:
    own_traffic = benchmark_module()
    argv = ["--quick", "--sources", "rmb", "--data-dir", str(data_dir), "--cache", str(tmp_path)]
    rmb = own_traffic.main(argv)["sources"]["rmb"]

    # Every routed call and every comparison reached the log; none was lost.
    stats = rmb["log_stats"][0]
    assert stats["recorded"] == stats["written"] == rmb["earlier"] + 100
    assert stats["failed"] == stats["dropped"] == 0
    assert sum(rmb["verdicts"].values()) == 100
    # Both retrained routers read exactly the 100 judged calls from the log as their log kind.
    # (a trial: the second N failed, as `routellm train` refused the folder the first N wrote)
    assert rmb["log_battles"]["bundled_log"]["50"] == [50]
    assert rmb["log_battles"]["bundled_log"]["100"] == [100]
    assert rmb["log_battles"]["log"]["100"] == [100]
    run = tmp_path / "runs" / "rmb" / "seed0"
    assert load_router(run / "bundled_log").kinds == ["mmlu", "gsm8k", "traffic"]

    # The log-alone router learned the verdicts' direction: on the judged prompts it gives the
    # calls whose stored verdict (the comparison rows as written) is "strong" a higher win rate
    # than those whose verdict is "weak".
    db = run / "traffic.db"
    prompt_of = {d["call_id"]: json.loads(d["prompt"])[-1]["content"] for d in read_decisions(db)}
    verdicts = [(prompt_of[c["call_id"]], c["verdict"]) for c in read_comparisons(db)]
    assert len(verdicts) == 100
    rates = load_router(run / "log").strong_win_rate([p for p, _ in verdicts])
    won = np.array([v for _, v in verdicts])
    assert rates[won == "strong"].mean() > rates[won == "weak"].mean()

    # Figures are APGRs on the later traffic, and calibration on the log ran.
    for variant in ("bundled_log", "log"):
        assert all(0.0 < v < 1.5 for v in rmb["apgr"][variant]["100"])
    assert len(rmb["apgr"]["bundled_log"]["0"]) == 1 and rmb["apgr"]["log"]["0"] == []
    assert set(rmb["calibration"]) and all(0.0 <= s <= 1.0 for s in rmb["calibration"].values())
