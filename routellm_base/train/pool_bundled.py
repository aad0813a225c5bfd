"""The recipe of the bundled pool router ``pool_knn``, runnable end to end.

    python -m routellm_base.train.pool_bundled --data-dir ../shared/data --out runs/pool-knn

Training data (every licence allows commercial use):
- LLMRouter train split (MIT): scores of 9 open models on 5,608 questions;
- Arena-Hard battles (Apache-2.0): gpt-4-0314 against 8 models on 498 real Chatbot Arena
  prompts, each model's per-prompt outcome (1 ahead on points, 0.5 even, 0 behind) stored as
  its score there, gpt-4-0314's as its mean outcome over its battles.
LLMRouter's test split is evaluation only: training prompts that duplicate one (exact, or
cosine >= 0.95 on the embedder) are removed. k and the weighting are chosen on 20% of the
LLMRouter training prompts (by sha1), never on test. Embedder: the bundled static
minilm-l6-static-256 (no torch at run time).

Writes the checkpoint folder (weights, config, model card) and prints the sha256 of its
config.json, which ``routellm_base.checkpoints.BUNDLED_POOL_ROUTERS`` pins.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from ..embedders import load_embedder
from ..hashing import sha256_file
from ..pool.checkpoints import save_pool_router
from ..pool.command import pool_model_card
from ..pool.data import load_arena_hard_battles, load_llmrouter, merge, relative_sources
from ..pool.training import fit_knn
from .pool_recipe import choose_knn, curve_row, decontaminated
from .recipe import cached_embed, recipe_parser, run_recipe

KNN_GRID = (10, 20, 40, 80, 160)


def main(argv: list[str] | None = None) -> int:
    parser = recipe_parser(__doc__)
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    args = parser.parse_args(argv)
    started = time.time()
    data_dir = Path(args.data_dir)
    embedder = load_embedder("minilm-l6-static-256")
    embed = cached_embed(embedder, None)
    train, test = load_llmrouter(data_dir, "train"), load_llmrouter(data_dir, "test")
    test = test.select_models(train.models)
    test_emb = embed(test.prompts)
    clean, clean_emb, removed = decontaminated(train, embed(train.prompts), test.prompts, test_emb)
    k, weighted, _ = choose_knn(clean, clean_emb, KNN_GRID, None)
    arena = load_arena_hard_battles(data_dir)
    data = merge([clean, arena])
    router = fit_knn(
        embed(data.prompts), data, k=k, weighted=weighted, name="pool_knn", embedder=embedder
    )
    held_out = curve_row(
        "pool_knn",
        router.quality_from_embeddings(test_emb, [router.models.index(m) for m in test.models]),
        test,
    )
    training = {
        "family": router.family,
        "data": relative_sources(data, data_dir),
        "licences": data.licences,
        "commercial_use": True,
        **data.summary(),
        "removed_as_contaminated_prompts": removed,
        "decontaminated_against": ["llmrouter test split"],
        "chosen_on_validation": {"k": k, "weighted": weighted},
        "llmrouter_test": held_out,
        "seconds": round(time.time() - started, 1),
        "command": "python -m routellm_base.train.pool_bundled "
        + shlex.join(sys.argv[1:] if argv is None else argv),
    }
    match = held_out["cost_to_match_best_single"]
    card = pool_model_card(router, training) + (
        f"\n## LLMRouter test (500 questions never trained on)\n\nAIQ {held_out['aiq']:.3f}; "
        f"quality {held_out['quality_at_cost']:.3f} at the best single model's cost "
        f"(${held_out['at_cost']:.3f} per 1,000 calls); cost to match it "
        f"{'never' if match is None else f'${match:.3f}'} per 1,000 calls. k={k}"
        f"{' (similarity-weighted)' if weighted else ''}, chosen on 20% of the training prompts.\n"
        "The Arena-Hard prompts are in the training data: no Arena-Hard figure of this "
        "checkpoint is held out (docs/results.md gives cross-fitted ones).\n"
    )
    out = save_pool_router(router, args.out, model_card=card, training=training)
    print(
        f"wrote {out}: k={k} weighted={weighted}, {len(router.embeddings)} prompts, "
        f"{len(router.models or ())} models; LLMRouter test {held_out}"
    )
    print(f"config.json sha256: {sha256_file(out / 'config.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(run_recipe(main))
