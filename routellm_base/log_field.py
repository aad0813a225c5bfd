"""The routing log an integration's ``log=`` field names, opened on first use.

Kept outside :mod:`routellm_base.log` so that integrations without a log never import
SQLAlchemy.
"""

from __future__ import annotations

import threading
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
