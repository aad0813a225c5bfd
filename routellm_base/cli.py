"""The ``routellm`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from .errors import RouteLLMError


def _add_policy(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--strong-share", type=float, help="target share of calls sent to the strong model")
    group.add_argument("--threshold", type=float, help="route strong when win rate >= this")


def cmd_route(args: argparse.Namespace) -> int:
    from .engine import RoutingEngine
    from .routing_text import RoutingTextOptions

    engine = RoutingEngine(
        args.router,
        threshold=args.threshold,
        strong_share=args.strong_share,
        routing_text_options=RoutingTextOptions(max_tokens=args.max_tokens),
    )
    decision = engine.decide(args.prompt, strong_model=args.strong, weak_model=args.weak)
    if args.json:
        print(json.dumps(decision.to_dict()))
    else:
        print(
            f"{decision.side} ({decision.model}): win rate {decision.win_rate:.4f} "
            f"{'>=' if decision.side == 'strong' else '<'} threshold {decision.threshold:.4f} "
            f"[router {decision.router}, {decision.seconds * 1000:.2f} ms]"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routellm", description="Learned routing between a strong and a weak LLM.")
    sub = parser.add_subparsers(dest="command", required=True)
    route = sub.add_parser("route", help="print the routing decision for one prompt")
    route.add_argument("prompt")
    route.add_argument("--router", default="mf", help="bundled router name (mf, random) or checkpoint folder")
    _add_policy(route)
    route.add_argument("--strong", default="strong", help="name to report for the strong model")
    route.add_argument("--weak", default="weak", help="name to report for the weak model")
    route.add_argument("--max-tokens", type=int, default=None, help="routing-text token budget")
    route.add_argument("--json", action="store_true", help="print one JSON object")
    route.set_defaults(func=cmd_route)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (RouteLLMError, FileNotFoundError) as exc:
        print(f"routellm: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
