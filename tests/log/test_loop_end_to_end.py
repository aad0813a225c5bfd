"""The learning loop end to end, offline: a RouterChatModel logs its calls and shadow
comparisons, ``routellm judge --log`` judges them over a real loopback HTTP server, ``routellm
train --data log:`` trains a router on the verdicts, ``routellm calibrate --prompts log:``
calibrates it on the logged traffic, the new router, swapped into the live RouterChatModel, routes
the kind of prompt the weak model failed on to the strong one, and ``routellm report`` reads
the log back."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_routellm import RouterChatModel
from routellm_base import RandomRouter, load_router
from routellm_base.cli import main
from routellm_base.data import load_gsm8k
from routellm_base.data.scored import read_prompt_file
from routellm_base.log import RoutingLog, read_comparisons


def server_module() -> Any:
    path = Path(__file__).parent.parent / "train" / "local_openai_server.py"
    spec = importlib.util.spec_from_file_location("log_tests_local_openai_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Side(BaseChatModel):
    """An offline side: answers "good" unless the prompt is one it fails on ("bad")."""

    model_name: str
    fails_on: frozenset[str] = frozenset()

    @property
    def _llm_type(self) -> str:
        return "offline-side"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = str(messages[-1].content)
        text = f"{'bad' if prompt in self.fails_on else 'good'} answer from {self.model_name}"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def judge_reply(messages: list[dict[str, str]], max_tokens: int) -> tuple[str, int, int]:
    """The judge endpoint's scripted judgment: the "good" answer wins, two good ones tie."""
    user = messages[1]["content"]
    a = user.split("[The Start of Assistant A's Answer]\n")[1].startswith("good")
    b = user.split("[The Start of Assistant B's Answer]\n")[1].startswith("good")
    return ("[[A]]" if a and not b else "[[B]]" if b and not a else "[[C]]"), 100, 3


