"""Settings of ``routellm serve``: from a small TOML/JSON file, command-line flags, or both.

A file looks like::

    router = "task_experts"
    strong_share = 0.3
    api_key_env = "ROUTELLM_SERVER_KEYS"   # optional: bearer keys clients must send
    cors_origins = ["https://chat.example.com"]   # optional: browser apps allowed to call

    [strong]
    base_url = "https://api.openai.com/v1"
    model = "gpt-4o"
    api_key_env = "OPENAI_API_KEY"          # the upstream's key is read from this variable

    [weak]
    base_url = "http://127.0.0.1:8000/v1"
    model = "llama-3.1-8b-instruct"

A pool of several priced models routes beside (or instead of) strong/weak, from the file
only::

    [pool]
    router = "zero_shot"        # the pool router: model 'router-zero_shot' (default zero_shot)
    cost_weight = 0.02          # or quality_tolerance = 0.05, or budget = 3.0 (USD / 1,000 calls)
    max_cost = 0.01             # optional: USD per call that no call may be expected to exceed

    [[pool.models]]
    name = "gpt-4o"             # what routellm_force, routellm_models, logs and headers call it
    base_url = "https://api.openai.com/v1"
    model = "gpt-4o"            # the upstream's model name
    api_key_env = "OPENAI_API_KEY"
    input_price = 2.5           # USD per million input tokens
    output_price = 10.0         # USD per million output tokens
    output_tokens = 256         # optional: expected answer length (tokens)

    [[pool.models]]
    name = "llama-8b"
    ...

Secrets never sit in the file or on the command line: only the names of the environment
variables that hold them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..checkpoints import DEFAULT_ROUTER
from ..decision import SIDES, Side
from ..errors import RouteLLMError
from ..policy import RoutingPolicy

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
CONFIG_ENV = "ROUTELLM_SERVE_CONFIG"
"""Environment variable that carries the settings (JSON) to ``--workers`` processes."""


class ServeConfigError(RouteLLMError, ValueError):
    """A ``routellm serve`` setting is missing, unknown or out of range."""


@contextmanager
def _about(*keys: str) -> Iterator[None]:
    """Tag a bad-value error raised inside with the settings it is about (``serve_keys``), so
    :meth:`ServeConfig.from_mapping` can name where they came from (a file or a flag)."""
    try:
        yield
    except ValueError as exc:
        if not getattr(exc, "serve_keys", None):
            exc.serve_keys = keys  # type: ignore[attr-defined]
        raise


@dataclass(frozen=True)
class UpstreamConfig:
    """One side's OpenAI-compatible endpoint.

    ``base_url`` is the API root (``.../v1``); requests go to ``{base_url}/chat/completions``
    with ``model`` set to this side's model name. ``api_key_env`` names the environment variable
    holding the upstream's API key (sent as ``Authorization: Bearer``); ``None`` sends none.
    """

    base_url: str
    model: str
    api_key_env: str | None = None

    def check(self, side: Side) -> None:
        if not isinstance(self.base_url, str) or not self.base_url.startswith(
            ("http://", "https://")
        ):
            with _about(f"{side}.base_url"):
                raise ServeConfigError(
                    f"{side} base_url must be an http:// or https:// URL, got {self.base_url!r}"
                )
        if not isinstance(self.model, str) or not self.model:
            with _about(f"{side}.model"):
                raise ServeConfigError(
                    f"{side} model must be a non-empty string, got {self.model!r}"
                )
        if self.api_key_env is not None and (
            not isinstance(self.api_key_env, str) or not self.api_key_env
        ):
            with _about(f"{side}.api_key_env"):
                raise ServeConfigError(
                    f"{side} api_key_env must name an environment variable, "
                    f"got {self.api_key_env!r}"
                )

    def api_key(self, side: str) -> str | None:
        """The key from ``api_key_env``; :class:`ServeConfigError` when that variable is unset or empty."""
        return _read_env(self.api_key_env, f"{side} api_key_env")


POOL_MODEL_FIELDS = (
    "name", "base_url", "model", "api_key_env", "input_price", "output_price", "output_tokens",
)  # fmt: skip
POOL_POLICY_FIELDS = ("cost_weight", "quality_tolerance", "budget", "budget_window", "max_cost")
ZERO_SHOT_POOL_ROUTER = "zero_shot"
PAIR_POLICY_FIELDS = ("threshold", "strong_share", "share_window")
"""Settings of the strong/weak pair's policy only: refused when a pool routes alone."""


