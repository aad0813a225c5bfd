"""The one real judge of the loop: SmolLM2-135M-Instruct behind a real OpenAI-compatible server on
127.0.0.1, reached through LangChain's ChatOpenAI (in-process judging of shadow comparisons) and
through ``routellm judge --log``. Whatever a 135M judge says, every item is accounted for: a
readable verdict in both orders, or counted as unparseable with no verdict guessed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from langchain_openai import ChatOpenAI
from test_loop_end_to_end import Side, server_module

from langchain_routellm import RouterChatModel
from routellm_base import RandomRouter
from routellm_base.cli import main
from routellm_base.judging import BATTLE_WINNER, combine_verdicts
from routellm_base.log import RoutingLog, read_comparisons

JUDGE = "SmolLM2-135M-Instruct"
QUESTIONS = {
    "What is 7 times 8?": ("7 times 8 is 56.", "7 times 8 is 54."),
    "What is the capital of France?": ("Paris.", "Lyon."),
}


class Answering(Side):
    """Answers each question with its scripted strong or weak answer."""

    strong_side: bool = True

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        result = super()._generate(messages, stop, run_manager, **kwargs)
        answer = QUESTIONS[str(messages[-1].content)][0 if self.strong_side else 1]
        result.generations[0].message.content = answer
        return result


def traffic(path: Path, judge: ChatOpenAI | None) -> RouterChatModel:
    log = RoutingLog(path, store_prompts=True)
    llm = RouterChatModel(
        strong=Answering(model_name="strong-model"),
        weak=Answering(model_name="weak-model", strong_side=False),
        router=RandomRouter(seed=1),
        log=log,
        shadow_rate=1.0,
        judge=judge,
    )
    for question in QUESTIONS:
        llm.invoke(question)
    return llm


def check_rows(path: Path) -> tuple[int, int]:
    """Every row's verdict follows from its two parsed verdicts; returns (judged, unparseable)."""
    rows = read_comparisons(path)
    assert len(rows) == len(QUESTIONS) and all(r["judge_model"] == JUDGE for r in rows)
    judged = unparseable = 0
    for row in rows:
        orders = (row["strong_first_verdict"], row["weak_first_verdict"])
        assert row["unparseable"] == orders.count(None)
        if None in orders:
            assert row["verdict"] is None and row["verdict_source"] is None
            unparseable += 1
        else:
            assert row["verdict"] == BATTLE_WINNER[combine_verdicts(*orders)]
            assert row["verdict_source"] == "judge"
            judged += 1
    return judged, unparseable


@pytest.fixture
def one_torch_thread():
    # Two torch threads per generation on two cores shared with other work spin against each
    # other (measured here: 40 s instead of 4 s for one judgment); one thread per request.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_smollm2_judges_shadow_comparisons_in_process_and_from_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server_mod = server_module()
    reply = server_mod.smollm2_reply(max_new_tokens=24)  # loads the model before the clock
    started = time.perf_counter()
    with server_mod.LocalOpenAIServer(reply, max_requests=4 * len(QUESTIONS)) as server:
        # In-process: LangChain's real OpenAI chat model is the judge.
        judge = ChatOpenAI(
            model=JUDGE, base_url=server.url, api_key="unused", temperature=0, max_tokens=24,
            max_retries=0,
        )  # fmt: skip
        llm = traffic(tmp_path / "inprocess.db", judge)
        assert llm.flush_log(120)
        stats = llm.shadow_stats()
        assert stats is not None
        n = len(QUESTIONS)
        assert (stats.sampled, stats.answered, stats.judge_failed, stats.failed) == (n, n, 0, 0)
        judged, unparseable = check_rows(tmp_path / "inprocess.db")
        assert (stats.judged, stats.unparseable) == (judged, unparseable)
        assert len(server.received) == 2 * n

        # Later, from the command line: comparisons logged without a judge, judged in place.
        traffic(tmp_path / "later.db", None).flush_log(60)
        rc = main(
            [
                "judge",
                "--log",
                str(tmp_path / "later.db"),
                "--judge-model",
                JUDGE,
                "--base-url",
                server.url,
                "--api-key-env",
                "ROUTELLM_TEST_UNSET_KEY",
                "--max-tokens",
                "24",
                "--concurrency",
                "2",
                "--json",
            ]  # fmt: skip
        )
    seconds = time.perf_counter() - started
    assert rc == 0
    counts = json.loads(capsys.readouterr().out)
    later = check_rows(tmp_path / "later.db")
    assert (counts["items"], counts["requests"], counts["retries"]) == (n, 2 * n, 0)
    assert (counts["judged"], counts["unparseable"]) == later
    assert counts["strong_wins"] + counts["weak_wins"] + counts["ties"] == counts["judged"]
    assert len(server.received) == 4 * n and set(server.statuses) == {200}
    assert all(body["model"] == JUDGE and body["temperature"] == 0 for body in server.received)
    with capsys.disabled():
        print(
            f"\nSmolLM2 judge: in-process {judged} judged / {unparseable} unparseable; "
            f"CLI {counts['judged']} judged / {counts['unparseable']} unparseable; {seconds:.1f} s"
        )
