"""A research-only recipe: one fine-tuned MiniLM classifier (the ``bert`` family) for chat,
knowledge and maths traffic.

    python -m routellm_base.train.chat_bert --data-dir ../shared/data --out runs/chat-bert [--seed 0]

all-MiniLM-L6-v2 is fine-tuned end to end (RouteLLM's BERT classifier: strong wins / tie / weak
wins) on three sources at once, each with its fold 0 of 5 (by sha1 of the prompt) held out:

- ``chat``: RMB's open-chat preference pairs (:mod:`routellm_base.data.rmb`), every top-tier vs
  mid-tier battle, with the top tier named GPT-4-1106 and the mid tier Mixtral (RMB has no battle
  of that pair; the tiers stand in for the GPT-4-class vs Mixtral-class question);
- ``mmlu``: RouteLLM's GPT-4-1106 vs Mixtral correctness (Apache-2.0), a random
  ``--mmlu-items`` of folds 1-4 (3,000 by default, to fit 2 CPU cores; correctness ties are ties);
- ``gsm8k``: the same for GSM8K, folds 1-4.

Every training prompt within cosine 0.95 of an evaluation prompt (RMB fold 0, MMLU and GSM8K
fold 0, MT Bench's turns) is removed, and the checkpoint declares the folds it trained on, so
``routellm eval`` scores MMLU, GSM8K and RMB on fold 0 only. Settings were fixed before any
figure was seen: 3 epochs at most with early stopping on a 10% validation split by prompt,
128 tokens, the family's defaults otherwise. About 30-45 minutes on 2 CPU cores; minutes on a GPU.

**Licence.** RMB's source repository carries no licence: the checkpoint this writes is for
research only. It is never bundled with the package; its model card says so.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from ..arg_types import int_at_least
from ..data import (
    GPT4,
    MIXTRAL,
    crossfit_fold,
    load_gsm8k,
    load_mmlu,
    load_mt_bench,
    load_rmb,
    load_rmb_pairs,
    rmb_split,
    rmb_tier_battles,
)
from ..data.scored import write_scored_jsonl
from .recipe import FOLDS, recipe_parser, run_recipe

NAME = "chat_bert"
LICENCE = "none given for RMB (research-only); RouteLLM MMLU/GSM8K correctness: Apache-2.0"
BENCHMARKS = ("mmlu", "gsm8k", "rmb")


def write_training_files(
    data_dir: str | Path, work: Path, mmlu_items: int, seed: int, fold: int = 0
) -> dict[str, Path]:
    """The recipe's training and exclusion files under ``work``: battles and scored JSONL as
    ``routellm train`` reads them, and every evaluation prompt to decontaminate against.

    ``fold`` (of :data:`FOLDS`, by sha1 of the prompt) is held out of every source; fold 0 is
    what ``routellm eval`` scores, the others serve cross-fitting.
    """
    mmlu = [r for r in load_mmlu(data_dir) if crossfit_fold(r.prompt, FOLDS) != fold]
    gsm8k = [r for r in load_gsm8k(data_dir) if crossfit_fold(r.prompt, FOLDS) != fold]
    work.mkdir(parents=True, exist_ok=True)  # once the data folder has been found
    if mmlu_items < len(mmlu):
        mmlu = random.Random(seed).sample(mmlu, mmlu_items)
    files = {
        "chat": work / "rmb_tier_battles.jsonl",
        "mmlu": work / "mmlu.jsonl",
        "gsm8k": work / "gsm8k.jsonl",
    }
    battles = rmb_tier_battles(rmb_split(load_rmb_pairs(data_dir), "train", fold), GPT4, MIXTRAL)
    files["chat"].write_text("".join(json.dumps(b) + "\n" for b in battles), encoding="utf-8")
    write_scored_jsonl(mmlu, files["mmlu"])
    write_scored_jsonl(gsm8k, files["gsm8k"])
    held_out = [r.prompt for r in load_rmb(data_dir, "holdout", fold)]
    held_out += [r.prompt for r in load_mmlu(data_dir) if crossfit_fold(r.prompt, FOLDS) == fold]
    held_out += [r.prompt for r in load_gsm8k(data_dir) if crossfit_fold(r.prompt, FOLDS) == fold]
    held_out += [t for r in load_mt_bench(data_dir) for t in r.extra["turns"]]
    files["exclude"] = work / "evaluation_prompts.jsonl"
    files["exclude"].write_text(
        "".join(json.dumps({"prompt": t}) + "\n" for t in held_out), encoding="utf-8"
    )
    files["calibration"] = Path(data_dir) / "arena_hard" / "questions.jsonl"
    return files


def train_argv(files: dict[str, Path], out: str | Path, seed: int, epochs: int) -> list[str]:
    """The ``routellm train bert`` command line this recipe runs."""
    return [
        "train", "bert",
        "--data", str(files["chat"]), "--data", f"scores:{files['mmlu']}", "--data", f"scores:{files['gsm8k']}",
        "--strong", GPT4, "--weak", MIXTRAL, "--exclude", str(files["exclude"]),
        "--calibration-prompts", str(files["calibration"]), "--data-licence", LICENCE,
        "--epochs", str(epochs), "--max-length", "128", "--seed", str(seed), "--no-progress", "--out", str(out), "--force",
        *[arg for name in BENCHMARKS for arg in ("--trained-on-benchmark", name)],
    ]  # fmt: skip


def research_only_card(card: str, mmlu_items: int) -> str:
    """The generic ``bert`` model card under a research-only header naming the three sources."""
    return f"""# Router checkpoint: `{NAME}` (RESEARCH ONLY, not for commercial use, never bundled)

