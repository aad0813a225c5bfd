"""Loading scored prompt sets (benchmarks and training sources) into one record type."""

from .scored import ScoredPrompt, load_scored_jsonl, write_scored_jsonl
from .sources import (
    GPT4,
    MIXTRAL,
    holdout_split,
    load_gsm8k,
    load_llmrouter,
    load_mmlu,
    load_mt_bench,
)

__all__ = [
    "GPT4",
    "MIXTRAL",
    "ScoredPrompt",
    "holdout_split",
    "load_gsm8k",
    "load_llmrouter",
    "load_mmlu",
    "load_mt_bench",
    "load_scored_jsonl",
    "write_scored_jsonl",
]
