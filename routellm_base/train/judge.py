"""``routellm judge``: LLM-judge augmentation over an OpenAI-compatible endpoint.

RouteLLM augments its preference data with judge labels (GPT-4 in the paper): for each prompt,
the strong and the weak model's answers are shown to a judge, whose verdict becomes a battle.
The judging itself (MT-Bench's pairwise prompt, both answer orders, disagreement is a tie,
unparseable verdicts counted and never guessed) is :mod:`routellm_base.judging`; this module
sends its requests to an endpoint, with bounded retries, for an answers file or (``--log``) for
the shadow comparisons of a routing log (:mod:`routellm_base.log.judge_log`).

Input, JSONL::

    {"prompt": "...", "answers": {"gpt-4-1106-preview": "...", "mixtral-8x7b": "..."}}

Output: battles JSONL (see :mod:`routellm_base.train.data`) with ``model_a`` the strong model and
``model_b`` the weak model, plus a summary of the counts.

Requests go to an OpenAI-compatible chat-completions endpoint through the ``openai`` client
(``pip install openai``): every prompt and both answers are sent to that endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..arg_types import float_above, float_at_least, int_at_least
from ..data.scored import iter_jsonl_objects
from ..errors import MissingDependencyError, RouteLLMError
from ..judging import (
    JUDGE_SYSTEM_PROMPT,
    JUDGE_USER_TEMPLATE,
    PairwiseJudge,
    combine_verdicts,
    judge_messages,
    parse_verdict,
)
from ..output_files import refuse_overwrites

__all__ = [
    "JUDGE_SYSTEM_PROMPT",
    "JUDGE_USER_TEMPLATE",
    "JudgeError",
    "JudgeItem",
    "JudgeResult",
    "RetryPolicy",
    "add_judge_parser",
    "combine_verdicts",
    "judge_battles",
    "judge_messages",
    "load_answer_items",
    "parse_verdict",
]

# Status codes worth retrying: timeout, conflict, rate limit, server errors.
_TRANSIENT_STATUS = {408, 409, 429}


class JudgeError(RouteLLMError):
    """The judge endpoint failed in a way that retrying does not fix (or retries ran out)."""


@dataclass(frozen=True)
class JudgeItem:
    """One prompt with the strong and the weak model's answers."""

    prompt: str
    strong_answer: str
    weak_answer: str
    id: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of transient errors, exponential backoff with jitter.

    Attempt ``k`` (0-based) that fails transiently waits ``min(max_delay, base_delay * 2**k)``
    times a random factor in [0.5, 1] before the next (longer if the server's ``Retry-After``
    asks for it, never past ``max_delay``); after ``max_retries`` retries it gives up.
    """

    max_retries: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        """``ValueError`` naming a negative (or non-numeric) field: a negative count or delay
        would run silently as none."""
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ValueError(f"max_retries must be a whole number, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be at least 0, got {self.max_retries}")
        for name in ("base_delay", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number of seconds, at least 0, got {value!r}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        jitter = 0.5 + 0.5 * (rng or random).random()
        return min(self.max_delay, self.base_delay * 2**attempt) * jitter


@dataclass
class JudgeResult:
    """Battles (dicts ready for JSONL), the summary counts and one record per judged input."""

    battles: list[dict[str, str]]
    summary: dict[str, int]
    records: list[dict[str, Any]] = field(default_factory=list)
    """Per item: id, the raw judgment and parsed verdict of each order, and the outcome."""


# -- requests ---------------------------------------------------------------------------------


def _is_transient(exc: BaseException) -> bool:
    try:
        import openai
    except ImportError:  # a scripted client raising its own errors
        return isinstance(exc, (ConnectionError, TimeoutError))
    if isinstance(
        exc, (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)
    ):
        return True  # APIConnectionError includes APITimeoutError
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _TRANSIENT_STATUS or exc.status_code >= 500
    return isinstance(exc, (ConnectionError, TimeoutError))


def _retry_after(exc: BaseException, cap: float) -> float:
    """The server's ``Retry-After`` (seconds form) of a failed response, capped; 0 without one."""
    response = getattr(exc, "response", None)
    try:
        value = float(response.headers.get("retry-after", 0)) if response is not None else 0.0
    except (AttributeError, TypeError, ValueError):
        return 0.0
    return min(max(value, 0.0), cap)