def test_log_shadow_judge_train_calibrate_route(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    math = [row.prompt for row in load_gsm8k(data_dir)][:50]
    chat = [p for _, p in read_prompt_file(data_dir / "alpaca_eval" / "prompts.jsonl")][:50]
    traffic, held_out = math[:35] + chat[:35], (math[35:], chat[35:])
    path = tmp_path / "traffic.db"

    # 1. Traffic: a random router in front of a weak model that fails every math question.
    log = RoutingLog(path, store_prompts=True)
    llm = RouterChatModel(
        strong=Side(model_name="big"),
        weak=Side(model_name="small", fails_on=frozenset(math)),
        router=RandomRouter(seed=0),
        log=log,
        shadow_rate=1.0,
        shadow_seed=0,
    )
    for prompt in traffic:
        llm.invoke(prompt)
    assert llm.flush_log(60)
    assert len(read_comparisons(path)) == 70

    # 2. Judge the stored comparisons through the OpenAI client over loopback HTTP.
    with server_module().LocalOpenAIServer(judge_reply, max_requests=200) as server:
        rc = main(
            [
                "judge",
                "--log",
                str(path),
                "--judge-model",
                "scripted-judge",
                "--base-url",
                server.url,
                "--api-key-env",
                "ROUTELLM_TEST_UNSET_KEY",
                "--json",
            ]  # fmt: skip
        )
    assert rc == 0
    judged = json.loads(capsys.readouterr().out)
    assert (judged["items"], judged["judged"], judged["unparseable"]) == (70, 70, 0)
    assert (judged["strong_wins"], judged["ties"], judged["requests"]) == (35, 35, 140)

    # 3. Train a router on the verdicts (sw_ranking: no training loop, seconds).
    checkpoint = tmp_path / "from-traffic"
    rc = main(
        [
            "train",
            "sw_ranking",
            "--data",
            f"log:{path}",
            "--out",
            str(checkpoint),
            "--strong",
            "big",
            "--weak",
            "small",
            "--calibration-prompts",
            f"log:{path}",
            "--no-progress",
        ]  # fmt: skip
    )
    assert rc == 0
    note = capsys.readouterr().err
    assert "70 battles {'judge': 70}" in note
    router = load_router(checkpoint)
    # Its calibration was stored from the logged traffic, so strong_share works with it.
    assert router.calibration is not None and router.calibration.reference.startswith("routing log")
    math_rate = router.strong_win_rate(held_out[0])
    chat_rate = router.strong_win_rate(held_out[1])
    # Learned from this traffic: it ranks unseen math questions (where the weak model failed)
    # above unseen chat prompts (where both were good), in nearly every pair.
    ranked_right = float(np.mean(math_rate[:, None] > chat_rate[None, :]))
    assert ranked_right >= 0.9, (math_rate, chat_rate)

    # 4. Calibrate the new router on the logged prompts.
    rc = main(
        [
            "calibrate",
            "--prompts",
            f"log:{path}",
            "--strong-share",
            "0.5",
            "--router",
            str(checkpoint),
            "--json",
        ]  # fmt: skip
    )
    assert rc == 0
    calibrated = json.loads(capsys.readouterr().out)
    assert calibrated["prompts"] == 70 and calibrated["achieved_share"] == pytest.approx(
        0.5, abs=0.03
    )
    assert router.calibration.threshold_for_share(0.5) == pytest.approx(
        calibrated["threshold"], abs=0.01
    )

    # 5. Route with it: math goes strong, chat weak, most of the time.
    routed = RouterChatModel(
        strong=Side(model_name="big"),
        weak=Side(model_name="small"),
        router=checkpoint,
        threshold=calibrated["threshold"],
    )
    sides = [routed.decide(p).side for p in held_out[0] + held_out[1]]
    assert sides[:15].count("strong") >= 12 and sides[15:].count("weak") >= 12, sides

    # 6. Swap it into the live model, route the held-out traffic, and read the report.
    llm.threshold = calibrated["threshold"]  # the threshold `routellm calibrate` printed
    llm.swap_router(checkpoint)
    llm.shadow_rate = 0.0
    for prompt in held_out[0] + held_out[1]:
        llm.invoke(prompt)
    assert llm.flush_log(60)
    rc = main(["report", "--log", str(path), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["calls"] == 100 and report["routers"] == {"random": 70, str(checkpoint): 30}
    assert report["judged"]["judged"] == 70 and report["judged"]["by_source"] == {"judge": 70}
    log.close()


def test_the_learning_loop_example_runs_offline(tmp_path: Path) -> None:
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[2] / "examples" / "learning_loop.py"
    done = subprocess.run(
        [sys.executable, str(example), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert "judged=40, unparseable=0" in lines[1]
    assert "40 battles {'judge': 40}" in done.stderr
    assert lines[3].startswith("threshold ") and "sends 50.0% of routing log traffic.db (40 prompts) strong" in lines[3]
    # The report it prints is of the trained router's own traffic, judged and priced.
    report = done.stdout[done.stdout.index("routing log sqlite") :]
    assert f"routers: {tmp_path / 'router'} x20" in report
    spec = importlib.util.spec_from_file_location("learning_loop_example", example)
    assert spec is not None and spec.loader is not None
    loop = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loop)
    # Decisive verdicts: the sums the weak side fails and the poems the strong side does.
    decisive = len(loop.MATH[20:]) + len(loop.POEMS.intersection(loop.CHAT[20:]))
    auc = report[report.index("  AUC ") :].split()
    assert float(auc[1]) > 0.5 and auc[2:4] == ["over", str(decisive)]
    assert "20 calls: $" in report and "no price for" not in report
    assert (tmp_path / "routed.db").is_file() and (tmp_path / "report.png").is_file()
    rates = [float(line.split()[0]) for line in lines[-4:]]
    assert min(rates[:2]) > max(rates[2:])  # unseen arithmetic above unseen chat
    # The stored calibration turns strong_share=0.5 into a threshold between them.
    assert [line.split()[1] for line in lines[-4:]] == ["strong", "strong", "weak", "weak"]
    assert (tmp_path / "router" / "model_card.md").exists() or any((tmp_path / "router").iterdir())


def test_the_learning_loop_example_refuses_a_folder_with_an_earlier_run(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "traffic.db").write_bytes(b"")  # as a first run leaves it
    example = Path(__file__).resolve().parents[2] / "examples" / "learning_loop.py"
    done = subprocess.run(
        [sys.executable, str(example), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1 and done.stdout == ""
    assert f"{tmp_path} already holds an earlier run (traffic.db)" in done.stderr
    assert (tmp_path / "traffic.db").read_bytes() == b""  # left as it was
    assert not (tmp_path / "router").exists()


def test_the_learning_loop_example_refuses_a_file_as_its_folder(tmp_path: Path) -> None:
    import subprocess
    import sys

    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    example = Path(__file__).resolve().parents[2] / "examples" / "learning_loop.py"
    done = subprocess.run(
        [sys.executable, str(example), str(a_file)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2 and done.stdout == ""
    assert f"{a_file} is a file, not a folder" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_learning_loop_example_answers_help_without_running(tmp_path: Path) -> None:
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[2] / "examples" / "learning_loop.py"
    done = subprocess.run(
        [sys.executable, str(example), "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and "usage:" in done.stdout and "folder" in done.stdout
    assert list(tmp_path.iterdir()) == []  # no "--help" folder, no run


def test_the_learning_loop_example_stops_quietly_when_its_reader_leaves(tmp_path: Path) -> None:
    import subprocess
    import sys

    from routellm_base.cli import EXIT_BROKEN_PIPE

    example = Path(__file__).resolve().parents[2] / "examples" / "learning_loop.py"
    # As `python examples/learning_loop.py DIR | head -2`: two lines read, then the pipe closes.
    process = subprocess.Popen(
        [sys.executable, str(example), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    first = [process.stdout.readline(), process.stdout.readline()]
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == EXIT_BROKEN_PIPE
    assert first[0].startswith("logged 40 calls")
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
