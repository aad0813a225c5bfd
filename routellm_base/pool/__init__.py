"""Routing among a pool of several priced models (RouterBench, Hu et al. 2024).

A router predicts each candidate's quality for the prompt, q_m(x) in [0, 1]; the pool's prices
give each candidate's expected cost c_m(x) (USD per call); a :class:`PoolPolicy` chooses, e.g.
the argmax of q - lambda * c. Two models keyed strong/weak stay the win-rate path of
:class:`routellm_base.RoutingEngine`; this package is the many-model one.
"""

from .adding import MIN_PROBE_PROMPTS, add_model
from .checkpoints import load_pool_router, save_pool_router
from .data import PoolData, load_pool_source, load_pool_sources
from .engine import PoolEngine, prompt_tokens
from .evaluation import PoolReport, evaluate_pool
from .knn import KnnPoolRouter
from .mf import BlendPoolRouter, PoolMFRouter
from .models import DEFAULT_OUTPUT_TOKENS, Pool, PoolModel
from .policy import BudgetWindow, PoolChoice, PoolPolicy
from .routers import PoolRouter, ZeroShotPoolRouter

__all__ = [
    "MIN_PROBE_PROMPTS",
    "BlendPoolRouter",
    "KnnPoolRouter",
    "PoolData",
    "PoolMFRouter",
    "PoolReport",
    "add_model",
    "evaluate_pool",
    "load_pool_router",
    "load_pool_source",
    "load_pool_sources",
    "save_pool_router",
    "DEFAULT_OUTPUT_TOKENS",
    "BudgetWindow",
    "Pool",
    "PoolChoice",
    "PoolEngine",
    "PoolModel",
    "PoolPolicy",
    "PoolRouter",
    "ZeroShotPoolRouter",
    "prompt_tokens",
]
