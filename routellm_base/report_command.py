"""The ``routellm report`` subcommand (arguments only; the report is
:mod:`routellm_base.log.report`, imported when the command runs so that ``routellm --help``
needs no SQLAlchemy)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .arg_types import int_at_least, plot_file
from .errors import RoutingInputError


def log_target(text: str) -> str:
    """``--log``: a folder is refused at parse time (a SQLite log is a file)."""
    from pathlib import Path

    if "://" not in text and Path(text).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a routing log")
    return text


def cmd_report(args: argparse.Namespace) -> int:
    from .log.report import build_report, parse_every
    from .log.report_plot import plot_report

    prices = dict(_price(text) for text in args.price)
    report = build_report(
        args.log,
        prices=prices,
        every=parse_every(args.every) if args.every else None,
        buckets=args.buckets,
        routers=args.router,
    )
    for model in sorted(set(prices) - set(report.models)):
        print(
            f"warning: --price {model}=...: no call of the log names model {model!r}, so this "
            f"price is unused (the log's models: {', '.join(report.models) or 'none'})",
            file=sys.stderr,
        )
    if args.plot:
        plot_report(report, args.plot)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(report.format())
        if args.plot:
            print(f"\nplot: {args.plot}")
    return 0


def _price(text: str) -> tuple[str, tuple[float, float]]:
    """``MODEL=IN,OUT`` (USD per 1M input / output tokens) -> ``(MODEL, (IN, OUT))``."""
    model, _, pair = text.rpartition("=")
    parts = pair.split(",")
    try:
        if not model or len(parts) != 2:
            raise ValueError
        return model, (float(parts[0]), float(parts[1]))
    except ValueError:
        raise RoutingInputError(
            f"--price must be MODEL=IN,OUT in USD per 1M tokens (e.g. gpt-4o=2.5,10), got {text!r}"
        ) from None


def add_report_parser(sub: Any) -> None:
    """Add ``report`` to the ``routellm`` subcommands."""
    rp = sub.add_parser(
        "report",
        help="what a routing log shows: traffic and strong share over time, cost against "
        "always-strong, judged win rate by win-rate bucket, drift against the calibration",
        description="Summarise a routing log: traffic and strong share over time, cost against "
        "always-strong, judged win rate by win-rate bucket, and drift against the calibration.",
    )
    rp.add_argument(
        "--log",
        required=True,
        type=log_target,
        help="the routing log: a SQLite path or a SQLAlchemy URL",
    )
    rp.add_argument(
        "--plot",
        type=plot_file,
        default=None,
        help="also write the plot: a .png, .svg or .pdf (needs the 'report' extra)",
    )
    rp.add_argument("--json", action="store_true", help="print one JSON object")
    rp.add_argument(
        "--every",
        default=None,
        help="time-bin width: a positive number with a unit ms, s, m, h, d or w, e.g. 50ms, 0.5s, "
        "15m, 1h, 2w (a bare number is seconds; at least 1 ms) (default: at most 24 bins over "
        "the log's span)",
    )
    rp.add_argument(
        "--buckets",
        type=int_at_least(1),
        default=5,
        help="win-rate buckets of the judged calls, of equal counts (default %(default)s)",
    )
    rp.add_argument(
        "--price",
        action="append",
        default=[],
        help="MODEL=IN,OUT: USD per 1M input/output tokens, over the default prices; repeatable",
    )
    rp.add_argument(
        "--router",
        action="append",
        default=[],
        help="a router name or checkpoint folder holding a logged checkpoint's calibration "
        "(when the logged name does not find it), not a filter; one that names no router, "
        "or whose checkpoint routed none of the log's calls, is an error; repeatable",
    )
    rp.set_defaults(func=cmd_report)
