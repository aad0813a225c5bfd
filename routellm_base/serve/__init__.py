"""``routellm serve``: an OpenAI-compatible routing server on the engine (``serve`` extra).

::

    from routellm_base.serve import ServeConfig, UpstreamConfig, create_app, run

    config = ServeConfig(strong=UpstreamConfig("https://api.openai.com/v1", "gpt-4o", "OPENAI_API_KEY"),
                         weak=UpstreamConfig("http://127.0.0.1:8000/v1", "llama-3.1-8b"),
                         strong_share=0.3)
    run(config)                 # blocks, like `routellm serve`
    app = create_app(config)    # or mount the ASGI app in your own server
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import (
    PoolConfig,
    PoolModelConfig,
    ServeConfig,
    ServeConfigError,
    UpstreamConfig,
    config_from_args,
    read_config_file,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = [
    "PoolConfig",
    "PoolModelConfig",
    "ServeConfig",
    "ServeConfigError",
    "UpstreamConfig",
    "config_from_args",
    "create_app",
    "read_config_file",
    "run",
]


def _require_extra() -> None:
    try:
        import aiohttp  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        from ..errors import MissingDependencyError

        raise MissingDependencyError(
            f"routellm serve needs the 'serve' extra: pip install 'langchain-routellm[serve]' ({exc})"
        ) from exc


def create_app(config: ServeConfig) -> Starlette:
    """The ASGI app for ``config``; see :mod:`routellm_base.serve.app`."""
    _require_extra()
    from .app import create_app as create

    return create(config)


def run(config: ServeConfig) -> None:
    """Serve ``config`` with uvicorn until interrupted: one process, or ``config.workers``
    processes sharing the listening socket (each loads its own router; they share nothing else)."""
    _require_extra()
    import copy
    import dataclasses
    import os

    import uvicorn
    import uvicorn.config

    from .config import CONFIG_ENV

    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["routellm.serve"] = {
        "handlers": ["default"],
        "level": config.log_level.upper(),
        "propagate": False,
    }
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": config.log_level,
        "log_config": log_config,
        "access_log": False,  # our own request log leaves out prompts and adds the routing
        "timeout_graceful_shutdown": 10,
    }
    # Check the settings and environment in this process first, so a mistake stops start-up once.
    config.client_keys()
    if config.pair:
        for side in ("strong", "weak"):
            getattr(config, side).api_key(side)
    for model in config.pool.models if config.pool is not None else ():
        model.upstream().api_key(f"pool model {model.name!r}")
    if config.log:  # a file that is no database: stop here, not drop every record later
        from ..log.store import open_log_store

        open_log_store(config.log, "serve --log", existing=False).dispose()
    if config.workers == 1:
        uvicorn.run(create_app(config), **options)
        return
    # Load the routers (and the pool's) here too: a mistake raised in each worker would be
    # reported once per worker, from inside uvicorn, without the file it came from.
    create_app(dataclasses.replace(config, log=None, log_store_prompts=False))
    os.environ[CONFIG_ENV] = config.to_json()
    uvicorn.run(
        "routellm_base.serve.app:app_from_environment",
        factory=True,
        workers=config.workers,
        **options,
    )
