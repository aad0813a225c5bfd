"""Learn from your own traffic, offline: log -> shadow comparisons -> judge -> train -> calibrate.

    python examples/learning_loop.py [FOLDER]     # writes FOLDER/traffic.db and FOLDER/router

Runs in seconds with no API key and no model download. The two sides and the judge are
stand-ins so that it runs anywhere: the "weak" model fails every arithmetic question and
answers chat prompts well; the "strong" model answers everything well; the judge is a plain
Python function behind ``PairwiseJudge`` (in production: ``judge=ChatOpenAI(model="gpt-4o",
temperature=0)``, or any LangChain chat model / LlamaIndex LLM). Everything else is the real
product: the routing log, shadow calls, the MT-Bench pairwise judging in both orders, feedback,
``routellm train ... --data log:`` and ``routellm calibrate --prompts log:``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_routellm import RouterChatModel
from routellm_base import RandomRouter, RoutingEngine, load_router
from routellm_base.cli import main as routellm
from routellm_base.judging import PairwiseJudge
from routellm_base.log import RoutingLog

MATH = [f"What is {a} times {b}? Show your working." for a, b in zip(range(12, 42), range(7, 37))]
CHAT = [
    f"{verb} {topic}."
    for verb in ("Write a short poem about", "Give me three tips for", "Describe")
    for topic in ("autumn", "a rainy city", "learning the guitar", "a first job interview",
                  "keeping houseplants alive", "a quiet library", "the sea at night",
                  "planning a picnic", "moving to a new town", "an old bicycle")
]  # fmt: skip


class StandIn(BaseChatModel):
    """An offline chat model: a good answer, or a bad one for the prompts it fails on."""

    model_name: str
    fails_on_math: bool = False

    @property
    def _llm_type(self) -> str:
        return "stand-in"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        prompt = str(messages[-1].content)
        bad = self.fails_on_math and prompt in MATH
        text = f"{'A wrong' if bad else 'A careful'} answer from {self.model_name}."
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def stand_in_judge(messages: list[dict[str, str]]) -> str:
    """Reads MT-Bench's pairwise prompt like a judge would, and prefers the careful answer."""
    user = messages[-1]["content"]
    a_good = (
        "A careful" in user.split("[The Start of Assistant A's Answer]")[1].split("[The End")[0]
    )
    b_good = (
        "A careful" in user.split("[The Start of Assistant B's Answer]")[1].split("[The End")[0]
    )
    if a_good == b_good:
        return "Both answers are fine. [[C]]"
    return "Assistant A is correct. [[A]]" if a_good else "Assistant B is correct. [[B]]"


def main(folder: Path) -> None:
    db, checkpoint = folder / "traffic.db", folder / "router"
    log = RoutingLog(db, store_prompts=True)  # prompts and answers are needed to train
    llm = RouterChatModel(
        strong=StandIn(model_name="big"),
        weak=StandIn(model_name="small", fails_on_math=True),
        router=RandomRouter(seed=0),  # start from a router that knows nothing of this traffic
        log=log,
        shadow_rate=1.0,  # every call, for the demo; in production e.g. 0.02
        shadow_seed=0,
        judge=PairwiseJudge(stand_in_judge, "stand-in-judge"),
    )
    traffic = [p for pair in zip(MATH[:20], CHAT[:20]) for p in pair]
    for prompt in traffic:
        answer = llm.invoke(prompt)
    # A user's thumbs-down on an answer goes to the log under the call's id.
    log.feedback(answer.response_metadata["routellm"]["call_id"], rating=-1)
    llm.flush_log()  # shadow calls and judging run in the background; wait for them here
    print(f"logged {len(traffic)} calls and their shadow comparisons in {db}")
    print(llm.shadow_stats())

    # Retrain on the judged traffic and store its calibration on the logged prompts (the same as
    # routellm train task_experts --data log:traffic.db --calibration-prompts log:traffic.db ...),
    # then print the threshold for half of that traffic (routellm calibrate --prompts log:...).
    routellm(["train", "task_experts", "--data", f"log:{db}", "--calibration-prompts", f"log:{db}",
              "--out", str(checkpoint), "--strong", "big", "--weak", "small", "--no-progress"])  # fmt: skip
    routellm(["calibrate", "--prompts", f"log:{db}", "--strong-share", "0.5",
              "--router", str(checkpoint)])  # fmt: skip

    engine = RoutingEngine(load_router(checkpoint), strong_share=0.5)  # its stored calibration
    for prompt in [MATH[25], MATH[28], CHAT[25], CHAT[28]]:
        decision = engine.decide(prompt)
        print(f"{decision.win_rate:.3f}  {decision.side:6}  {prompt}")
    log.close()


if __name__ == "__main__":
    target = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="routellm-loop-"))
    )
    target.mkdir(parents=True, exist_ok=True)
    main(target)
