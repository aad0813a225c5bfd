"""The routing log's tables (SQLAlchemy Core), at the newest schema version.

Migrations in ``migrations/versions`` build exactly these tables; a test checks that the two
agree, so a change here needs a new migration.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

VERSION_TABLE = "routellm_log_version"
"""Alembic's version table, named for this log so a shared database keeps its own."""

metadata = MetaData()

decisions = Table(
    "routellm_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(32), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("router", String(200), nullable=False),
    Column("checkpoint_id", String(64)),
    Column("threshold", Float),
    Column("side", String(200), nullable=False),
    Column("win_rate", Float),
    Column("model", String(200), nullable=False),
    Column("strong_model", String(200)),
    Column("weak_model", String(200)),
    Column("forced", Boolean, nullable=False),
    Column("fallback_from", String(200)),
    Column("fallback_reason", Text),
    Column("routing_text_source", String(32)),
    Column("routing_text_tokens", Integer),
    Column("no_known_tokens", Boolean, nullable=False),
    Column("routing_seconds", Float, nullable=False),
    Column("latency_seconds", Float),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("tokens_estimated", Boolean),
    Column("cost_usd", Float),
    Column("prompt_hash", String(64)),
    Column("prompt", Text),
    Column("extra", Text),
    Column("outcome", String(16), nullable=False, default="complete", server_default="complete"),
    Column("pool_policy", String(32)),
    Column("pool_knob", Float),
    Column("pool_cost_weight", Float),
    Column("pool_max_cost", Float),
    Column("expected_cost_usd", Float),
)
"""One row per routed call, written after the answer.

``outcome`` says how the answer ended (:data:`OUTCOMES`): ``"complete"`` (it reached its end),
``"cancelled"`` (the caller went away mid-answer, e.g. a client that closed a stream) or
``"broken"`` (the model failed or timed out after its first chunk). A row that is not complete
holds the tokens of what was answered before it ended (usually estimated, since the usage
report comes last: ``tokens_estimated``); rows written before schema 4 are all complete.

Between two models ``side`` is ``"strong"`` or ``"weak"`` and ``threshold`` the win-rate
threshold. A call routed among a pool of several models (:mod:`routellm_base.pool`, schema 5)
has the chosen model's name in ``side`` and ``model`` (``fallback_from``: the model first
chosen), no ``threshold`` nor ``win_rate``, and: ``pool_policy`` (``cost_weight``,
``quality_tolerance``, ``budget`` or ``forced``), ``pool_knob`` (lambda in quality per USD per
1,000 calls, tau, or the budget in USD per 1,000 calls), ``pool_cost_weight`` (the lambda the
choice used: a budget's solved one), ``pool_max_cost`` (USD per call, the call's cap if any)
and ``expected_cost_usd`` (the chosen model's expected cost, USD per call); each candidate's
prediction is a :data:`pool_candidates` row. ``pool_policy`` is NULL on every two-model row."""

OUTCOMES = ("complete", "cancelled", "broken")
"""The values of ``routellm_decisions.outcome``."""

pool_candidates = Table(
    "routellm_pool_candidates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(32), nullable=False, index=True),
    Column("model", String(200), nullable=False),
    Column("quality", Float),
    Column("expected_cost_usd", Float),
    Column("rank", Integer),
)
"""One row per candidate of a pool decision (schema 5), written with its decision row (same
``call_id``): the candidate's ``model`` name, its predicted ``quality`` in [0, 1] (NULL when the
router did not score the call: forced, no known token, or a pool of one), its
``expected_cost_usd`` (USD per call) and its ``rank`` in the policy's fallback order (0: the policy's
choice; NULL: the call could not go to it, not allowed or over ``max_cost``)."""

settings = Table(
    "routellm_log_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
"""Per-log settings; ``prompt_hash_salt`` is the salt of every ``prompt_hash`` in this log."""

comparisons = Table(
    "routellm_comparisons",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(32), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("answered_side", String(6), nullable=False),
    Column("strong_model", String(200)),
    Column("weak_model", String(200)),
    Column("strong_answer", Text),
    Column("weak_answer", Text),
    Column("shadow_error", Text),
    Column("shadow_latency_seconds", Float),
    Column("shadow_input_tokens", Integer),
    Column("shadow_output_tokens", Integer),
    Column("shadow_cost_usd", Float),
    Column("verdict", String(6)),
    Column("verdict_source", String(16)),
    Column("judge_model", String(200)),
    Column("judged_at", DateTime(timezone=True)),
    Column("strong_first_verdict", String(1)),
    Column("weak_first_verdict", String(1)),
    Column("strong_first_judgment", Text),
    Column("weak_first_judgment", Text),
    Column("unparseable", Integer, nullable=False, default=0, server_default="0"),
    Column("judge_error", Text),
)
"""One row per shadow comparison: the call (``call_id``, a decision's) was also sent to the side
that did not answer it (``answered_side`` is the side the user got), after the user's answer.

In a pool, the shadow call goes to a sampled other candidate, and the pair is stored the same
way: ``strong_model`` is the pricier model of the two (its expected cost at a 500-token prompt;
the pool's order breaks a tie), ``weak_model`` the cheaper one, so a verdict names a model and
the rows are pairwise battles between named pool models (see
:func:`routellm_base.log.training_data.pool_battles`).

* ``strong_answer`` / ``weak_answer``: the two answers, redacted, only with ``store_prompts``
  (else NULL); ``shadow_error``: ``"<Type>: <message>"`` when the shadow call raised (NULL when
  it answered); the shadow call's latency, tokens and cost where known.
* ``verdict``: ``"strong"``, ``"weak"`` or ``"tie"``, NULL until judged or when the judgment was
  unreadable; ``verdict_source``: ``"judge"`` (an LLM judge) or ``"golden"`` (a human's label
  written into the row); ``strong_first_verdict`` / ``weak_first_verdict``: the judge's parsed
  ``A``/``B``/``C`` in each answer order (NULL: unreadable); ``strong_first_judgment`` /
  ``weak_first_judgment``: the judge's raw text in that order when it had no readable verdict
  (redacted, only with ``store_prompts``; NULL when readable), so a reader can see why;
  ``unparseable``: how many of this item's judgments (all judging runs together) had no
  readable verdict; ``judge_error``: the judge call's failure, if any.
"""

feedback = Table(
    "routellm_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(32), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("rating", Integer),
    Column("label", String(6)),
    Column("source", String(64), nullable=False),
)
"""User feedback and golden labels on a call (its decision's ``call_id``): ``rating`` +1 (thumbs
up) or -1 (thumbs down) on the answer the user got, and/or ``label``, the side that answers
better (``"strong"``, ``"weak"`` or ``"tie"``); ``source`` says who gave it (``"user"``,
``"golden"``, an app's name)."""
