"""One routed call, framework-free: decide once, run the chosen candidate with fallback, finish
once.

Every routed call of the integrations and of ``routellm serve`` goes through :class:`RoutedCall`:

    turns --decide--> RoutingDecision --run/arun/stream/astream--> the chosen candidate's answer
          --finish--> cost (CostTracker), log row (RoutingLog), shadow offer (ShadowRunner)

The adapters only translate: framework messages become :class:`~routellm_base.ChatTurn` turns
(once), an *attempt* function calls one candidate's model in the framework's own way, and the
framework's answer becomes an :class:`Answer` for :meth:`RoutedCall.finish`.

A *candidate* is one named model the call may go to. Between two models the candidates are
keyed ``"strong"`` and ``"weak"`` and a :class:`~routellm_base.RoutingEngine` decides; in a pool
(:class:`~routellm_base.pool.PoolEngine`) each is keyed by its model name. The decision's
``side`` is the key of the candidate it chose.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from .costs import CostTracker, count_tokens
from .decision import FORCE_KWARG, RoutingDecision, pair_names
from .engine import RoutingEngine
from .engine_cache import EngineCache
from .errors import RoutingInputError
from .log_field import LazyLog
from .pool_fields import PAIR_ROUTE_KWARGS, PoolEngineCache
from .routing_text import ChatTurn, turn_texts
from .shadow import LazyShadow, ShadowAnswer, ShadowRunner

if TYPE_CHECKING:
    from .log import RoutingLog
    from .pool import PoolEngine

logger = logging.getLogger("routellm_base.routed_call")

M = TypeVar("M")
T = TypeVar("T")


Answer = ShadowAnswer
"""What finishing a call needs of an answer: its ``text`` and the tokens the model reported
(``input_tokens`` / ``output_tokens``, ``None`` when it reported none: they are then counted
from the texts with cl100k and flagged as estimated)."""


@dataclass(frozen=True)
class Candidate(Generic[M]):
    """One model a routed call may go to.

    ``key`` is what decisions, ``routellm_force``, cost reports and log columns call it
    (``"strong"`` / ``"weak"``); ``name`` is the model name reported (``decision.model``, price
    look-ups); ``model`` is the framework's model object, opaque to the engine; ``bound`` the
    call arguments bound to this candidate alone (e.g. its own ``bind_tools`` output), which
    :meth:`call_options` puts under a call's own.
    """

    key: str
    name: str
    model: M
    bound: dict[str, Any] = field(default_factory=dict)

    def call_options(self, options: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
        """The arguments this candidate is called with: its bound ones, then the call's (which
        win, as for LangChain's ``RunnableBinding``), then ``defaults`` where neither set one
        (a default of ``None`` is no default)."""
        call = {**self.bound, **options}
        call.update({k: v for k, v in defaults.items() if v is not None and k not in call})
        return call


class CallServices:
    """What every call of one routed model shares: its engines (per routing setting, following
    router swaps; a pool's in ``pools``), cost tracker, routing log and shadow runner. Shared by the model's shallow
    copies (``bind_tools``, ``model_copy``); deep copies and pickles start empty (a lock can be
    neither) and rebuild each part from the copy's own fields on first use."""

    def __init__(self) -> None:
        self.engines = EngineCache()
        self.pools = PoolEngineCache()
        self.costs: CostTracker | None = None
        self.log = LazyLog()
        self.shadow = LazyShadow()
        self.lock = threading.Lock()

    def cost_tracker(self, make: Callable[[], CostTracker]) -> CostTracker:
        """The tracker, made by ``make`` on first use (once, under the lock)."""
        if self.costs is None:
            with self.lock:
                if self.costs is None:
                    self.costs = make()
        return self.costs

    def __deepcopy__(self, memo: dict[int, Any]) -> CallServices:
        return CallServices()

    def __reduce__(self) -> tuple[type[CallServices], tuple[()]]:
        return CallServices, ()


@dataclass(frozen=True)
class CallSinks:
    """Where a finished call is accounted: each may be ``None`` (not kept)."""

    costs: CostTracker | None = None
    log: RoutingLog | None = None
    shadow: ShadowRunner | None = None


class RoutedCall(Generic[M]):
    """One routed call: :meth:`decide` (or :meth:`adecide`) once, then one of the four drivers
    (:meth:`run`, :meth:`arun`, :meth:`stream`, :meth:`astream`; :meth:`open_stream` and
    :meth:`aopen_stream` are the streams started at the call) calls the chosen candidate through
    the caller's *attempt* function, then :meth:`finish` accounts the answer once.

    * ``candidates``: strong then weak for a :class:`RoutingEngine`; for a
      :class:`~routellm_base.pool.PoolEngine`, its pool's models, keyed by name, in pool order
      (the fallback order is then the decision's ``pool.order``).
    * ``turns``: the conversation, converted once by the adapter (or a prompt string).
    * ``fallback``: after the chosen candidate raises an ``Exception`` (never
      ``KeyboardInterrupt`` / ``asyncio.CancelledError``), try the next candidate once; the
      decision then names the candidate that answered, with ``fallback_from`` and
      ``fallback_reason``. A second failure is raised with the first as ``__cause__`` (in a
      pool whose every candidate failed, the last, each failure's ``__cause__`` the one
      before it; all of them are in :attr:`failures`).
      ``falls_back(error)`` may refuse a fallback for an error (the server: a request the
      upstream refused). A pool falls back along the policy's order until a candidate answers
      or none is left.
    * ``route``: the call's own routing settings, passed to the engine: a pool call's
      (``allowed``, ``cost_weight``, ``quality_tolerance``, ``budget``, ``max_cost``), or
      between two models ``threshold`` or ``strong_share`` (the call's policy, see
      :meth:`RoutingEngine.decide_many`).
    * A stream commits to a candidate once its first chunk has arrived, as LangChain's
      ``RunnableWithFallbacks`` does: a failure before it falls back, one after it is raised
      (:meth:`tagged` then finishes the call ``"broken"`` with what was answered).
    """

    def __init__(
        self,
        engine: RoutingEngine | PoolEngine,
        candidates: Sequence[Candidate[M]],
        turns: Sequence[ChatTurn] | str,
        *,
        force: str | None = None,
        fallback: bool = False,
        falls_back: Callable[[Exception], bool] | None = None,
        sinks: CallSinks | None = None,
        route: dict[str, Any] | None = None,
    ) -> None:
        keys = [c.key for c in candidates]
        if isinstance(engine, RoutingEngine):
            if keys != ["strong", "weak"]:
                pair_names({c.key: c.name for c in candidates})  # names what is wrong
                raise RoutingInputError("a routed call's candidates go strong, then weak")
            pool_only = sorted(set(route or {}).difference(PAIR_ROUTE_KWARGS))
            if pool_only:
                raise RoutingInputError(
                    f"{pool_only} route a pool of several models; a strong/weak call takes "
                    f"{list(PAIR_ROUTE_KWARGS)}"
                )
        elif keys != [c.name for c in candidates] or keys != list(engine.pool.names):
            raise RoutingInputError(
                f"a pool call's candidates are its pool's models keyed by name, in pool order "
                f"{list(engine.pool.names)}; got {keys}"
            )
        self.engine = engine
        self.route = dict(route or {})
        self.candidates = tuple(candidates)
        self.names = {c.key: c.name for c in self.candidates}
        """The candidates' model names by key, in fallback order."""
        self.turns = turns
        self.force = force
        self.fallback = fallback
        self.falls_back = falls_back
        self.sinks = sinks or CallSinks()
        self.started = time.perf_counter()
        self.decision: RoutingDecision | None = None
        self.failures: list[Exception] = []
        """The errors of the attempts that failed before answering, in order (a stream's error
        after its first chunk is raised, not kept here)."""

    # -- deciding -----------------------------------------------------------------------------

    def decide(self) -> RoutingDecision:
        """Route the call (its win rate enters a share window, its predictions a budget
        window) and return the decision."""
        decide: Any = self.engine.decide
        self.decision = decide(self.turns, force=self.force, candidates=self.names, **self.route)
        return self.decision

    async def adecide(self) -> RoutingDecision:
        """:meth:`decide` in a worker thread, so embedding never blocks the event loop."""
        decide: Any = self.engine.adecide
        self.decision = await decide(
            self.turns, force=self.force, candidates=self.names, **self.route
        )
        return self.decision

    @property
    def chosen(self) -> Candidate[M]:
        """The candidate the current decision names (after a fallback, the one that answers)."""
        assert self.decision is not None, "decide() first"
        return self.candidate(self.decision.side)

    def candidate(self, key: str) -> Candidate[M]:
        """The candidate keyed ``key``; :class:`RoutingInputError` for an unknown key."""
        for candidate in self.candidates:
            if candidate.key == key:
                return candidate
        raise RoutingInputError(f"no candidate {key!r} in {[c.key for c in self.candidates]}")

    def _next_after(self, error: Exception) -> None:
        """Move the decision to the candidate after the chosen one, which raised ``error``;
        re-raise ``error`` when the call may not fall back (off, refused for this error, or
        no candidate left: then chained to the earlier failures, see :meth:`_raise`)."""
        assert self.decision is not None, "decide() first"
        self.failures.append(error)
        pool = self.decision.pool
        if pool is not None:
            rest = pool.order[pool.order.index(self.decision.side) + 1 :]
            if not rest:
                self._raise(error)
            if not self.fallback or (self.falls_back is not None and not self.falls_back(error)):
                self._raise(error)
            following_key = rest[0]
            self.decision = self.decision.fell_back(
                self.names[following_key], error, to=following_key
            )
            return
        if self.decision.fallback_from is not None:
            self._raise(error)
        if not self.fallback or (self.falls_back is not None and not self.falls_back(error)):
            raise error
        keys = [c.key for c in self.candidates]
        following = self.candidates[(keys.index(self.decision.side) + 1) % len(keys)]
        self.decision = self.decision.fell_back(following.name, error)

    def _raise(self, error: Exception) -> NoReturn:
        """Raise ``error``, the last of :attr:`failures`, with each failure's ``__cause__`` the
        one before it, so a traceback shows every attempt in the order they failed (between two
        models: the second failure from the first). A failure's own ``__cause__`` is replaced;
        an error object raised twice is not chained to itself."""
        failures = self.failures
        for earlier, later in zip(failures, failures[1:]):
            if later is not earlier and not _caused_by(earlier, later):
                later.__cause__ = earlier
        raise error

    # -- the four drivers -------------------------------------------------------------------

    def run(self, attempt: Callable[[Candidate[M]], T]) -> T:
        """``attempt(candidate)`` on the chosen candidate, falling back as the call allows."""
        while True:
            try:
                return attempt(self.chosen)
            except Exception as error:
                self._next_after(error)

    async def arun(self, attempt: Callable[[Candidate[M]], Awaitable[T]]) -> T:
        """Async :meth:`run`."""
        while True:
            try:
                return await attempt(self.chosen)
            except Exception as error:
                self._next_after(error)

    def stream(self, start: Callable[[Candidate[M]], Iterable[T]]) -> Iterator[T]:
        """The chosen candidate's chunks (``start(candidate)`` returns them), started when the
        first chunk is read; falls back while no chunk has arrived, then is committed."""
        return self._relay(None, start)

    def open_stream(self, start: Callable[[Candidate[M]], Iterable[T]]) -> Iterator[T]:
        """:meth:`stream`, with the chosen candidate's stream started now, so that a failure
        at its start (and the fallback's start) happens in the caller's call."""
        return self._relay(self._open(start), start)

    def _open(self, start: Callable[[Candidate[M]], Iterable[T]]) -> Iterator[T]:
        return self.run(lambda candidate: iter(start(candidate)))

    def _relay(
        self, chunks: Iterator[T] | None, start: Callable[[Candidate[M]], Iterable[T]]
    ) -> Iterator[T]:
        while True:
            if chunks is None:
                chunks = self._open(start)
            try:
                first = next(chunks)
            except StopIteration:
                return
            except Exception as error:
                self._next_after(error)
                chunks = None
                continue
            yield first
            yield from chunks
            return

    async def astream(
        self, start: Callable[[Candidate[M]], Awaitable[AsyncIterator[T]]]
    ) -> AsyncIterator[T]:
        """Async :meth:`stream`: ``start(candidate)`` is awaited for the chunks."""
        async for chunk in self._arelay(None, start):
            yield chunk

    async def aopen_stream(
        self, start: Callable[[Candidate[M]], Awaitable[AsyncIterator[T]]]
    ) -> AsyncIterator[T]:
        """Async :meth:`open_stream`."""
        return self._arelay(await self._aopen(start), start)

    async def _aopen(
        self, start: Callable[[Candidate[M]], Awaitable[AsyncIterator[T]]]
    ) -> AsyncIterator[T]:
        return await self.arun(start)

    async def _arelay(
        self,
        chunks: AsyncIterator[T] | None,
        start: Callable[[Candidate[M]], Awaitable[AsyncIterator[T]]],
    ) -> AsyncIterator[T]:
        while True:
            if chunks is None:
                chunks = await self._aopen(start)
            try:
                first = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except Exception as error:
                self._next_after(error)
                chunks = None
                continue
            yield first
            async for chunk in chunks:
                yield chunk
            return

    def tagged(
        self,
        chunks: Iterable[T],
        tag: Callable[[T, RoutingDecision, bool], T],
        end: Callable[[list[T], str], None],
    ) -> Iterator[T]:
        """Relay ``chunks`` (a driver's stream), each tagged by ``tag(chunk, decision, first)``,
        then ``end(tagged, outcome)`` once, however the stream ends (an adapter finishes the
        call there, passing ``outcome`` to :meth:`finish`): ``"complete"`` after the last chunk
        (also after no chunk at all); after at least one chunk, ``"broken"`` when reading the
        model's stream raised an ``Exception`` (then raised on), ``"cancelled"`` when the
        consumer stopped reading (closed the generator, e.g. a ``break``; or a
        ``KeyboardInterrupt``). A stream that fails before its first chunk (after any fallback)
        is raised without ``end``: nothing was answered. An error in ``end`` is logged, never
        raised (the chunks have reached the consumer)."""
        seen: list[T] = []
        outcome = "cancelled"
        iterator = iter(chunks)
        try:
            while True:
                try:
                    seen.append(tag(next(iterator), self.decision, not seen))  # type: ignore[arg-type]
                except StopIteration:
                    outcome = "complete"
                    return
                except Exception:
                    outcome = "broken"
                    raise
                yield seen[-1]
        finally:
            _ended(end, seen, outcome)

    async def atagged(
        self,
        chunks: AsyncIterator[T],
        tag: Callable[[T, RoutingDecision, bool], T],
        end: Callable[[list[T], str], None],
    ) -> AsyncIterator[T]:
        """Async :meth:`tagged`; ``"cancelled"`` also when the reading task is cancelled
        (``asyncio.CancelledError``) or the generator is closed (``aclose()``; an abandoned
        async generator is closed by its event loop once it is garbage)."""
        seen: list[T] = []
        outcome = "cancelled"
        try:
            while True:
                try:
                    seen.append(tag(await chunks.__anext__(), self.decision, not seen))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    outcome = "complete"
                    return
                except Exception:
                    outcome = "broken"
                    raise
                yield seen[-1]
        finally:
            _ended(end, seen, outcome)

    # -- finishing ----------------------------------------------------------------------------

    def finish(
        self,
        answer: Answer,
        *,
        shadow: Callable[[Candidate[M]], Answer] | None = None,
        outcome: str = "complete",
        estimate_tokens: bool = False,
    ) -> None:
        """Account the answered call once, into the sinks there are: its cost (tokens the model
        did not report are counted with cl100k and flagged; without a cost sink, only with
        ``estimate_tokens``), one routing-log row, and a shadow offer (``shadow`` makes the same
        call on another candidate, in a background thread). Never raises: the call has been
        answered, so a failure here is logged (logger ``routellm_base.routed_call``).

        ``outcome`` says how the answer ended: ``"complete"``, or, for an answer cut short
        (``answer`` then holds what was answered until then), ``"cancelled"`` (the caller went
        away) or ``"broken"`` (the model failed after its first chunk); such a call is logged
        but never offered for a shadow comparison. ``estimate_tokens``: with no cost tracker,
        still count the tokens the answer lacks (the call's turns, the answer's text, cl100k)
        for the log, flagged ``tokens_estimated`` (``False`` when the model reported both).
        """
        try:
            self._finish(answer, shadow, outcome, estimate_tokens)
        except Exception:
            logger.exception("bookkeeping of an answered call failed")

    def _finish(
        self,
        answer: Answer,
        shadow: Callable[[Candidate[M]], Answer] | None,
        outcome: str,
        estimate_tokens: bool,
    ) -> None:
        decision, sinks = self.decision, self.sinks
        assert decision is not None, "decide() first"
        tokens = (answer.input_tokens, answer.output_tokens, None, None)
        # Counted from the text only when the model reported no tokens.
        input_text = None if answer.input_tokens is not None else _input_text(self.turns)
        if sinks.costs is not None:
            cost = sinks.costs.record(
                decision.side,  # type: ignore[arg-type]
                decision.model,
                input_tokens=answer.input_tokens,
                output_tokens=answer.output_tokens,
                input_text=input_text,
                output_text=answer.text,
            )
            tokens = (cost.input_tokens, cost.output_tokens, cost.estimated, cost.cost)
        elif estimate_tokens and sinks.log is not None:
            counted = count_tokens(
                answer.input_tokens, answer.output_tokens, input_text, answer.text
            )
            tokens = (counted[0], counted[1], counted[2], None)
        if sinks.log is not None:
            sinks.log.record(
                decision,
                conversation=self.turns,
                checkpoint_id=decision.checkpoint_id,
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                tokens_estimated=tokens[2],
                cost_usd=tokens[3],
                latency_seconds=time.perf_counter() - self.started,
                candidates=self.names,
                outcome=outcome,
            )
        if shadow is not None and sinks.shadow is not None and outcome == "complete":
            if decision.pool is not None:
                # A sampled other candidate, so the log explores the whole pool; the runner
                # draws it with its own (seedable) generator and stores the pair by price.
                pool = self.engine.pool  # type: ignore[union-attr]
                sinks.shadow.submit_pool(
                    decision,
                    conversation=self.turns,
                    answer=answer.text,
                    others={
                        c.key: (lambda c=c: shadow(c))
                        for c in self.candidates
                        if c.key != decision.side
                    },
                    ranking=pool_ranking(pool),
                )
                return
            other = next(c for c in self.candidates if c.key != decision.side)
            sinks.shadow.submit(
                decision,
                conversation=self.turns,
                answer=answer.text,
                call_other=lambda: shadow(other),
                candidates=self.names,
            )


def pool_ranking(pool: Any) -> list[str]:
    """A pool's model names, priciest first by expected cost at a 500-token prompt (ties in the
    pool's order): the order a shadow comparison's pair is stored in (pricier model as
    ``strong_model``), the same for every call of that pair."""
    costs = pool.expected_costs([500.0])[0]
    return [pool.names[i] for i in sorted(range(len(pool.names)), key=lambda i: -costs[i])]


def checked_force(force: Any, keys: Sequence[str] = ("strong", "weak")) -> str | None:
    """``force`` if it is ``None`` or one of the candidate ``keys``; :class:`RoutingInputError`
    names the argument and the keys otherwise (checked before anything is called, e.g. before
    tools are prepared)."""
    if force is not None and force not in keys:
        choices = " or ".join(repr(k) for k in keys)
        raise RoutingInputError(f"{FORCE_KWARG} must be {choices}, got {force!r}")
    return force


def _ended(end: Callable[[list[T], str], None], seen: list[T], outcome: str) -> None:
    """``end(seen, outcome)`` for a stream that ended ``outcome`` having relayed ``seen``;
    nothing for one that failed or was stopped before its first chunk (nothing answered)."""
    if outcome != "complete" and not seen:
        return
    try:
        end(seen, outcome)
    except Exception:
        logger.exception("bookkeeping of a streamed call failed")


def _caused_by(error: BaseException, other: BaseException) -> bool:
    """Whether ``other`` is already in ``error``'s chain of causes (chaining ``other`` to
    ``error`` would then make a cycle)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if cause is other:
            return True
        seen.add(id(cause))
        cause = cause.__cause__
    return False


def _input_text(turns: Sequence[ChatTurn] | str) -> str:
    return "\n".join(text for _, text in turn_texts(turns))
