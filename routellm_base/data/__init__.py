"""Loading scored prompt sets (benchmarks and training sources) into one record type."""

from .location import DATA_DIR_ENV, data_dir_from_env
from .rmb import (
    MID_TIER,
    RMB_MID_TIER,
    RMB_TOP_TIER,
    TOP_TIER,
    RMBPair,
    load_rmb,
    load_rmb_pairs,
    rmb_split,
    rmb_tier_battles,
    rmb_tier_scores,
    tier_outcome,
)
from .scored import ScoredPrompt, load_scored_jsonl, write_scored_jsonl
from .sources import (
    GPT4,
    MIXTRAL,
    crossfit_fold,
    holdout_split,
    load_gsm8k,
    load_llmrouter,
    load_mmlu,
    load_mt_bench,
    prompt_bucket,
)

__all__ = [
    "DATA_DIR_ENV",
    "data_dir_from_env",
    "MID_TIER",
    "RMB_MID_TIER",
    "RMB_TOP_TIER",
    "TOP_TIER",
    "RMBPair",
    "load_rmb",
    "load_rmb_pairs",
    "rmb_split",
    "rmb_tier_battles",
    "rmb_tier_scores",
    "tier_outcome",
    "GPT4",
    "MIXTRAL",
    "ScoredPrompt",
    "crossfit_fold",
    "holdout_split",
    "prompt_bucket",
    "load_gsm8k",
    "load_llmrouter",
    "load_mmlu",
    "load_mt_bench",
    "load_scored_jsonl",
    "write_scored_jsonl",
]