@dataclass(frozen=True)
class PoolModelConfig:
    """One model of a pool: its ``name`` (what requests, headers and the routing log call it),
    its OpenAI-compatible endpoint (``base_url``, the upstream's ``model`` name, the
    ``api_key_env`` holding its key) and its prices, USD per million input and output tokens;
    ``output_tokens``: its expected answer length (default
    :data:`routellm_base.pool.DEFAULT_OUTPUT_TOKENS`)."""

    name: str
    base_url: str
    model: str
    input_price: float
    output_price: float
    api_key_env: str | None = None
    output_tokens: float | None = None

    def upstream(self) -> UpstreamConfig:
        return UpstreamConfig(self.base_url, self.model, self.api_key_env)

    def check(self, where: str) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 200:
            raise ServeConfigError(f"{where}: name must be 1-200 characters, got {self.name!r}")
        if self.name != self.name.strip() or not self.name.isprintable():
            raise ServeConfigError(
                f"{where}: name {self.name!r} must be printable with no leading or trailing space"
            )
        try:
            self.upstream().check(where)  # type: ignore[arg-type]
        except ServeConfigError as exc:
            raise ServeConfigError(str(exc).replace(f"{where} ", f"{where}: ", 1)) from None
        for field_name in ("input_price", "output_price", "output_tokens"):
            value = getattr(self, field_name)
            if value is None and field_name == "output_tokens":
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value >= 0)
            ):
                unit = "tokens" if field_name == "output_tokens" else "USD per million tokens"
                raise ServeConfigError(
                    f"{where}: {field_name} must be a number >= 0 ({unit}), got {value!r}"
                )


