"""The quickstart example runs offline and prints each decision and the cost report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langchain_quickstart.py"


@pytest.mark.slow
def test_quickstart_offline(
    smollm2_loader, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("langchain_quickstart", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(module, "PROMPTS", module.PROMPTS[:2])  # keep it short on CPU
    assert module.main(["--router", "random"]) == 0
    out = capsys.readouterr().out
    assert "OFFLINE: strong and weak are both SmolLM2-135M-Instruct" in out
    assert out.count("  -> ") == 2  # one decision line per prompt
    assert "win rate" in out and "smollm2-as-" in out
    assert "calls: 3" in out  # 2 prompts + the streamed one
    assert "always-strong: $" in out and "savings: $" in out
    assert "llm.cost_report(): 3 calls" in out
