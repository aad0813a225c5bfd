"""Pool router checkpoints, in the format of :mod:`routellm_base.checkpoints`: a folder with
``weights.safetensors``, ``config.json`` (family, the models, the embedder record, params,
training record, sha256 of the weights) and ``MODEL_CARD.md``. No pickle is ever loaded.

A bundled pool router is loaded by name; its config's sha256 is pinned in
:data:`routellm_base.checkpoints.BUNDLED_POOL_ROUTERS`, and the config pins the weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.numpy import load_file, save_file

from ..checkpoints import (
    BUNDLED_DIR,
    BUNDLED_POOL_ROUTERS,
    BUNDLED_ROUTERS,
    CARD_FILE,
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    checkpoint_embedder,
    load_router,
    read_config,
)
from ..embedders.base import Embedder
from ..errors import CheckpointError, UnknownRouterError
from ..hashing import sha256_file, verify_sha256
from .knn import KnnPoolRouter
from .mf import PoolMFRouter
from .routers import PoolRouter, ZeroShotPoolRouter

ZERO_SHOT_ROUTER = "zero_shot"
"""The name that loads the zero-shot start (:class:`ZeroShotPoolRouter`), for a pool with no data."""

POOL_FAMILIES = ("pool_knn", "pool_mf")


def save_pool_router(
    router: KnnPoolRouter | PoolMFRouter,
    out_dir: str | Path,
    *,
    model_card: str,
    training: dict[str, Any] | None = None,
) -> Path:
    """Write ``router`` as a checkpoint folder; returns its path. Raises
    :class:`CheckpointError` for a router without an embedder or of another family."""
    if router.family not in POOL_FAMILIES:
        raise CheckpointError(f"cannot save a {router.family} router; families: {POOL_FAMILIES}")
    if router.embedder is None:
        raise CheckpointError(f"router {router.name!r} has no embedder to record")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(router.tensors(), str(out / WEIGHTS_FILE))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "router": router.family,
        "models": list(router.models or ()),
        "embedder": router.embedder.identity,
        "params": router.params(),
        "training": training or {},
        "files": {WEIGHTS_FILE: sha256_file(out / WEIGHTS_FILE)},
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n")
    (out / CARD_FILE).write_text(model_card)
    return out


def load_pool_router(
    name_or_path: str | Path | PoolRouter, *, embedder: Embedder | str | None = None
) -> PoolRouter:
    """A pool router by bundled name (:data:`BUNDLED_POOL_ROUTERS`), ``"zero_shot"`` (the
    :class:`ZeroShotPoolRouter` over the default two-model router) or checkpoint folder.

    The weights' sha256 (and, for a bundled router, the config's) is verified first.
    ``embedder`` replaces the recorded one (it must be the same embedder). Raises
    :class:`UnknownRouterError` for an unknown name and :class:`CheckpointError` for a folder
    that is not a pool router checkpoint or fails its sha256 check.
    """
    if isinstance(name_or_path, PoolRouter):
        return name_or_path
    key = str(name_or_path)
    if key == ZERO_SHOT_ROUTER:
        if embedder is not None:
            raise CheckpointError("the zero-shot pool router uses the default router's embedder")
        return ZeroShotPoolRouter(load_router())
    if key in BUNDLED_POOL_ROUTERS:
        folder, config_sha = BUNDLED_POOL_ROUTERS[key]
        path = BUNDLED_DIR / folder
        if not (path / CONFIG_FILE).is_file():
            raise CheckpointError(f"bundled pool router {key!r} is missing: {path} has no config")
        verify_sha256(path / CONFIG_FILE, config_sha, f"bundled pool router {key!r} config")
        name = key
    else:
        path = Path(key).expanduser()
        if not path.is_dir() and key in BUNDLED_ROUTERS:
            raise UnknownRouterError(
                f"{key!r} is a bundled two-model router (strong/weak win rates), not a pool "
                f"router: a pool takes {sorted([*BUNDLED_POOL_ROUTERS, ZERO_SHOT_ROUTER])}, a "
                "folder written by `routellm train pool`, or ZeroShotPoolRouter(difficulty="
                f"load_router({key!r})) to use it as each prompt's difficulty"
            )
        if not path.is_dir():
            raise UnknownRouterError(
                f"unknown pool router {key!r}: not a bundled pool router "
                f"({sorted([*BUNDLED_POOL_ROUTERS, ZERO_SHOT_ROUTER])}) and not a checkpoint folder"
            )
        name = str(path)
    config = read_config(path)
    family = config.get("router")
    if family not in POOL_FAMILIES:
        raise CheckpointError(
            f"{path} holds a {family!r} router, not a pool router ({', '.join(POOL_FAMILIES)}); "
            "two-model routers load with routellm_base.load_router"
        )
    files = config.get("files") or {}
    if WEIGHTS_FILE not in files:
        raise CheckpointError(f"{path}/{CONFIG_FILE} records no sha256 for {WEIGHTS_FILE}")
    verify_sha256(path / WEIGHTS_FILE, files[WEIGHTS_FILE], f"pool router {name!r} weights")
    tensors = load_file(str(path / WEIGHTS_FILE))
    embedder_obj = checkpoint_embedder(config, embedder, name)
    metadata = {
        "path": str(path),
        "training": config.get("training", {}),
        "checkpoint_id": files[WEIGHTS_FILE],
    }
    models = list(config["models"])
    params = config.get("params") or {}
    try:
        if family == "pool_knn":
            return KnnPoolRouter(
                name,
                tensors["embeddings"],
                tensors["scores"],
                models,
                k=int(params.get("k", 20)),
                weighted=bool(params.get("weighted", False)),
                embedder=embedder_obj,
                metadata=metadata,
            )
        return PoolMFRouter(name, tensors, models, embedder=embedder_obj, metadata=metadata)
    except KeyError as exc:
        raise CheckpointError(f"{path}: {family} checkpoint lacks tensor {exc}") from None
