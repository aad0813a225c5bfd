"""routellm_base: the routing engine shared by the LangChain and LlamaIndex integrations.

Route with the bundled default (no torch, no API key)::

    import routellm_base
    router = routellm_base.load_router()  # the bundled default, task_experts
    router.strong_win_rate(["What is 2+2?"])           # numpy array in [0, 1]
    engine = routellm_base.RoutingEngine(router, strong_share=0.3)
    engine.decide("Prove that sqrt(2) is irrational")  # RoutingDecision
"""

from .calibration import Calibration
from .checkpoints import DEFAULT_ROUTER, load_router, save_checkpoint
from .decision import RoutingDecision, Side
from .engine import RoutingEngine
from .errors import (
    CheckpointError,
    EmbedderMismatchError,
    InvalidPolicyError,
    MissingDependencyError,
    RouteLLMError,
    RoutingInputError,
    UnknownRouterError,
)
from .policy import (
    DEFAULT_NO_KNOWN_TOKENS_SIDE,
    DEFAULT_STRONG_SHARE,
    RoutingPolicy,
    calibrate_threshold,
)
from .routers import MFRouter, RandomRouter, Router, SWRankingRouter
from .routing_text import (
    ChatTurn,
    RoutingText,
    RoutingTextFn,
    RoutingTextOptions,
    TemplateField,
    routing_text,
)

__version__ = "0.1.0"
"""The distribution's one version string (pyproject.toml reads it from here)."""

__all__ = [
    "DEFAULT_ROUTER",
    "Calibration",
    "ChatTurn",
    "CheckpointError",
    "DEFAULT_NO_KNOWN_TOKENS_SIDE",
    "DEFAULT_STRONG_SHARE",
    "EmbedderMismatchError",
    "InvalidPolicyError",
    "MFRouter",
    "MissingDependencyError",
    "RandomRouter",
    "RouteLLMError",
    "Router",
    "RoutingDecision",
    "RoutingEngine",
    "RoutingInputError",
    "RoutingPolicy",
    "RoutingText",
    "RoutingTextFn",
    "RoutingTextOptions",
    "SWRankingRouter",
    "Side",
    "TemplateField",
    "UnknownRouterError",
    "calibrate_threshold",
    "load_router",
    "routing_text",
    "save_checkpoint",
]