Trained by `python -m routellm_base.train.{NAME}` on three sources, each with fold 0 of {FOLDS}
(by sha1 of the prompt) held out:

| kind | source | licence |
| --- | --- | --- |
| chat | RMB helpfulness pairs (Zhou et al.), top tier vs mid tier, named GPT-4-1106 vs Mixtral | **none given: research-only** |
| mmlu | RouteLLM MMLU correctness, GPT-4-1106 vs Mixtral, {mmlu_items} random items of folds 1-{FOLDS - 1} | Apache-2.0 |
| gsm8k | RouteLLM GSM8K correctness, GPT-4-1106 vs Mixtral, folds 1-{FOLDS - 1} | Apache-2.0 |

RMB's source repository carries no licence, so this checkpoint may be built and measured for
research but not redistributed or used commercially. The package never ships it. `routellm eval`
scores it on MMLU, GSM8K and RMB's fold 0 only (the folds it never saw) and on MT Bench, which no
source contains.

{card.split(chr(10), 1)[1]}"""


def main(argv: list[str] | None = None) -> None:
    from ..cli import main as cli_main

    parser = recipe_parser(__doc__)
    parser.add_argument(
        "--out",
        required=True,
        help="checkpoint folder to write; its training files go to OUT/../OUT.name-data",
    )
    parser.add_argument("--mmlu-items", type=int_at_least(1), default=3000)
    parser.add_argument("--epochs", type=int_at_least(1), default=3)
    parser.add_argument("--seed", type=int_at_least(0), default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    files = write_training_files(
        args.data_dir, out.parent / f"{out.name}-data", args.mmlu_items, args.seed
    )
    code = cli_main(train_argv(files, out, args.seed, args.epochs))
    if code:
        sys.exit(code)
    card = out / "MODEL_CARD.md"
    card.write_text(
        research_only_card(card.read_text(encoding="utf-8"), args.mmlu_items), encoding="utf-8"
    )
    print(
        f"wrote {out}; score it with: routellm eval --benchmark mt-bench --benchmark rmb --benchmark mmlu "
        f"--benchmark gsm8k --data-dir {args.data_dir} --router {out}"
    )


if __name__ == "__main__":
    sys.exit(run_recipe(main))
