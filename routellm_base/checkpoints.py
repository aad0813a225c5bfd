"""Router checkpoints: safetensors weights, a JSON config and a model card, sha256-verified.

A checkpoint is a folder::

    config.json       router family, models, embedder record, calibration, sha256 of weights
    weights.safetensors
    MODEL_CARD.md     training data and licences, metrics, how to reproduce

No pickle is ever loaded. Bundled checkpoints are loaded by name; their config's sha256 is pinned
in this module, so a modified config is caught as well as modified weights.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from safetensors.numpy import load_file, save_file

from .calibration import Calibration
from .embedders import load_embedder
from .embedders.base import Embedder
from .errors import CheckpointError, UnknownRouterError
from .hashing import sha256_file, verify_sha256
from .policy import RoutingPolicy, missing_calibration_error
from .routers.base import Router
from .routers.bert import BertRouter  # torch-free at import: torch loads when a router is built
from .routers.causal_llm import CausalLLMRouter  # torch-free at import, as bert
from .routers.gated import GatedRouter  # scikit-learn loads when a router is built
from .routers.mf import MFRouter
from .routers.random import RandomRouter
from .routers.sw_ranking import SWRankingRouter
from .routers.task_experts import TaskExpertsRouter

FORMAT = "routellm-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
CARD_FILE = "MODEL_CARD.md"
BUNDLED_DIR = Path(__file__).resolve().parent / "checkpoints"

# name -> (folder under checkpoints/, sha256 of its config.json). The config in turn pins the
# sha256 of the weights.
DEFAULT_ROUTER = "task_experts"
"""The router used when none is named: the bundled commercial-use router that measures best
(docs/results.md: above ``mf`` on MT Bench, RMB's held-out chat, MMLU and GSM8K)."""

BUNDLED_ROUTERS: dict[str, tuple[str, str]] = {
    "mf": ("mf-minilm-static", "6edd2b7182dd71440ab291381950f4705a0da6b9fb44db42a96a90789e0e3ce9"),
    "task_experts": (
        "task-experts-minilm-static",
        "6325b23f4a4340fcc7b5b0030a70d8a2c4bfb7b60a9cc30664f0e8a44be1f041",
    ),
}

BUNDLED_POOL_ROUTERS: dict[str, tuple[str, str]] = {
    # LLMRouter train (MIT) + Arena-Hard battles (Apache-2.0); recipe: train/pool_bundled.py
    "pool_knn": (
        "pool-knn-minilm-static",
        "f285a3b32d97e886e85d25483927fd76ea4304755ce8f6246a29221b73f4c3c9",
    ),
}
"""Pool routers (many priced models, :mod:`routellm_base.pool`) by name -> (folder, sha256 of
its config.json); loaded with :func:`routellm_base.pool.load_pool_router`."""


class _CheckpointRouter(Protocol):
    """What a router family's class takes when built from a checkpoint folder."""

    def __call__(
        self,
        name: str,
        tensors: dict[str, np.ndarray],
        models: list[str],
        strong_model: str,
        weak_model: str,
        **kwargs: Any,
    ) -> Router: ...


_ROUTER_CLASSES: dict[str, _CheckpointRouter] = {
    "mf": MFRouter,
    "sw_ranking": SWRankingRouter,
    "bert": BertRouter,
    "causal_llm": CausalLLMRouter,
    "task_experts": TaskExpertsRouter,
    "gated": GatedRouter,
}


def save_checkpoint(
    out_dir: str | Path,
    *,
    router_family: str,
    tensors: dict[str, np.ndarray],
    models: list[str],
    strong_model: str,
    weak_model: str,
    embedder: Embedder | None,
    calibration: Calibration | None,
    model_card: str,
    params: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    pinned_files: list[str] | None = None,
) -> Path:
    """Write a checkpoint folder and return its path.

    ``embedder`` is None for a family that tokenises its own input (``bert``). ``pinned_files``
    are further files already in the folder (paths relative to it, e.g. a ``gated`` router's
    experts' ``config.json``) whose sha256 the config records; loading verifies them all.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(out / WEIGHTS_FILE))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "router": router_family,
        "models": models,
        "strong_model": strong_model,
        "weak_model": weak_model,
        "embedder": embedder.identity if embedder is not None else None,
        "calibration": calibration.to_dict() if calibration else None,
        "params": params or {},
        "training": training or {},
        "files": {
            WEIGHTS_FILE: sha256_file(out / WEIGHTS_FILE),
            **{name: sha256_file(out / name) for name in pinned_files or []},
        },
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n")
    (out / CARD_FILE).write_text(model_card)
    return out


def load_router(
    name_or_path: str | Path | Router = DEFAULT_ROUTER,
    *,
    embedder: Embedder | str | None = None,
    seed: int | None = None,
    strong_model: str | None = None,
    weak_model: str | None = None,
) -> Router:
    """A router by bundled name (``task_experts``, the default; ``mf``; ``random``) or by checkpoint folder.

    ``embedder`` replaces the embedder the checkpoint records (e.g. a local path to the same
    model); it must be the same embedder, or :class:`EmbedderMismatchError` is raised.
    ``seed`` seeds the ``random`` router. ``strong_model``/``weak_model`` make an MF or SW
    checkpoint compare another pair of the models it was trained on (its stored calibration then
    no longer applies: give a threshold or calibrate).
    """
    router = _load(name_or_path, embedder=embedder, seed=seed)
    if strong_model is None and weak_model is None:
        return router
    for_pair = getattr(router, "for_pair", None)
    if for_pair is None:
        raise UnknownRouterError(
            f"router {router.name!r} ({router.family}) cannot compare another model pair"
        )
    return for_pair(strong_model or router.strong_model, weak_model or router.weak_model)


def _load(
    name_or_path: str | Path | Router, *, embedder: Embedder | str | None, seed: int | None
) -> Router:
    if isinstance(name_or_path, Router):
        return name_or_path
    key = str(name_or_path)
    if key == "random":
        return RandomRouter(seed=seed)
    if key in BUNDLED_ROUTERS:
        folder, config_sha = BUNDLED_ROUTERS[key]
        path = BUNDLED_DIR / folder
        if not (path / CONFIG_FILE).is_file():
            raise CheckpointError(
                f"bundled router {key!r} is missing: {path / CONFIG_FILE} does not exist"
            )
        verify_sha256(path / CONFIG_FILE, config_sha, f"bundled router {key!r} config")
        return _load_folder(path, name=key, embedder=embedder)
    check_router_spec(key)
    path = Path(key).expanduser()
    return _load_folder(path, name=str(path), embedder=embedder)


def check_router_spec(name_or_path: str | Path | Router) -> None:
    """Raise :class:`UnknownRouterError` unless this names a router :func:`load_router` can load.

    Cheap (nothing is loaded): integrations call it at construction so that a typo fails there
    rather than at the first call.
    """
    if isinstance(name_or_path, Router):
        return
    key = str(name_or_path)
    if key in BUNDLED_POOL_ROUTERS or key == "zero_shot":
        raise pool_router_error(key)
    if Path(key).expanduser().is_dir():
        family = _pool_family(Path(key).expanduser())
        if family is not None:
            raise pool_router_error(key, family)
        return
    if key in BUNDLED_ROUTERS or key == "random":
        return
    raise UnknownRouterError(
        f"unknown router {key!r}: not a bundled router ({sorted([*BUNDLED_ROUTERS, 'random'])}) "
        "and not a checkpoint folder"
    )


def _pool_family(path: Path) -> str | None:
    """The pool router family (``pool_knn``, ``pool_mf``) a checkpoint folder records, else
    ``None`` (a two-model checkpoint, or a folder whose config the loader will report on)."""
    from .pool.checkpoints import POOL_FAMILIES

    try:
        family = json.loads((path / CONFIG_FILE).read_text()).get("router")
    except (OSError, ValueError, AttributeError):
        return None
    return family if family in POOL_FAMILIES else None


def pool_router_error(key: str, family: str | None = None) -> UnknownRouterError:
    """The one error for a pool router given where a strong/weak router is taken: what it is,
    and where it is taken instead."""
    what = f"{key!r} (a {family} checkpoint)" if family else repr(key)
    return UnknownRouterError(
        f"{what} is a pool router: it routes a pool of several priced models, not a strong/weak "
        "pair. In RouterChatModel / RouterLLM give models= (the pool's models) and prices= "
        f"instead of strong=/weak=, with router={key!r}; on the command line, `routellm eval "
        f"--pool --router {shlex.quote(key)}` scores it and `routellm serve` routes with it from a [pool] "
        "section of its --config; `routellm route` routes a strong/weak pair only"
    )


def check_policy_resolves(name_or_path: str | Path | Router, policy: RoutingPolicy) -> None:
    """Raise :class:`InvalidPolicyError` when ``policy`` cannot become a threshold for this
    router: a ``strong_share`` for a router with no stored calibration. Integrations call it at
    construction, so the error comes when the model is built rather than at the first call
    (where e.g. a LlamaIndex query engine would swallow it). Nothing is loaded: a checkpoint's
    ``config.json`` is read (:class:`CheckpointError` for a folder that is not a checkpoint).
    """
    if not policy.needs_calibration:
        return
    if isinstance(name_or_path, Router):
        policy.threshold_for(name_or_path)
        return
    key = str(name_or_path)
    if key == "random":
        return
    check_router_spec(key)
    bundled = key in BUNDLED_ROUTERS
    path = BUNDLED_DIR / BUNDLED_ROUTERS[key][0] if bundled else Path(key).expanduser()
    config = read_config(path)
    if not config.get("calibration"):
        raise missing_calibration_error(
            key if bundled else str(path),
            config.get("strong_model"),
            config.get("weak_model"),
            policy.share_window,
        )


def stored_calibration(name_or_path: str | Path) -> tuple[str | None, Calibration | None]:
    """A router's checkpoint id (sha256 of its weights) and stored calibration, read from its
    ``config.json`` without loading weights or embedder. ``random`` gives ``(None, uniform)``.

    Raises :class:`UnknownRouterError` for a name that is neither bundled nor a folder and
    :class:`CheckpointError` for a folder that is not a checkpoint.
    """
    key = str(name_or_path)
    if key == "random":
        return None, RandomRouter().calibration
    check_router_spec(key)
    path = (
        BUNDLED_DIR / BUNDLED_ROUTERS[key][0] if key in BUNDLED_ROUTERS else Path(key).expanduser()
    )
    config = read_config(path)
    checkpoint_id = (config.get("files") or {}).get(WEIGHTS_FILE)
    calibration = config.get("calibration")
    return (
        str(checkpoint_id) if checkpoint_id else None,
        Calibration.from_dict(calibration) if calibration else None,
    )


def checkpoint_embedder(
    config: dict[str, Any], embedder: Embedder | str | None, name: str
) -> Embedder:
    """The embedder a checkpoint's ``config`` records, or ``embedder`` in its place (an
    :class:`Embedder` or a name), checked to be the recorded one
    (:class:`EmbedderMismatchError` otherwise: the weights mean nothing on other embeddings)."""
    recorded = config.get("embedder") or {}
    if embedder is None:
        resolved = load_embedder(recorded)
    else:
        resolved = load_embedder(embedder) if isinstance(embedder, str) else embedder
    resolved.check_matches(recorded, name)
    return resolved


def read_config(path: Path) -> dict[str, Any]:
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{path} is not a router checkpoint: it has no {CONFIG_FILE}")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{config_path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{config_path} is not a {FORMAT} config")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path} has format_version {config.get('format_version')}, this library reads {FORMAT_VERSION}"
        )
    return config


def _load_folder(path: Path, *, name: str, embedder: Embedder | str | None) -> Router:
    config = read_config(path)
    family = config.get("router")
    from .pool.checkpoints import POOL_FAMILIES

    if family in POOL_FAMILIES:  # check_router_spec says so first for a folder
        raise pool_router_error(name, family)
    if family not in _ROUTER_CLASSES:
        raise CheckpointError(
            f"{path}: unknown router family {family!r}; known: {sorted(_ROUTER_CLASSES)}"
        )
    files = config.get("files") or {}
    if WEIGHTS_FILE not in files:
        raise CheckpointError(f"{path}/{CONFIG_FILE} records no sha256 for {WEIGHTS_FILE}")
    for relative, sha in files.items():  # the weights and any further pinned file
        pinned = path / relative
        if not pinned.is_file():
            raise CheckpointError(f"{path} lacks {relative}, which its {CONFIG_FILE} pins")
        verify_sha256(pinned, sha, f"router checkpoint {name!r} file {relative}")
    tensors = load_file(str(path / WEIGHTS_FILE))
    cls = _ROUTER_CLASSES[family]
    embedder_obj: Embedder | None = None
    if getattr(cls, "uses_embedder", True):
        embedder_obj = checkpoint_embedder(config, embedder, name)
    elif embedder is not None:
        raise CheckpointError(
            f"router checkpoint {name!r} ({family}) tokenises its own input; it takes no embedder"
        )
    calibration = (
        Calibration.from_dict(config["calibration"]) if config.get("calibration") else None
    )
    return cls(
        name,
        tensors,
        list(config["models"]),
        config["strong_model"],
        config["weak_model"],
        embedder=embedder_obj,
        calibration=calibration,
        metadata={
            "path": str(path),
            "training": config.get("training", {}),
            "checkpoint_id": files[WEIGHTS_FILE],
        },
        **config.get("params", {}),
    )
