"""RMB's open-chat preference pairs (Zhou et al., *RMB: Comprehensively Benchmarking Reward Models
in LLM Alignment*, helpfulness sets), as battles and as a held-out benchmark.

``rmb/pairs.jsonl`` has one line per judged pair: ``id, set, category, conversation, winner,
loser`` (see ``../shared/data/README.md``). The source repository has no licence file: treat
everything built from it as research-only and keep it out of shipped checkpoints.

RMB holds no GPT-4-1106 or Mixtral-vs-GPT-4 pair; what it measures is whether a *top-tier* model
beats a *mid-tier* one on a prompt. The tiers are fixed here, by the models' standing in public
leaderboards of their time (not by anything measured on this data):

- top tier: claude-3.5-sonnet, gemini-1.5-pro (0801), claude-3-opus, gpt-4o-mini;
- mid tier: Mixtral-8x7B, Llama-2-70b-chat, Gemini-pro, claude-2.1, Mistral-7B;
- neither (their battles count only where a recipe uses every pair): Llama-2-7b-chat,
  vicuna-7b, claude-instant-1.2.

A prompt is the conversation's last user turn, which is what the routers route on by default.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .scored import ScoredPrompt, iter_jsonl_objects
from .sources import crossfit_fold

RMB_TOP_TIER = (
    "claude-3-5-sonnet-20240620",
    "gemini-1.5-pro-exp-0801",
    "claude-3-opus-20240229",
    "gpt-4o-mini-2024-07-18",
)
RMB_MID_TIER = (
    "Mixtral-8x7B-Instruct-v0.1",
    "Llama-2-70b-chat-hf",
    "Gemini-pro",
    "claude-2.1",
    "Mistral-7B-Instruct-v0.1",
)
TOP_TIER, MID_TIER = "top-tier", "mid-tier"
"""The two pseudo-models of the RMB benchmark: their scores on a prompt are the share of its
top-vs-mid battles each tier won (they add up to 1)."""
RMB_FOLDS = 5
"""Prompts are split in 5 folds by sha1 of the prompt; fold 0 is the held-out benchmark."""


@dataclass(frozen=True)
class RMBPair:
    """One judged pair: ``winner``'s answer beat ``loser``'s on ``conversation``."""

    id: str
    set: str
    category: str
    conversation: tuple[dict[str, str], ...]
    winner: str
    loser: str

    @property
    def prompt(self) -> str:
        """The last user turn."""
        return next(t["content"] for t in reversed(self.conversation) if t["role"] == "user")

    @property
    def task(self) -> str:
        """The top-level category (``Code`` of ``Code/Debugging``)."""
        return self.category.split("/", 1)[0]


def load_rmb_pairs(data_dir: str | Path) -> list[RMBPair]:
    """Every pair of ``<data_dir>/rmb/pairs.jsonl``; a malformed line raises ``ValueError`` naming it."""
    path = Path(data_dir) / "rmb" / "pairs.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no RMB pairs at {path} (see README: Data)")
    pairs = []
    for where, obj in iter_jsonl_objects(path):
        missing = [k for k in ("id", "category", "conversation", "winner", "loser") if k not in obj]
        if missing:
            raise ValueError(f"{where}: RMB pair lacks {missing}")
        conversation = tuple(obj["conversation"])
        if not any(t.get("role") == "user" for t in conversation):
            raise ValueError(f"{where}: RMB conversation has no user turn")
        pairs.append(
            RMBPair(
                str(obj["id"]),
                str(obj.get("set", "")),
                obj["category"],
                conversation,
                obj["winner"],
                obj["loser"],
            )
        )
    return pairs


def rmb_split(
    pairs: list[RMBPair], split: Literal["holdout", "train", "all"], fold: int = 0
) -> list[RMBPair]:
    """Fold ``fold`` of 5 by sha1 of the prompt (``holdout``, about 20% of prompts; fold 0 is the
    ``rmb`` benchmark, the others serve cross-fitting), the other folds (``train``) or ``all``."""
    if split == "all":
        return list(pairs)
    if split not in ("holdout", "train"):
        raise ValueError(f"RMB split must be 'holdout', 'train' or 'all', not {split!r}")
    want_holdout = split == "holdout"
    return [p for p in pairs if (crossfit_fold(p.prompt, RMB_FOLDS) == fold) == want_holdout]


def tier_outcome(pair: RMBPair) -> float | None:
    """1.0 when a top-tier model beat a mid-tier one, 0.0 for the reverse, None for other pairs."""
    if pair.winner in RMB_TOP_TIER and pair.loser in RMB_MID_TIER:
        return 1.0
    if pair.winner in RMB_MID_TIER and pair.loser in RMB_TOP_TIER:
        return 0.0
    return None


def rmb_tier_scores(pairs: list[RMBPair]) -> list[ScoredPrompt]:
    """One row per prompt with a top-vs-mid battle: each tier's share of those battles won.

    ``extra`` keeps the top-level ``category`` and ``battles`` (how many top-vs-mid battles the
    share is over). Prompts are in first-seen order.
    """
    won: dict[str, list[float]] = defaultdict(list)
    category: dict[str, str] = {}
    for pair in pairs:
        outcome = tier_outcome(pair)
        if outcome is None:
            continue
        won[pair.prompt].append(outcome)
        category.setdefault(pair.prompt, pair.task)
    rows = []
    for i, (prompt, outcomes) in enumerate(won.items()):
        share = sum(outcomes) / len(outcomes)
        rows.append(
            ScoredPrompt(
                f"rmb/{i}",
                prompt,
                {TOP_TIER: share, MID_TIER: 1.0 - share},
                "rmb",
                {"category": category[prompt], "battles": len(outcomes)},
            )
        )
    return rows


def rmb_tier_battles(pairs: list[RMBPair], strong: str, weak: str) -> list[dict[str, str]]:
    """The top-vs-mid battles of ``pairs`` as battle records for ``routellm train``, with the top
    tier named ``strong`` and the mid tier ``weak`` (the pair the trained router will compare).

    Each record is ``{"prompt", "model_a", "model_b", "winner"}``; the winner is always
    ``model_a``, as RMB has no ties. Pairs that are not top vs mid are left out.
    """
    battles = []
    for pair in pairs:
        outcome = tier_outcome(pair)
        if outcome is None:
            continue
        winner, loser = (strong, weak) if outcome == 1.0 else (weak, strong)
        battles.append(
            {"prompt": pair.prompt, "model_a": winner, "model_b": loser, "winner": "model_a"}
        )
    return battles


def load_rmb(
    data_dir: str | Path, split: Literal["holdout", "train", "all"] = "holdout", fold: int = 0
) -> list[ScoredPrompt]:
    """RMB as a benchmark: top tier vs mid tier per prompt, on the held-out fold by default."""
    return rmb_tier_scores(rmb_split(load_rmb_pairs(data_dir), split, fold))