class _Requester:
    """Sends chat completions with bounded retries; counts requests and retries (thread-safe)."""

    def __init__(
        self,
        client: Any,
        model: str,
        max_tokens: int | None,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
    ) -> None:
        self.client, self.model, self.max_tokens = client, model, max_tokens
        self.retry, self.sleep = retry, sleep
        self.requests = 0
        self.retries = 0
        self._lock = threading.Lock()

    def __call__(self, messages: list[dict[str, str]]) -> str:
        options: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0}
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        attempt = 0
        while True:
            with self._lock:
                self.requests += 1
            try:
                response = self.client.chat.completions.create(**options)
            except Exception as exc:
                # The endpoint, so that "Connection error." says which one (a scripted client
                # has no base_url).
                base_url = getattr(self.client, "base_url", None)
                to = f" to {base_url}" if base_url else ""
                if not _is_transient(exc):
                    raise JudgeError(f"judge request{to} failed: {exc}") from exc
                if attempt >= self.retry.max_retries:
                    tries = "1 attempt" if attempt == 0 else f"{attempt + 1} attempts"
                    raise JudgeError(f"judge request{to} failed after {tries}: {exc}") from exc
                with self._lock:
                    self.retries += 1
                self.sleep(max(self.retry.delay(attempt), _retry_after(exc, self.retry.max_delay)))
                attempt += 1
                continue
            return response.choices[0].message.content or ""


# -- judging ----------------------------------------------------------------------------------


def judge_battles(
    items: Iterable[JudgeItem | dict[str, str]],
    client: Any,
    judge_model: str,
    strong_model: str,
    weak_model: str,
    *,
    concurrency: int = 4,
    max_tokens: int | None = 1024,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    skipped: int = 0,
) -> JudgeResult:
    """Judge each item in both orders and turn the combined verdicts into battles.

    ``items`` are :class:`JudgeItem` or dicts with ``prompt``, ``strong_answer`` and
    ``weak_answer`` (and optional ``id``). ``client`` is an ``openai.OpenAI``-like object (only
    ``client.chat.completions.create`` is used); requests run at temperature 0, at most
    ``concurrency`` at a time, transient errors retried per ``retry``. A request that still fails
    (or fails non-transiently) raises :class:`JudgeError`. ``skipped`` (items dropped before
    judging, e.g. missing answers) is carried into the summary. ``concurrency`` below 1 or
    ``max_tokens`` below 1 (``None``: no limit) raises ``ValueError`` before any request.

    Battles keep the input order; the summary counts ``items``, ``judged``, ``strong_wins``,
    ``weak_wins``, ``ties``, ``unparseable`` (items with an unreadable verdict in either order,
    not written), ``skipped``, ``requests`` (HTTP attempts) and ``retries``.
    """
    if strong_model == weak_model:
        raise ValueError(f"strong and weak model are the same ({strong_model!r})")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1 (or None: no limit), got {max_tokens}")
    work = [it if isinstance(it, JudgeItem) else JudgeItem(**it) for it in items]
    send = _Requester(client, judge_model, max_tokens, retry or RetryPolicy(), sleep)
    judge = PairwiseJudge(send, judge_model)

    def judge_one(item: JudgeItem) -> dict[str, Any]:
        verdict = judge.judge(item.prompt, item.strong_answer, item.weak_answer)
        return {
            "id": item.id,
            "strong_first": {"judgment": verdict.judgments[0], "verdict": verdict.strong_first},
            "weak_first": {"judgment": verdict.judgments[1], "verdict": verdict.weak_first},
            "winner": verdict.battle_winner,
        }

    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        futures = [pool.submit(judge_one, item) for item in work]
        records = [f.result() for f in futures]
    finally:  # on a JudgeError, requests not yet started are dropped
        pool.shutdown(wait=True, cancel_futures=True)

    battles = [
        {
            "prompt": item.prompt,
            "model_a": strong_model,
            "model_b": weak_model,
            "winner": rec["winner"],
        }
        for item, rec in zip(work, records)
        if rec["winner"] is not None
    ]
    winners = [b["winner"] for b in battles]
    summary = {
        "items": len(work) + skipped,
        "judged": len(battles),
        "strong_wins": winners.count("model_a"),
        "weak_wins": winners.count("model_b"),
        "ties": winners.count("tie"),
        "unparseable": sum(rec["winner"] is None for rec in records),
        "skipped": skipped,
        "requests": send.requests,
        "retries": send.retries,
    }
    return JudgeResult(battles, summary, records)


