"""Learn from your own traffic, offline: log -> shadow comparisons -> judge -> train -> calibrate
-> route with the new router -> read its log with ``routellm report``.

    python examples/learning_loop.py [FOLDER]

writes FOLDER/traffic.db (the first traffic, routed at random, judged, to train on),
FOLDER/router (the router trained on it), FOLDER/routed.db (new traffic routed by that router,
judged too) and FOLDER/report.png (``routellm report`` of routed.db, also printed). FOLDER must
not hold an earlier run's files: the logs would add this run's calls to the last run's, so a rerun
into the same folder stops with an error naming it (give a new folder, or delete those files).
Without FOLDER it writes to a new temporary folder.

Runs in seconds with no API key and no model download. The two sides and the judge are
stand-ins so that it runs anywhere: the "weak" model fails every arithmetic question; the
"strong" one writes stilted poems; both answer the other prompts well. The judge is a plain
Python function behind ``PairwiseJudge`` (in production: ``judge=ChatOpenAI(model="gpt-4o",
temperature=0)``, or any LangChain chat model / LlamaIndex LLM). The stand-ins report no token
usage, so tokens are counted from the text, and they are priced as if they were gpt-4o and
gpt-4o-mini (``PRICES``) to show the cost part of the report. Everything else is the real
product: the routing log, shadow calls, the MT-Bench pairwise judging in both orders, feedback,
``routellm train ... --data log:``, ``routellm calibrate --prompts log:`` and ``routellm report``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_routellm import RouterChatModel
from routellm_base import RandomRouter, RoutingEngine, load_router
from routellm_base.cli import EXIT_BROKEN_PIPE
from routellm_base.cli import main as routellm_main
from routellm_base.judging import PairwiseJudge
from routellm_base.log import RoutingLog

MATH = [f"What is {a} times {b}? Show your working." for a, b in zip(range(12, 42), range(7, 37))]
CHAT = [
    f"{verb} {topic}."
    for topic in ("autumn", "a rainy city", "learning the guitar", "a first job interview",
                  "keeping houseplants alive", "a quiet library", "the sea at night",
                  "planning a picnic", "moving to a new town", "an old bicycle")
    for verb in ("Write a short poem about", "Give me three tips for", "Describe")
]  # fmt: skip
POEMS = frozenset(p for p in CHAT if p.startswith("Write a short poem"))
PRICES = {"big": (2.50, 10.00), "small": (0.15, 0.60)}
"""USD per 1M input/output tokens of the stand-ins: gpt-4o's and gpt-4o-mini's list prices."""


class StandIn(BaseChatModel):
    """An offline chat model: a good answer, or a bad one for the prompts it fails on."""

    model_name: str
    fails_on: frozenset[str] = frozenset()

    @property
    def _llm_type(self) -> str:
        return "stand-in"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        prompt = str(messages[-1].content)
        text = (
            f"{'A poor' if prompt in self.fails_on else 'A careful'} answer from {self.model_name}."
        )
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


def sides(router: Any, log: RoutingLog) -> RouterChatModel:
    """The stand-in pair behind ``router``, every call logged, shadowed and judged."""
    return RouterChatModel(
        strong=StandIn(model_name="big", fails_on=POEMS),
        weak=StandIn(model_name="small", fails_on=frozenset(MATH)),
        router=router,
        strong_share=0.5,
        prices=PRICES,
        log=log,
        shadow_rate=1.0,  # every call, for the demo; in production e.g. 0.02
        shadow_seed=0,
        judge=PairwiseJudge(stand_in_judge, "stand-in-judge"),
    )


OUTPUTS = ("traffic.db", "router", "routed.db", "report.png")


def routellm(argv: list[str]) -> None:
    """``routellm ARGS`` in-process; a failure (or a reader that left) ends the example too."""
    status = routellm_main(argv)
    if status != 0:
        raise SystemExit(status)


def main(folder: Path) -> None:
    earlier = [name for name in OUTPUTS if (folder / name).exists()]
    if earlier:
        raise SystemExit(
            f"learning_loop.py: {folder} already holds an earlier run ({', '.join(earlier)}); "
            "rerunning into it would train on both runs' calls. Give a new folder, or delete "
            "those first."
        )
    db, checkpoint, routed = folder / "traffic.db", folder / "router", folder / "routed.db"
    log = RoutingLog(db, store_prompts=True)  # prompts and answers are needed to train
    # Start from a router that knows nothing of this traffic.
    llm = sides(RandomRouter(seed=0), log)
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
    log.close()

    # New traffic, routed by the trained router and judged the same way, in a log of its own, so
    # that its report describes this router (the first log's describes the random one).
    new_log = RoutingLog(routed, store_prompts=True)
    trained = sides(str(checkpoint), new_log)
    for prompt in [p for pair in zip(MATH[20:], CHAT[20:]) for p in pair]:
        trained.invoke(prompt)
    trained.flush_log()
    new_log.close()
    report = ["report", "--log", str(routed), "--plot", str(folder / "report.png"),
              *(f"--price={m}={i:g},{o:g}" for m, (i, o) in PRICES.items())]  # fmt: skip
    print(
        "\nThe trained router's traffic, as `routellm report` reads it: the cost against always-"
        "strong\n(the stand-ins priced as gpt-4o and gpt-4o-mini, their tokens counted from the "
        "text), how well\nits win rates rank the judge's verdicts (AUC), and drift against the "
        "calibration stored from\nthe first log. 20 calls are few: read each figure with the "
        "interval or noise level beside it."
    )
    print(f"\n$ routellm {' '.join(report)}")
    routellm(report)

    engine = RoutingEngine(load_router(checkpoint), strong_share=0.5)  # its stored calibration
    print("\nThe trained router on four of those prompts:")
    for prompt in [MATH[25], MATH[28], CHAT[25], CHAT[28]]:
        decision = engine.decide(prompt)
        print(f"{decision.win_rate:.3f}  {decision.side:6}  {prompt}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "folder",
        nargs="?",
        type=Path,
        help="where the run's logs, router and report go (default: a new temporary folder); "
        "it must not hold an earlier run's files",
    )
    folder = parser.parse_args().folder
    if folder is not None and folder.exists() and not folder.is_dir():
        parser.error(f"{folder} is a file, not a folder: give a new or empty folder")
    target = folder if folder is not None else Path(tempfile.mkdtemp(prefix="routellm-loop-"))
    target.mkdir(parents=True, exist_ok=True)
    try:
        main(target)
        sys.stdout.flush()  # here, so that a closed pipe is caught below and not at exit
    except BrokenPipeError:
        # The reader left (`... | head -2`): stop quietly, as the routellm command does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        sys.exit(EXIT_BROKEN_PIPE)
