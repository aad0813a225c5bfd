"""The routing log an integration's ``log=`` field names, opened on first use.

Kept outside :mod:`routellm_base.log` so that integrations without a log never import
SQLAlchemy.
"""

from __future__ import annotations

import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .log import RoutingLog


class LazyLog:
    """Opens (:func:`routellm_base.log.open_log`) and keeps the log a field names; thread-safe.

    A model's copies that share this object share the log, and a copy whose field names
    another log gets that one; a path or URL is opened once per process anyway, so copies
    that do not share this object still write through one queue.
    """

    def __init__(self) -> None:
        self._opened: tuple[Any, RoutingLog] | None = None
        self._lock = threading.Lock()

    def get(self, target: Any, prices: Any = None) -> RoutingLog | None:
        """The log for ``target`` (a path, URL or ``RoutingLog``); ``None`` for ``None``.
        ``prices`` (the model's ``prices=``) are added to the log when it is opened here
        (:meth:`~routellm_base.log.RoutingLog.add_prices`), so that its report prices the calls.
        Raises as :class:`~routellm_base.log.RoutingLog` does for a bad target."""
        if target is None:
            return None
        opened = self._opened
        if opened is None or opened[0] is not target:
            from .log import open_log

            with self._lock:
                opened = self._opened
                if opened is None or opened[0] is not target:
                    log = open_log(target)
                    if prices:
                        log.add_prices(prices)
                    opened = self._opened = (target, log)
        return opened[1]


_OUR_PACKAGES = frozenset(
    {"routellm_base", "langchain_routellm", "llamaindex_routellm", "pydantic", "pydantic_core",
     "langchain_core", "llama_index"}
)  # fmt: skip
"""Packages whose frames a construction-time warning skips, to point at the caller's line."""


def warn_if_sides_share_a_name(strong: str, weak: str) -> None:
    """Warn (:class:`UserWarning`, at the caller's line) when a logged model's strong and weak
    sides report one model name (two stand-ins of one class; two ``ChatOpenAI(model="default",
    base_url=...)`` on two local servers): the log would record that name on both sides, so
    that its battles would set the model against itself. ``strong_model_name`` /
    ``weak_model_name`` fix it."""
    if strong != weak:
        return
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and (
        str(frame.f_globals.get("__name__", "")).split(".")[0] in _OUR_PACKAGES
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        f"strong= and weak= both report the model name {strong!r}: the routing log would record "
        "one name for both sides, so its calls cannot be told apart by model (cost reports price "
        "both alike; routellm train --data log:PATH names such calls' sides "
        f"'{strong} (strong)' and '{strong} (weak)', to be renamed with --model-map). Give "
        "strong_model_name= and weak_model_name= (e.g. the models' real names) to record them "
        "apart",
        UserWarning,
        stacklevel=level,
    )