@dataclass(frozen=True)
class PoolConfig:
    """A pool of several priced models and its policy (see :class:`routellm_base.pool.PoolPolicy`:
    at most one of ``cost_weight`` (lambda, quality per USD per 1,000 calls),
    ``quality_tolerance`` and ``budget`` (USD per 1,000 calls, held over ``budget_window``
    calls); ``max_cost`` in USD per call). ``router`` names the pool router: ``zero_shot``
    (harder prompts to pricier models, the server's ``router`` judging difficulty), or a trained
    pool router where this version can load one.

    Validated on construction: :class:`ServeConfigError` naming a bad model
    (``pool.models[i]``) or ``pool.router``, :class:`~routellm_base.errors.InvalidPolicyError`
    for a bad policy."""

    models: tuple[PoolModelConfig, ...]
    router: str = ZERO_SHOT_POOL_ROUTER
    cost_weight: float | None = None
    quality_tolerance: float | None = None
    budget: float | None = None
    budget_window: int | None = None
    max_cost: float | None = None

    def __post_init__(self) -> None:
        models = self.models
        if (
            isinstance(models, (str, Mapping))
            or not isinstance(models, (list, tuple))
            or not models
        ):
            raise ServeConfigError(
                f"pool.models must list at least one PoolModelConfig, got {models!r}"
            )
        object.__setattr__(self, "models", tuple(models))
        seen: dict[str, int] = {}
        for i, model in enumerate(self.models):
            if not isinstance(model, PoolModelConfig):
                raise ServeConfigError(
                    f"pool.models[{i}] must be a PoolModelConfig, got {type(model).__name__}"
                )
            model.check(f"pool.models[{i}]")
            if model.name in seen:
                first = seen[model.name]
                raise ServeConfigError(
                    f"pool.models[{i}]: name {model.name!r} is already pool.models[{first}]'s: "
                    "each pool model needs its own name"
                )
            seen[model.name] = i
        if not isinstance(self.router, str) or not self.router:
            raise ServeConfigError(
                f"pool.router must name a pool router (e.g. 'zero_shot'), got {self.router!r}"
            )
        self.policy()  # validates the policy (InvalidPolicyError)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def prices(self) -> dict[str, tuple[float, float]]:
        """USD per million input and output tokens, by model name."""
        return {m.name: (float(m.input_price), float(m.output_price)) for m in self.models}

    def policy(self) -> Any:
        """The :class:`~routellm_base.pool.PoolPolicy` of these settings."""
        from ..errors import InvalidPolicyError
        from ..pool import PoolPolicy

        if self.budget_window is not None and self.budget is None:
            raise InvalidPolicyError(
                "budget_window is the window a budget is held over: give budget too "
                "(budget = USD per 1,000 calls, in [pool]) or drop budget_window"
            )
        given = {k: getattr(self, k) for k in POOL_POLICY_FIELDS if getattr(self, k) is not None}
        return PoolPolicy(**given)

    @classmethod
    def from_mapping(cls, data: Any, where: str) -> PoolConfig:
        if not isinstance(data, Mapping):
            raise ServeConfigError(f"{where}: pool must be a table with models ([pool])")
        known = {"models", "router", *POOL_POLICY_FIELDS}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ServeConfigError(
                f"unknown key(s) in {where} [pool]: {unknown}; known: {sorted(known)}"
            )
        models = data.get("models")
        if isinstance(models, Mapping) or not isinstance(models, (list, tuple)) or not models:
            raise ServeConfigError(
                f"{where}: pool.models must list at least one model ([[pool.models]] tables, "
                "each with name, base_url, model, input_price and output_price)"
            )
        parsed = []
        seen: dict[str, int] = {}
        for i, item in enumerate(models):
            label = f"{where}: pool.models[{i}]"
            if not isinstance(item, Mapping):
                raise ServeConfigError(f"{label} must be a table, got {item!r}")
            name = item.get("name")
            if isinstance(name, str):
                label += f" ({name!r})"
            bad = sorted(set(item) - set(POOL_MODEL_FIELDS))
            if bad:
                raise ServeConfigError(
                    f"unknown key(s) in {label}: {bad}; known: {sorted(POOL_MODEL_FIELDS)}"
                )
            missing = [k for k in ("name", "base_url", "model") if k not in item]
            if missing:
                raise ServeConfigError(f"{label} needs {missing}")
            prices = [k for k in ("input_price", "output_price") if k not in item]
            if prices:
                raise ServeConfigError(
                    f"{label} has no {' and no '.join(prices)}: give its prices in USD per "
                    "million tokens, e.g. input_price = 0.15 and output_price = 0.6"
                )
            model = PoolModelConfig(**item)
            model.check(label)
            if model.name in seen:
                raise ServeConfigError(
                    f"{label}: name {model.name!r} is already pool.models[{seen[model.name]}]'s: "
                    "each pool model needs its own name"
                )
            seen[model.name] = i
            parsed.append(model)
        router = data.get("router", ZERO_SHOT_POOL_ROUTER)
        if not isinstance(router, str) or not router:
            raise ServeConfigError(
                f"{where}: pool.router must name a pool router (e.g. 'zero_shot'), got {router!r}"
            )
        from ..errors import InvalidPolicyError

        try:
            return cls(
                models=tuple(parsed),
                router=router,
                **{k: data[k] for k in POOL_POLICY_FIELDS if k in data},
            )
        except InvalidPolicyError as exc:
            raise ServeConfigError(f"{where}: pool policy: {exc}") from None


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``routellm serve`` needs; validated on construction.

    Times are in seconds, sizes in bytes. ``threshold`` / ``strong_share`` is the policy of
    ``router-<router>`` (neither: the engine's default share); ``router-<router>-<threshold>``
    overrides it per request. They, and ``share_window``, need the pair: with a pool alone
    they are refused.
    """

    strong: UpstreamConfig | None = None
    weak: UpstreamConfig | None = None
    """The two models of ``router-<router>``; both or neither (then a ``pool`` is needed)."""
    router: str = DEFAULT_ROUTER
    """Bundled router name or checkpoint folder (in a pool, also the zero-shot pool router's
    judge of difficulty)."""
    threshold: float | None = None
    strong_share: float | None = None
    share_window: int | None = None
    """Hold the strong share of ``router-<router>`` on the traffic served (calls): the threshold
    is the ``1 - strong_share`` quantile of the last ``share_window`` win rates, per server
    process (see :class:`~routellm_base.share_window.ShareWindow`); ``None``: off."""
    host: str = "127.0.0.1"
    port: int = 6060
    workers: int = 1
    api_key_env: str | None = None
    """Environment variable holding the bearer keys clients must send (comma-separated); ``None``: no auth."""
    max_body_bytes: int = 10 * 1024 * 1024
    """Largest request body accepted; larger ones get 413."""
    timeout: float = 60.0
    """Upstream timeout: the longest wait for the next bytes of an answer, and for an upstream
    to read the request body sent to it."""
    connect_timeout: float = 5.0
    max_retries: int = 2
    """Retries per side of connection failures and 408/409/429/5xx answers, with backoff."""
    fallback: bool = True
    """Call the other side when the chosen one fails before its first chunk."""
    max_connections: int = 512
    """Pooled connections per side."""
    pool_timeout: float | None = None
    """Longest wait for a free pooled connection when all ``max_connections`` of a side are
    busy (the connect itself is bounded by ``connect_timeout`` on top); the request then fails
    on that side (503 when no side had one). ``None``: ``timeout``."""
    log_level: str = "info"
    log: str | None = None
    """Routing log (``routellm_base.log``): a SQLite path or a SQLAlchemy URL that every answered
    request is recorded to, off the request's path; ``None``: no log."""
    log_store_prompts: bool = False
    """Store the prompt text in the routing log (off: a salted hash only); needs ``log``."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed to call the server (CORS), e.g. ``"https://chat.example.com"``
    (``scheme://host[:port]``, as a browser sends it) or ``"*"`` for any; empty: CORS off."""
    pool: PoolConfig | None = None
    """A pool of several priced models, routed by model ``router-<pool.router>``; ``None``:
    strong/weak only."""

    @property
    def pair(self) -> bool:
        """Whether strong and weak upstreams are configured (``router-<router>`` is served)."""
        return self.strong is not None

    def __post_init__(self) -> None:
        if self.pool is not None and not isinstance(self.pool, PoolConfig):
            raise ServeConfigError(f"pool must be a PoolConfig, got {type(self.pool).__name__}")
        policy_given = [k for k in PAIR_POLICY_FIELDS if getattr(self, k) is not None]
        if self.pool is not None and self.strong is None and self.weak is None:
            pair_only = policy_given
            if pair_only:  # a pool alone: no router-<router> for them to set the policy of
                with _about(*pair_only):
                    raise ServeConfigError(
                        f"{pair_only} route between two models (router-<router> over [strong] "
                        "and [weak]), but this config routes only a [pool]: drop them, give the "
                        "pool's policy in [pool] (cost_weight, quality_tolerance or budget), or "
                        "add [strong] and [weak]"
                    )
        else:
            for side in SIDES:
                upstream = getattr(self, side)
                if not isinstance(upstream, UpstreamConfig):
                    raise ServeConfigError(
                        f"{side} must be an UpstreamConfig, got {type(upstream).__name__}"
                    )
                upstream.check(side)
        with _about(*policy_given):
            RoutingPolicy(  # validates the policy
                threshold=self.threshold,
                strong_share=self.strong_share,
                share_window=self.share_window,
            )
        if not isinstance(self.router, str) or not self.router:
            with _about("router"):
                raise ServeConfigError(
                    f"router must be a router name or checkpoint folder, got {self.router!r}"
                )
        for name, low, high in (
            ("port", 0, 65535),
            ("workers", 1, 256),
            ("max_body_bytes", 1024, 1 << 31),
            ("max_retries", 0, 10),
            ("max_connections", 1, 100_000),
        ):
            with _about(name):
                _check_int(getattr(self, name), name, low, high)
        for name in ("timeout", "connect_timeout", "pool_timeout"):
            value = getattr(self, name)
            if value is None and name == "pool_timeout":
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)
            ):
                with _about(name):
                    raise ServeConfigError(
                        f"{name} must be a positive number of seconds, got {value!r}"
                    )
        if not isinstance(self.fallback, bool):
            with _about("fallback"):
                raise ServeConfigError(f"fallback must be true or false, got {self.fallback!r}")
        with _about("cors_origins"):
            _check_origins(self.cors_origins)
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))  # JSON gives a list
        if self.log_level not in LOG_LEVELS:
            with _about("log_level"):
                raise ServeConfigError(
                    "log_level must be critical, error, warning, info or debug, "
                    f"got {self.log_level!r}"
                )
        if self.api_key_env is not None and (
            not isinstance(self.api_key_env, str) or not self.api_key_env
        ):
            with _about("api_key_env"):
                raise ServeConfigError(
                    f"api_key_env must name an environment variable, got {self.api_key_env!r}"
                )
        if not isinstance(self.host, str) or not self.host.strip():
            with _about("host"):
                raise ServeConfigError(
                    "host must be an address to bind, e.g. '127.0.0.1' (this machine only) or "
                    f"'0.0.0.0' (every interface), got {self.host!r}"
                )
        if self.log is not None and (not isinstance(self.log, str) or not self.log.strip()):
            with _about("log"):
                raise ServeConfigError(
                    f"log must be a routing log's SQLite path or SQLAlchemy URL, got {self.log!r}"
                )
        if not isinstance(self.log_store_prompts, bool):
            with _about("log_store_prompts"):
                raise ServeConfigError(
                    f"log_store_prompts must be true or false, got {self.log_store_prompts!r}"
                )
        if self.log_store_prompts and self.log is None:
            with _about("log_store_prompts"):
                raise ServeConfigError(
                    "log_store_prompts stores prompt text in the routing log, and no log is "
                    "set: it does not apply without one; give log too (--log PATH_OR_URL, or "
                    "log in the config file) or drop log_store_prompts"
                )

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], where: str = "settings", sources: Mapping[str, str] = {}
    ) -> ServeConfig:
        """From a mapping shaped like the config file (``strong`` and ``weak`` as sub-mappings).

        Errors start with ``where``; a bad value's with where it came from instead, by
        ``sources`` (setting, e.g. ``"workers"`` or ``"strong.base_url"``, to a file or flag)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ServeConfigError(
                f"unknown key(s) in {_where(unknown, sources, where)}: {unknown}; "
                f"known: {sorted(known)}"
            )
        values = dict(data)
        if values.get("pool") is not None:  # a [pool] comes from the file alone
            values["pool"] = PoolConfig.from_mapping(
                values["pool"], _where(["pool"], sources, where)
            )
        for side in SIDES:
            side_data = values.get(side)
            if (
                side_data is None
                and values.get("pool") is not None
                and not any(values.get(s) for s in SIDES)
            ):
                values.pop(side, None)
                continue  # a pool alone: no strong/weak
            if side_data is None:
                raise ServeConfigError(
                    f"{where}: the {side} side is missing: give its base_url and model "
                    f"([{side}] in a config file, or --{side}-base-url and --{side}-model)"
                )
            if not isinstance(side_data, Mapping):
                raise ServeConfigError(
                    f"{_where([side], sources, where)}: {_not_a_side_table(side, side_data)}"
                )
            side_known = {f.name for f in fields(UpstreamConfig)}
            side_unknown = sorted(set(side_data) - side_known)
            if side_unknown:
                came_from = _where([f"{side}.{k}" for k in side_unknown], sources, where)
                raise ServeConfigError(
                    f"unknown key(s) in {came_from} [{side}]: {side_unknown}; "
                    f"known: {sorted(side_known)}"
                )
            missing = sorted({"base_url", "model"} - set(side_data))
            if missing:
                raise ServeConfigError(
                    f"{where}: {side} needs {missing} "
                    f"([{side}] in a config file, or --{side}-base-url and --{side}-model)"
                )
            values[side] = UpstreamConfig(**side_data)
        try:
            return cls(**values)
        except ValueError as exc:
            keys = getattr(exc, "serve_keys", ())
            raise ServeConfigError(f"{_where(keys, sources, where)}: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls.from_mapping(json.loads(text), CONFIG_ENV)

    def client_keys(self) -> tuple[str, ...]:
        """The bearer keys clients must send (empty: no auth). Raises when ``api_key_env`` is unset."""
        value = _read_env(self.api_key_env, "api_key_env")
        if value is None:
            return ()
        keys = tuple(k.strip() for k in value.split(",") if k.strip())
        if not keys:
            raise ServeConfigError(
                f"environment variable {self.api_key_env} (api_key_env) holds no key"
            )
        return keys


_FLAT_FLAGS = (
    "router", "threshold", "strong_share", "share_window", "host", "port", "workers", "api_key_env",
    "max_body_bytes", "timeout", "connect_timeout", "max_retries", "max_connections",
    "pool_timeout", "log_level", "log",
)  # fmt: skip


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    """The settings of ``routellm serve``: its ``--config`` file, with the flags given on the
    command line taking precedence (a policy flag replaces the file's policy, whichever of
    ``threshold`` / ``strong_share`` it used; ``--threshold`` its ``share_window`` too, which
    holds a share and has none to hold under a fixed threshold)."""
    settings = read_config_file(args.config) if args.config else {}
    sources: dict[str, str] = {}  # where each setting came from, for errors about its value
    for key, value in settings.items():
        sources[key] = str(args.config)
        if key in SIDES and isinstance(value, Mapping):
            sources.update({f"{key}.{k}": str(args.config) for k in value})
    flags = False  # whether any setting came from a flag (errors then name the command line)
    for side in SIDES:
        file_side = settings.get(side)
        if file_side is not None and not isinstance(file_side, Mapping):
            # Before the flags are merged in: a string, list or number is no table to merge
            # them into, and an empty one must not pass as an empty table.
            raise ServeConfigError(f"{args.config}: {_not_a_side_table(side, file_side)}")
        side_settings = dict(file_side or {})
        for key in ("base_url", "model", "api_key_env"):
            value = getattr(args, f"{side}_{key}")
            if value is not None:
                side_settings[key] = value
                sources[f"{side}.{key}"] = f"--{side}-{key.replace('_', '-')}"
                flags = True
        if side_settings:
            settings[side] = side_settings
    if args.threshold is not None or args.strong_share is not None:
        settings.pop("threshold", None)
        settings.pop("strong_share", None)
        if args.threshold is not None:  # a fixed threshold: no share for the file's window
            settings.pop("share_window", None)
    for key in _FLAT_FLAGS:
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
            sources[key] = f"--{key.replace('_', '-')}"
            flags = True
    if args.no_fallback:
        settings["fallback"] = False
        sources["fallback"] = "--no-fallback"
    if args.log_store_prompts:
        settings["log_store_prompts"] = True
        sources["log_store_prompts"] = "--log-store-prompts"
    if args.cors_origin:  # the flags' origins replace the file's
        settings["cors_origins"] = list(args.cors_origin)
        sources["cors_origins"] = "--cors-origin"
    flags = flags or bool(args.no_fallback or args.log_store_prompts or args.cors_origin)
    if not args.config:
        where = "the command line"
    else:
        where = f"{args.config} and the command line" if flags else str(args.config)
    return ServeConfig.from_mapping(settings, where, sources)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.toml`` or ``.json`` settings file (not yet validated)."""
    path = Path(path)
    if not path.is_file():
        raise ServeConfigError(f"config file {path} does not exist")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ServeConfigError(f"config file {path} is not valid JSON: {exc}") from exc
    elif path.suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ServeConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    else:
        raise ServeConfigError(f"config file {path} must end in .toml or .json")
    if not isinstance(data, dict):
        raise ServeConfigError(f"config file {path} must hold a table of settings")
    return data


