"""Exceptions raised by the routing engine.

Every error names what was wrong so that bad input never surfaces as a crash deep inside numpy.
"""

from __future__ import annotations


class RouteLLMError(Exception):
    """Base class of every error raised by ``routellm_base``."""


class InvalidPolicyError(RouteLLMError, ValueError):
    """A threshold or strong-call share is missing, doubled or out of range."""


class UnknownRouterError(RouteLLMError, ValueError):
    """A router name is neither bundled nor a checkpoint directory."""


class CheckpointError(RouteLLMError):
    """A checkpoint is malformed, incomplete or fails its sha256 check."""


class EmbedderMismatchError(RouteLLMError, ValueError):
    """A checkpoint is loaded with an embedder other than the one it was trained with."""


class RoutingInputError(RouteLLMError, ValueError):
    """A conversation gives the router nothing to route on (empty, no user turn, no text)."""


class MissingDependencyError(RouteLLMError, ImportError):
    """An optional component was asked for without its extra installed."""


class PoolError(RouteLLMError, ValueError):
    """A pool of candidate models is malformed (duplicate or unknown names, a missing price) or
    cannot be routed (a router that has never seen one of its models, no candidate left)."""