def load_answer_items(
    path: str | Path, strong_model: str, weak_model: str
) -> tuple[list[JudgeItem], list[str]]:
    """Items from an answers JSONL file, and the ``PATH:LINE`` of each line skipped.

    A line whose ``answers`` lacks a string answer of the strong or the weak model is skipped;
    a line without a string ``prompt`` or an ``answers`` object raises ``ValueError``, and so
    does a model that no line answers (a wrong ``--strong``/``--weak``: the error names the
    models the answers hold).
    """
    items, skipped = _answer_items(path, strong_model, weak_model)
    return items, [where for where, _ in skipped]


def _answer_items(
    path: str | Path, strong_model: str, weak_model: str
) -> tuple[list[JudgeItem], list[tuple[str, list[str]]]]:
    """:func:`load_answer_items`, each skipped line with the models it has no answer of."""
    items: list[JudgeItem] = []
    skipped: list[tuple[str, list[str]]] = []
    answered: set[str] = set()
    for where, obj in iter_jsonl_objects(path):
        if not isinstance(obj.get("prompt"), str):
            raise ValueError(f"{where}: field 'prompt' missing or not a string")
        answers = obj.get("answers")
        if not isinstance(answers, dict):
            raise ValueError(f"{where}: field 'answers' missing or not an object")
        answered.update(k for k, v in answers.items() if isinstance(v, str))
        strong, weak = answers.get(strong_model), answers.get(weak_model)
        if not isinstance(strong, str) or not isinstance(weak, str):
            missing = [
                m for m, a in ((strong_model, strong), (weak_model, weak)) if not isinstance(a, str)
            ]
            skipped.append((where, missing))
            continue
        items.append(
            JudgeItem(obj["prompt"], strong, weak, str(obj.get("id", where.rsplit(":", 1)[1])))
        )
    absent = [m for m in (strong_model, weak_model) if m not in answered]
    if absent and skipped:
        raise ValueError(
            f"{path}: no answer of {' or '.join(map(repr, absent))} on any line; the answers "
            f"are of {', '.join(map(repr, sorted(answered))) or 'no model'}: give --strong and "
            "--weak from these"
        )
    return items, skipped


# -- command line -----------------------------------------------------------------------------


def _make_client(base_url: str | None, api_key_env: str, timeout: float) -> Any:
    try:
        from openai import OpenAI
    except ImportError as exc:
        raise MissingDependencyError(
            "routellm judge needs the openai client: pip install openai"
        ) from exc
    api_key = os.environ.get(api_key_env)
    if not api_key:
        if base_url is None:
            raise RouteLLMError(
                f"no API key: set ${api_key_env} (or pass --base-url for a local server)"
            )
        api_key = "unused"  # local OpenAI-compatible servers often ignore the key
    # max_retries=0: retries are ours (bounded, counted), not the client's hidden ones.
    return OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout)