_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s?#]+", re.IGNORECASE)


def _check_origins(origins: Any) -> None:
    if isinstance(origins, str) or not isinstance(origins, (list, tuple)):
        raise ServeConfigError(
            f"cors_origins must be a list of origins (--cors-origin ORIGIN, repeatable), "
            f"got {origins!r}"
        )
    for origin in origins:
        if origin != "*" and not (isinstance(origin, str) and _ORIGIN.fullmatch(origin)):
            raise ServeConfigError(
                f"cors_origins: {origin!r} must be an origin as a browser sends it, "
                f"scheme://host[:port] with no path or trailing slash (e.g. "
                f"'https://chat.example.com', 'http://localhost:3000'), or '*' for any"
            )


def _not_a_side_table(side: str, value: Any) -> str:
    return f"{side} must be a table ([{side}]) with base_url and model, got {value!r}"


def _where(keys: Any, sources: Mapping[str, str], where: str) -> str:
    """Where the settings ``keys`` came from (a file, flags), by ``sources``; else ``where``."""
    labels = dict.fromkeys(sources.get(k, where) for k in keys) or [where]
    return " and ".join(labels)


def _check_int(value: Any, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ServeConfigError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _read_env(name: str | None, what: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise ServeConfigError(f"environment variable {name} ({what}) is not set or empty")
    return value
