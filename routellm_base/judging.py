"""Pairwise LLM judging of a strong and a weak answer: the one core every judge path uses.

The judge prompt is MT-Bench's pairwise prompt (``pair-v2``): the rubric as the system prompt,
the question and the two answers as Assistant A and Assistant B, and a final verdict of
``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie). Position bias is cancelled by judging every item twice,
strong answer first and then weak answer first: if both orders name the same answer it wins,
otherwise (disagreement, or a tie in either order) the item is a tie. A judgment with no
verdict, or with more than one different verdict, is unparseable: it is counted, and the item
gets no verdict (never a guessed one).

The judge model is any callable ``messages -> text`` (:data:`ChatFn`), with ``messages`` a list
of ``{"role": ..., "content": ...}`` dicts: ``routellm judge`` adapts an OpenAI-compatible
endpoint to it, and each integration adapts its own chat model or LLM, so this module knows no
framework.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .routing_text import ChatTurn, turn_texts

__all__ = [
    "JUDGE_SYSTEM_PROMPT",
    "JUDGE_USER_TEMPLATE",
    "ChatFn",
    "PairVerdict",
    "PairwiseJudge",
    "Winner",
    "combine_verdicts",
    "judge_messages",
    "judge_question",
    "parse_verdict",
]

ChatFn = Callable[[list[dict[str, str]]], str]
"""A judge model: chat messages (``[{"role": "system"|"user", "content": str}, ...]``) in, the
judgment's text out. It may raise; callers record the error."""

Winner = Literal["strong", "weak", "tie"]

# MT-Bench's pairwise judge prompt ("pair-v2", FastChat llm_judge/data/judge_prompts.jsonl).
JUDGE_SYSTEM_PROMPT = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
    "assistants to the user question displayed below. You should choose the assistant that follows "
    "the user's instructions and answers the user's question better. Your evaluation should consider "
    "factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of "
    "their responses. Begin your evaluation by comparing the two responses and provide a short "
    "explanation. Avoid any position biases and ensure that the order in which the responses were "
    "presented does not influence your decision. Do not allow the length of the responses to "
    "influence your evaluation. Do not favor certain names of the assistants. Be as objective as "
    "possible. After providing your explanation, output your final verdict by strictly following "
    'this format: "[[A]]" if assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" '
    "for a tie."
)
JUDGE_USER_TEMPLATE = (
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)

_VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def parse_verdict(text: str | None) -> str | None:
    """``"A"``, ``"B"`` or ``"C"`` (tie) from a judgment, or None when it cannot be read.

    Unreadable: no ``[[A]]``/``[[B]]``/``[[C]]`` at all, or more than one different one (a judge
    that repeats the format instructions); no guess is made.
    """
    found = set(_VERDICT.findall(text or ""))
    return found.pop() if len(found) == 1 else None


def combine_verdicts(strong_first: str, weak_first: str) -> str:
    """The battle winner from the two orders' verdicts (``model_a`` is the strong model).

    ``strong_first`` judged with the strong answer as Assistant A, ``weak_first`` with it as
    Assistant B. Both name the strong model: ``model_a``; both name the weak one: ``model_b``;
    otherwise (they disagree, or either is a tie) ``tie``. Raises ``ValueError`` for a verdict
    other than A, B or C.
    """
    for verdict in (strong_first, weak_first):
        if verdict not in ("A", "B", "C"):
            raise ValueError(f"verdict {verdict!r} is not A, B or C")
    strong = {"A": "strong", "B": "weak", "C": "tie"}[strong_first]
    swapped = {"A": "weak", "B": "strong", "C": "tie"}[weak_first]
    if strong == swapped == "strong":
        return "model_a"
    if strong == swapped == "weak":
        return "model_b"
    return "tie"


BATTLE_WINNER: dict[str, Winner] = {"model_a": "strong", "model_b": "weak", "tie": "tie"}
"""A battle's winner (``model_a`` the strong model) as the side that won."""


def judge_messages(prompt: str, answer_a: str, answer_b: str) -> list[dict[str, str]]:
    """The chat messages of one pairwise judgment (``answer_a`` shown as Assistant A)."""
    user = JUDGE_USER_TEMPLATE.format(question=prompt, answer_a=answer_a, answer_b=answer_b)
    return [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def judge_question(conversation: str | Sequence[ChatTurn | Mapping[str, Any]]) -> str:
    """The ``[User Question]`` text of a routed conversation.

    A prompt string, or a conversation of one user turn, is its text; a longer conversation is
    every turn's text as ``"<role>: <text>"`` blocks, oldest first, so the judge sees the
    context both answers replied to. Non-text parts (images) are left out.
    """
    if isinstance(conversation, str):
        return conversation
    turns = turn_texts(conversation)
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    return "\n\n".join(f"{role}: {text}" for role, text in turns)


@dataclass(frozen=True)
class PairVerdict:
    """One item judged in both orders."""

    winner: Winner | None
    """``"strong"``, ``"weak"`` or ``"tie"``; ``None`` when either judgment was unreadable."""
    strong_first: str | None
    """The parsed verdict (``A``/``B``/``C``) with the strong answer shown first; ``None``:
    unreadable."""
    weak_first: str | None
    """The parsed verdict with the weak answer shown first."""
    judgments: tuple[str, str]
    """The raw judgment texts, strong-first then weak-first."""
    judge_model: str
    judged_at: float
    """Unix time (seconds) the second judgment came back."""

    @property
    def unparseable(self) -> int:
        """How many of the two judgments had no readable verdict (0, 1 or 2)."""
        return (self.strong_first is None) + (self.weak_first is None)

    @property
    def battle_winner(self) -> str | None:
        """The winner in battle terms (``model_a`` strong, ``model_b`` weak, ``tie``)."""
        return (
            None
            if self.winner is None
            else {"strong": "model_a", "weak": "model_b", "tie": "tie"}[self.winner]
        )


class PairwiseJudge:
    """Judges a strong and a weak answer to one question in both orders with ``chat``.

    ``model`` names the judge in records (the log's ``judge_model``). Thread-safe when ``chat``
    is. Errors of ``chat`` propagate (the caller records them).
    """

    def __init__(self, chat: ChatFn, model: str) -> None:
        if not callable(chat):
            raise TypeError(f"judge: chat must be a callable messages -> text, got {chat!r:.80}")
        self.chat = chat
        self.model = model

    def __repr__(self) -> str:
        return f"PairwiseJudge(model={self.model!r})"

    def judge(self, question: str, strong_answer: str, weak_answer: str) -> PairVerdict:
        """Both orders' judgments, parsed and combined (see the module docstring)."""
        raw = (
            self.chat(judge_messages(question, strong_answer, weak_answer)) or "",
            self.chat(judge_messages(question, weak_answer, strong_answer)) or "",
        )
        first, second = (parse_verdict(text) for text in raw)
        winner = None
        if first is not None and second is not None:
            winner = BATTLE_WINNER[combine_verdicts(first, second)]
        return PairVerdict(winner, first, second, raw, self.model, time.time())
