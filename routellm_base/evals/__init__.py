"""The evaluation harness: routers scored on MT Bench, MMLU, GSM8K or any scored JSONL file."""

from .benchmarks import NAMED_BENCHMARKS, Benchmark, load_benchmark
from .curves import (
    CPT_TARGETS,
    QualityCurve,
    oracle_curve,
    quality_curve,
    random_band,
    random_baseline,
)
from .harness import (
    EvalResult,
    common_items,
    curves_figure,
    evaluate,
    items_not_trained_on,
    plot_curves,
    reference_rows,
)

__all__ = [
    "CPT_TARGETS",
    "NAMED_BENCHMARKS",
    "Benchmark",
    "EvalResult",
    "QualityCurve",
    "common_items",
    "curves_figure",
    "evaluate",
    "items_not_trained_on",
    "load_benchmark",
    "oracle_curve",
    "plot_curves",
    "quality_curve",
    "random_band",
    "random_baseline",
    "reference_rows",
]
