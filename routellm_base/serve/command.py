"""The ``routellm serve`` subcommand (argument parsing only; the server lives in :mod:`.app`)."""

from __future__ import annotations

import argparse
from typing import Any

from ..arg_types import input_file, share
from ..policy import DEFAULT_STRONG_SHARE
from .config import LOG_LEVELS, ServeConfigError, config_from_args


def cmd_serve(args: argparse.Namespace) -> int:
    from . import run

    config = config_from_args(args)
    try:
        run(config)
    except ServeConfigError as exc:
        keys = getattr(exc, "serve_keys", ())
        if args.config and keys and all(k.startswith("pool.") for k in keys):
            # a [pool] comes only from the file: name it, as the config's other errors do
            raise ServeConfigError(f"{args.config}: {exc}") from None
        raise
    return 0


def add_serve_parser(sub: Any) -> None:
    """Add ``serve`` to the ``routellm`` subcommands."""
    sv = sub.add_parser(
        "serve",
        help="OpenAI-compatible routing server: model 'router-<router>' or 'router-<router>-<threshold>'",
        description="OpenAI-compatible routing server. Model 'router-<router>' routes between "
        "--strong-* and --weak-*; a [pool] section of the --config file (no flags) routes among "
        "several priced models as 'router-<pool router>' (see README: Serve).",
    )
    sv.add_argument(
        "--config",
        default=None,
        type=input_file,
        help="settings file (.toml or .json); flags given here override it. Only the file "
        "configures a [pool] of several priced models: router (zero_shot, the default, pool_knn "
        "or a folder of `routellm train pool`), a policy (cost_weight, quality_tolerance or "
        "budget), max_cost, and [[pool.models]] with name, base_url, model, api_key_env, "
        "input_price, output_price",
    )
    for side in ("strong", "weak"):
        sv.add_argument(
            f"--{side}-base-url",
            default=None,
            help=f"the {side} side's OpenAI-compatible API root, e.g. https://api.openai.com/v1",
        )
        sv.add_argument(f"--{side}-model", default=None, help=f"the {side} side's model name")
        sv.add_argument(
            f"--{side}-api-key-env",
            default=None,
            help=f"environment variable holding the {side} side's API key",
        )
    sv.add_argument(
        "--router",
        default=None,
        help="bundled router name or checkpoint folder (default task_experts)",
    )
    policy = sv.add_mutually_exclusive_group()
    policy.add_argument(
        "--strong-share",
        type=share,
        help="share of calls sent strong by model 'router-<router>', in [0, 1] (default "
        f"{DEFAULT_STRONG_SHARE}, through the router's calibration, unless --threshold or the "
        "config sets the policy)",
    )
    policy.add_argument(
        "--threshold", type=float, help="win-rate threshold of model 'router-<router>'"
    )
    sv.add_argument(
        "--share-window",
        type=int,
        default=None,
        help="hold the strong share on live traffic: threshold at the quantile of the win rates "
        "of the last N calls of 'router-<router>' (per process; needs a share, not --threshold; "
        "default: off, the calibration's threshold holds)",
    )
    sv.add_argument(
        "--host", default=None, help="address to bind (default 127.0.0.1: this machine only)"
    )
    sv.add_argument("--port", type=int, default=None, help="port (default 6060)")
    sv.add_argument(
        "--workers", type=int, default=None, help="server processes sharing the port (default 1)"
    )
    sv.add_argument(
        "--api-key-env",
        default=None,
        help="environment variable holding the bearer key(s) clients must send, comma-separated",
    )
    sv.add_argument(
        "--max-body-bytes",
        type=int,
        default=None,
        help="largest request body accepted (default 10 MiB)",
    )
    sv.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="upstream timeout in seconds: the longest wait for an answer's next bytes, or for "
        "the upstream to read the request (default 60)",
    )
    sv.add_argument(
        "--connect-timeout",
        type=float,
        default=None,
        help="upstream connect timeout in seconds (default 5)",
    )
    sv.add_argument(
        "--max-retries",
        type=int,
        default=None,
        help="retries per side of connection errors and 408/409/429/5xx answers (default 2)",
    )
    sv.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="pooled upstream connections per side (default 512)",
    )
    sv.add_argument(
        "--pool-timeout",
        type=float,
        default=None,
        help="longest wait in seconds for a free pooled connection when all are busy; then 503 "
        "(default: --timeout)",
    )
    sv.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="let browser apps on ORIGIN call the server (CORS), e.g. https://chat.example.com "
        "or http://localhost:3000 ('*': any origin); repeatable; default: off",
    )
    sv.add_argument(
        "--no-fallback",
        action="store_true",
        help="never call the other side when the chosen one fails",
    )
    sv.add_argument(
        "--log-level",
        default=None,
        choices=LOG_LEVELS,
        help="server log level: critical, error, warning, info (default) or debug",
    )
    sv.add_argument(
        "--log",
        default=None,
        help="record every answered request to this routing log: a SQLite path or a SQLAlchemy URL "
        "(needs the 'log' extra)",
    )
    sv.add_argument(
        "--log-store-prompts",
        action="store_true",
        help="store prompt text in the routing log given by --log (default: a salted hash only)",
    )
    sv.set_defaults(func=cmd_serve)
