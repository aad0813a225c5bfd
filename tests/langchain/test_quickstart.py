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


def test_quickstart_explains_a_strong_share_away_from_its_target(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The bundled router on the six quickstart prompts, with canned sides instead of SmolLM2:
    # the printout must say why the share of these prompts differs from the 50% target.
    import itertools

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    spec = importlib.util.spec_from_file_location("langchain_quickstart", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Canned(GenericFakeChatModel):
        model_name: str  # named as the quickstart prices the local models

    def canned() -> tuple[GenericFakeChatModel, GenericFakeChatModel]:
        answer = itertools.cycle([AIMessage("an answer", response_metadata={"model_name": "m"})])
        return (
            Canned(messages=answer, model_name="smollm2-as-strong"),
            Canned(messages=answer, model_name="smollm2-as-weak"),
        )

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(module, "local_models", canned)
    assert module.main([]) == 0
    out = capsys.readouterr().out
    strong = out.count("  -> STRONG")
    assert strong + out.count("  -> WEAK") == len(module.PROMPTS) == 6
    assert "strong share target: 50%" in out
    note = " ".join(out.split())  # the note is wrapped
    assert "the threshold is the win rate that sends 50% of the router's calibration set" in note
    assert "(Arena-Hard-Auto v0.1 questions (498 real Chatbot Arena prompts))" in note
    assert f"{strong} of 6 routed prompts went strong (target 50% of traffic like" in out
