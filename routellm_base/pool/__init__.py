"""Routing among a pool of several priced models (RouterBench, Hu et al. 2024).

A router predicts each candidate's quality for the prompt, q_m(x) in [0, 1]; the pool's prices
give each candidate's expected cost c_m(x) (USD per call); a :class:`PoolPolicy` chooses, e.g.
the argmax of q - lambda * c. Two models keyed strong/weak stay the win-rate path of
:class:`routellm_base.RoutingEngine`; this package is the many-model one.
"""

from .engine import PoolEngine, prompt_tokens
from .models import DEFAULT_OUTPUT_TOKENS, Pool, PoolModel
from .policy import BudgetWindow, PoolChoice, PoolPolicy
from .routers import PoolRouter, ZeroShotPoolRouter

__all__ = [
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
