"""`routellm serve --share-window N`: the server process holds its strong share with the window's
quantile, reported in each decision and in /health."""

from __future__ import annotations

import json

import httpx
import numpy as np
import openai
import pytest
from serve_helpers import start_router_server

from routellm_base.serve import ServeConfigError
from routellm_base.serve.config import config_from_args


def test_the_server_routes_with_the_window_and_reports_it(scripted_upstream, tmp_path):
    scripted_upstream.reset()
    url = scripted_upstream.url
    server = start_router_server(
        ["--strong-base-url", url, "--strong-model", "strong-m", "--weak-base-url", url,
         "--weak-model", "weak-m", "--strong-share", "0.3", "--share-window", "5"],
        tmp_path / "server.log",
    )  # fmt: skip
    try:
        health = httpx.get(f"{server.base}/health").json()
        # Start-up times a few probe decisions: they must not have entered the window.
        assert health["share_window"] == {
            "threshold_from": "calibration", "size": 5, "fill": 0, "target_share": 0.3
        }  # fmt: skip
        client = openai.OpenAI(base_url=f"{server.base}/v1", api_key="unused", max_retries=0)
        decisions = []
        for i in range(8):
            reply = client.chat.completions.create(
                model="router-task_experts",
                messages=[{"role": "user", "content": f"Question number {i} about topic {i * 7}"}],
            )
            decisions.append((reply.model_extra or {})["routellm"])
        records = [d["extra"]["share_window"] for d in decisions]
        assert [r["fill"] for r in records] == [0, 1, 2, 3, 4, 5, 5, 5]
        assert [r["threshold_from"] for r in records] == ["calibration"] * 5 + ["window"] * 3
        # From the sixth request on, the threshold is the quantile of the five before it.
        rates = [d["win_rate"] for d in decisions]
        for i in (5, 6, 7):
            assert decisions[i]["threshold"] == pytest.approx(np.quantile(rates[i - 5 : i], 0.7))
        health = httpx.get(f"{server.base}/health").json()
        assert health["share_window"]["fill"] == 5
        assert health["threshold"] == pytest.approx(np.quantile(rates[-5:], 0.7))
    finally:
        server.stop()


def test_a_share_window_with_a_fixed_threshold_is_refused():
    from routellm_base.cli import build_parser

    args = build_parser().parse_args(
        ["serve", "--strong-base-url", "http://127.0.0.1:9/v1", "--strong-model", "s",
         "--weak-base-url", "http://127.0.0.1:9/v1", "--weak-model", "w",
         "--threshold", "0.5", "--share-window", "100"]
    )  # fmt: skip
    with pytest.raises((ServeConfigError, ValueError), match="does not apply to a fixed threshold"):
        config_from_args(args)
    config = json.loads(
        config_from_args(
            build_parser().parse_args(
                ["serve", "--strong-base-url", "http://a/v1", "--strong-model", "s",
                 "--weak-base-url", "http://b/v1", "--weak-model", "w", "--share-window", "100"]
            )
        ).to_json()
    )  # fmt: skip
    assert config["share_window"] == 100  # travels to --workers processes with the rest


def test_a_policy_flag_replaces_the_files_policy_window_included(tmp_path):
    from routellm_base.cli import build_parser

    path = tmp_path / "serve.toml"
    path.write_text(
        "strong_share = 0.3\nshare_window = 50\n"
        "[strong]\nbase_url = 'http://127.0.0.1:9/v1'\nmodel = 's'\n"
        "[weak]\nbase_url = 'http://127.0.0.1:9/v1'\nmodel = 'w'\n"
    )

    def policy(*flags: str) -> tuple:
        config = config_from_args(
            build_parser().parse_args(["serve", "--config", str(path), *flags])
        )
        return config.threshold, config.strong_share, config.share_window

    # --threshold replaces the file's share and its window (README: flags override the file).
    assert policy("--threshold", "0.2") == (0.2, None, None)
    # --strong-share replaces the share; the file's window holds the new one.
    assert policy("--strong-share", "0.4") == (None, 0.4, 50)
    assert policy() == (None, 0.3, 50)
    # Both on the command line still contradict each other.
    with pytest.raises(ServeConfigError, match="does not apply to a fixed threshold"):
        policy("--threshold", "0.2", "--share-window", "10")
