"""A research-only recipe: one ``task_experts`` router for chat, knowledge and maths traffic.

    python -m routellm_base.train.chat_task_experts --data-dir ../shared/data --out runs/chat-task-experts [--crossfit]

Three task kinds, fitted jointly (a gate over all three, one ridge expert each):

- ``mmlu`` and ``gsm8k``: RouteLLM correctness of GPT-4-1106-preview vs Mixtral-8x7B (Apache-2.0),
  the held-out fold removed, exactly as in the bundled ``task_experts``;
- ``chat``: RMB's open-chat preference pairs (:mod:`routellm_base.data.rmb`): per prompt, the
  share of top-tier vs mid-tier battles the top tier won, as a gap in [-1, 1], with RMB's
  held-out fold removed. RMB has no GPT-4-1106 battles; top tier vs mid tier stands in for the
  GPT-4-class vs Mixtral-class question. Its gaps are *centred* (tie-free judge preferences have
  no level comparable to correctness gaps; see ``train_task_experts``).

The gate's prior is halfway between the kinds' sizes and equal odds (``gate_class_balance=0.5``):
at 0, 970 chat prompts beside 10,000 MMLU items rarely win the gate and chat is routed like
MMLU; at 1, MMLU questions leak to the chat expert and MMLU loses 0.02 APGR. 0.5 was chosen on
RMB's held-out fold, MMLU and GSM8K (``scripts/chat_experiments.py``), not on MT Bench.

**Licence.** RMB's source repository carries no licence: the checkpoint this writes is for
research only. It is never bundled with the package; its model card says so.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..calibration import Calibration
from ..embedders.base import Embedder
from . import default_task_experts
from .recipe import crossfit_table, run_recipe
from .task_experts import TaskExpertsTrainConfig

KINDS = ("mmlu", "gsm8k", "chat")
NAME = "chat_task_experts"
DEFAULT_CONFIG = TaskExpertsTrainConfig(gate_class_balance=0.5, gate_c=10.0)


def model_card(
    embedder: Embedder,
    training: dict[str, Any],
    calibration: Calibration,
    crossfit_results: list[dict[str, Any]] | None,
) -> str:
    metrics = "\n".join(
        f"| {name} | {m['n']} | {m['n_decisive']} | {m['auc']:.3f} |"
        for name, m in training["metrics"].items()
    )
    kinds = "\n".join(
        f"| {name} | {k['prompts']} | {k['mean_gap']:+.3f} | {'yes' if k['centred'] else 'no'} | {k['ridge_penalty']:g} |"
        for name, k in training["task_kinds"].items()
    )
    shares = " · ".join(
        f"{int(s * 100)}% → {calibration.threshold_for_share(s):.4f}"
        for s in (0.1, 0.2, 0.3, 0.5, 0.7)
    )
    return f"""# Router checkpoint: `{NAME}` (RESEARCH ONLY, not for commercial use, never bundled)

Estimates the probability that **gpt-4-1106-preview** (strong) answers better than
**Mixtral-8x7B-Instruct-v0.1** (weak) on chat, knowledge and maths traffic. A softmax gate on the
embedding weighs three task kinds; each kind's ridge expert predicts the gap from the embedding,
log(1 + characters) and log(1 + words); win rate = (1 + gate-weighted gap) / 2. Embedder:
`{embedder.kind}:{embedder.name}` ({embedder.dim}-d). Routing needs numpy alone.

## Training data and licences
| kind | source | licence | prompts used |
| --- | --- | --- | --- |
| mmlu | RouteLLM MMLU correctness, GPT-4 vs Mixtral (80% by sha1 of the prompt) | Apache-2.0 | {training["sources"]["mmlu"]} |
| gsm8k | RouteLLM GSM8K correctness, GPT-4 vs Mixtral (80% by sha1 of the prompt) | Apache-2.0 | {training["sources"]["gsm8k"]} |
| chat | RMB helpfulness pairs (Zhou et al.), top tier vs mid tier (80% by sha1 of the prompt) | **none given: research-only** | {training["sources"]["rmb"]} |

RMB's source repository carries no licence, so this checkpoint may be built and measured for
research but not redistributed or used commercially. The package never ships it: build it
yourself with the command below. Training prompts duplicating any evaluation or calibration
prompt (exact text, or cosine >= 0.95 on this embedder) were removed: {training["removed_as_contaminated"]}.

| kind | prompts | mean gap | centred | ridge penalty (5-fold CV) |
| --- | --- | --- | --- | --- |
{kinds}

Gate accuracy on {training["config"]["validation_fraction"]:.0%} of prompts held out: {training["gate_validation_accuracy"]:.3f}.

## Metrics (items never trained on)
AUC of the win rate against "strong scored higher than weak" on items where they differ (GPT-4 vs
Mixtral; top tier vs mid tier on RMB):

| set | items | decisive | AUC |
| --- | --- | --- | --- |
{metrics}

{crossfit_table(crossfit_results)}

## Calibration
Reference prompts: {calibration.reference}, {calibration.n_prompts} prompts (Apache-2.0).
strong share → threshold: {shares}.

## Reproduce
    pip install -e '.[train]'
    {training["command"]}
"""


def build_parser() -> argparse.ArgumentParser:
    """This recipe's command line (built without running it)."""
    return default_task_experts.build_parser(DEFAULT_CONFIG, __doc__)


def main(argv: list[str] | None = None) -> None:
    default_task_experts.main(
        argv,
        chat=True,
        name=NAME,
        default_config=DEFAULT_CONFIG,
        card=model_card,
        description=__doc__,
    )


if __name__ == "__main__":
    sys.exit(run_recipe(main))