def cmd_judge(args: argparse.Namespace) -> int:
    if (args.input is None) == (args.log is None):
        raise RouteLLMError("give --input ANSWERS.jsonl or --log PATH (not both)")
    if args.limit is not None and args.limit < 0:
        raise RouteLLMError(f"--limit must be at least 0, got {args.limit}")
    if args.log is not None:
        return _judge_log(args)
    if args.retry_unparseable:
        raise RouteLLMError(
            "--input takes no --retry-unparseable: every item of the answers file is judged each "
            "run (it is for --log, whose unreadable verdicts are stored)"
        )
    missing = [f"--{n}" for n in ("strong", "weak", "out") if getattr(args, n) is None]
    if missing:
        raise RouteLLMError(f"--input needs {', '.join(missing)}")
    # Before any request: every battle written cost two, and the answers read cost more.
    outputs = [("--out", args.out)] + ([("--records", args.records)] if args.records else [])
    refuse_overwrites(outputs, [("--input", args.input)], force=args.force)
    items, skipped = _answer_items(args.input, args.strong, args.weak)
    left_by_limit = 0
    if args.limit is not None and len(items) > args.limit:
        left_by_limit = len(items) - args.limit
        items = items[: args.limit]  # the first ones, in file order
    client = _make_client(args.base_url, args.api_key_env, args.timeout)
    result = judge_battles(
        items,
        client,
        args.judge_model,
        args.strong,
        args.weak,
        concurrency=args.concurrency,
        max_tokens=args.max_tokens,
        retry=RetryPolicy(max_retries=args.max_retries, base_delay=args.backoff),
        skipped=len(skipped),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for battle in result.battles:
            handle.write(json.dumps(battle) + "\n")
    if args.records:
        with open(args.records, "w", encoding="utf-8") as handle:
            for record in result.records:
                handle.write(json.dumps(record) + "\n")
    summary = {**result.summary, "left_by_limit": left_by_limit, "out": str(out)}
    if args.json:
        print(json.dumps(summary))
    else:
        s = result.summary
        print(
            f"judged {s['judged']} of {s['items']} items with {args.judge_model}: "
            f"strong wins {s['strong_wins']}, weak wins {s['weak_wins']}, ties {s['ties']}; "
            f"unparseable {s['unparseable']}, skipped (missing answers) {s['skipped']}; "
            f"{s['requests']} requests, {s['retries']} retries -> {out}"
            + (f" ({left_by_limit} more items left unjudged by --limit)" if left_by_limit else "")
        )
    for where, missing in skipped[:5]:
        print(
            f"note: {where}: no answer of {' or '.join(map(repr, missing))}; skipped",
            file=sys.stderr,
        )
    return 0


def _judge_log(args: argparse.Namespace) -> int:
    from ..log.judge_log import judge_log

    given = [f"--{n}" for n in ("strong", "weak", "out", "records") if getattr(args, n) is not None]
    given += ["--force"] if args.force else []
    if given:
        raise RouteLLMError(
            f"--log takes no {', '.join(given)}: the models are the log's and the verdicts are "
            "written into the log"
        )
    senders: list[_Requester] = []

    def make_judge() -> PairwiseJudge:
        # Built only when a comparison waits: a log with nothing to judge needs no API key.
        client = _make_client(args.base_url, args.api_key_env, args.timeout)
        policy = RetryPolicy(max_retries=args.max_retries, base_delay=args.backoff)
        senders.append(_Requester(client, args.judge_model, args.max_tokens, policy, time.sleep))
        return PairwiseJudge(senders[0], args.judge_model)

    counts = judge_log(
        args.log,
        make_judge,
        concurrency=args.concurrency,
        retry_unparseable=args.retry_unparseable,
        limit=args.limit,
    )
    requests, retries = (senders[0].requests, senders[0].retries) if senders else (0, 0)
    counts = {**counts, "requests": requests, "retries": retries}
    if args.json:
        print(json.dumps(counts))
    else:
        left = counts["left_by_limit"]
        print(
            f"judged {counts['judged']} of {counts['items'] + left} waiting comparisons"
            + (f" ({left} left waiting by --limit)" if left else "")
            + f" in {args.log} with "
            f"{args.judge_model}: strong wins {counts['strong_wins']}, weak wins {counts['weak_wins']}, "
            f"ties {counts['ties']}; unparseable {counts['unparseable']}, prompts or answers not stored "
            f"{counts['skipped_no_text']}, unparseable before (not retried) "
            f"{counts['skipped_unparseable_before']}; {counts['requests']} requests, "
            f"{counts['retries']} retries"
        )
    return 0


def add_judge_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``routellm judge`` on the CLI's subparsers."""
    judge = sub.add_parser(
        "judge",
        help="LLM-judge battles from strong vs weak answers (sends prompts and answers to the judge endpoint)",
        description=(
            "Judge each prompt's strong and weak answers with an LLM judge (MT-Bench pairwise "
            "prompt, both answer orders) and write battles JSONL for 'routellm train', or judge "
            "a routing log's shadow comparisons in place (--log). "
            "PRIVACY: every prompt and both answers are sent to the judge endpoint "
            "(--base-url, default the OpenAI API)."
        ),
    )
    judge.add_argument(
        "--input", help='answers JSONL: {"prompt": ..., "answers": {MODEL: ANSWER, ...}} a line'
    )
    judge.add_argument(
        "--log",
        help="instead of --input: a routing log (SQLite path or SQLAlchemy URL) whose unjudged shadow "
        "comparisons are judged, their verdicts written back into it (needs store_prompts=True)",
    )
    judge.add_argument(
        "--strong",
        help="with --input: strong model, its key in 'answers' and model_a of the battles",
    )
    judge.add_argument(
        "--weak", help="with --input: weak model, its key in 'answers' and model_b of the battles"
    )
    judge.add_argument("--judge-model", required=True, help="model name sent to the endpoint")
    judge.add_argument(
        "--base-url",
        default=None,
        help="OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1); prompts and answers are sent there",
    )
    judge.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="environment variable holding the API key (optional with --base-url; default "
        "%(default)s)",
    )
    judge.add_argument(
        "--concurrency",
        type=int_at_least(1),
        default=4,
        help="requests in flight at most (default: %(default)s)",
    )
    judge.add_argument(
        "--max-retries",
        type=int_at_least(0),
        default=4,
        help="retries of a transient error per request (default: %(default)s)",
    )
    judge.add_argument(
        "--backoff",
        type=float_at_least(0),
        default=1.0,
        help="first retry delay in seconds, doubling each retry (default: %(default)s)",
    )
    judge.add_argument(
        "--timeout",
        type=float_above(0),
        default=120.0,
        help="seconds per request (default: %(default)s)",
    )
    judge.add_argument(
        "--max-tokens",
        type=int_at_least(1),
        default=1024,
        help="judgment length limit in tokens (default: %(default)s)",
    )
    judge.add_argument(
        "--out",
        help="with --input: battles JSONL to write: a new or empty file (an existing one is "
        "refused unless --force), neither the --input file nor --records",
    )
    judge.add_argument(
        "--records",
        default=None,
        help="with --input: also write every raw judgment and verdict (JSONL; a new or empty "
        "file, unless --force)",
    )
    judge.add_argument(
        "--force",
        action="store_true",
        help="with --input: overwrite an --out or --records that already holds lines (an "
        "earlier run's battles are lost); never the --input file",
    )
    judge.add_argument(
        "--retry-unparseable",
        action="store_true",
        help="with --log: judge again the comparisons an earlier judgment left unreadable",
    )
    judge.add_argument(
        "--limit",
        type=int,
        default=None,
        help="judge at most this many comparisons (--log) or items (--input: the first ones)",
    )
    judge.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    judge.set_defaults(func=cmd_judge)
    return judge
