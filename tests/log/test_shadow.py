"""Shadow comparisons in the engine: sampling, the background call, judging, failures, feedback,
all written to a real SQLite log."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest
from log_helpers import decision

from routellm_base.errors import RoutingInputError
from routellm_base.judging import PairwiseJudge, judge_messages
from routellm_base.log import RoutingLog, read_comparisons, read_decisions, read_feedback
from routellm_base.shadow import ShadowAnswer, ShadowRunner


def scripted_judge(script: dict[tuple[str, str], str] | None = None) -> PairwiseJudge:
    """A judge that names the answer starting with "good" (``[[C]]`` when both or neither do);
    ``script`` overrides the judgment for an ``(answer shown as A, answer shown as B)`` pair."""
    script = script or {}

    def chat(messages: list[dict[str, str]]) -> str:
        user = messages[1]["content"]
        a = user.split("[The Start of Assistant A's Answer]\n")[1].split("\n[The End")[0]
        b = user.split("[The Start of Assistant B's Answer]\n")[1].split("\n[The End")[0]
        if (a, b) in script:
            return script[(a, b)]
        good_a, good_b = a.startswith("good"), b.startswith("good")
        return "[[A]]" if good_a and not good_b else "[[B]]" if good_b and not good_a else "[[C]]"

    return PairwiseJudge(chat, "scripted-judge")


def shadow_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "routellm-shadow"]


def wait_no_shadow_threads() -> None:
    for thread in shadow_threads():
        thread.join(timeout=10)
    assert shadow_threads() == []


def test_a_sampled_call_gets_both_answers_judged_in_one_comparison_row(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db", store_prompts=True, prices={"w": (1.0, 2.0)})
    runner = ShadowRunner(log, 1.0, judge=scripted_judge())
    d = decision("strong")
    log.record(d, conversation="What is 2+2?", strong_model="s", weak_model="w")
    queued = runner.submit(
        d,
        conversation="What is 2+2?",
        answer="good: 4",
        call_other=lambda: ShadowAnswer("bad: 5", input_tokens=1000, output_tokens=500),
        strong_model="s",
        weak_model="w",
    )
    assert queued
    assert runner.flush(10) and log.flush(10)
    (row,) = read_comparisons(tmp_path / "log.db")
    assert row["call_id"] == d.call_id == read_decisions(tmp_path / "log.db")[0]["call_id"]
    assert (row["answered_side"], row["strong_model"], row["weak_model"]) == ("strong", "s", "w")
    assert (row["strong_answer"], row["weak_answer"]) == ("good: 4", "bad: 5")
    assert (row["verdict"], row["verdict_source"], row["judge_model"]) == (
        "strong",
        "judge",
        "scripted-judge",
    )
    assert (row["strong_first_verdict"], row["weak_first_verdict"]) == ("A", "B")
    assert row["unparseable"] == 0 and row["shadow_error"] is None and row["judge_error"] is None
    assert row["judged_at"] is not None and row["shadow_latency_seconds"] >= 0
    assert (row["shadow_input_tokens"], row["shadow_output_tokens"]) == (1000, 500)
    assert row["shadow_cost_usd"] == pytest.approx(0.002)  # the weak model's price
    stats = runner.stats()
    assert (stats.sampled, stats.answered, stats.judged, stats.failed) == (1, 1, 1, 0)
    log.close()
    wait_no_shadow_threads()


def test_the_caller_never_waits_for_the_shadow_call(tmp_path: Path) -> None:
    # The shadow call blocks until the test releases it; submit has returned long before.
    log = RoutingLog(tmp_path / "log.db")
    runner = ShadowRunner(log, 1.0)
    started, release = threading.Event(), threading.Event()

    def slow_other() -> ShadowAnswer:
        started.set()
        release.wait(10)
        return ShadowAnswer("late")

    assert runner.submit(decision(), conversation="q", answer="a", call_other=slow_other)
    assert started.wait(10)  # running in the background ...
    assert runner.stats().pending == 1 and log.stats().recorded == 0
    release.set()  # ... and only recorded once it answers
    assert runner.flush(10) and log.flush(10)
    assert len(read_comparisons(tmp_path / "log.db")) == 1
    log.close()


def test_a_failing_shadow_call_is_recorded_and_never_raised(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db", store_prompts=True)
    runner = ShadowRunner(log, 1.0, judge=scripted_judge())

    def failing() -> ShadowAnswer:
        raise ConnectionError("weak endpoint down")

    assert runner.submit(decision("strong"), conversation="q", answer="good", call_other=failing)
    assert runner.flush(10) and log.flush(10)
    (row,) = read_comparisons(tmp_path / "log.db")
    assert row["shadow_error"] == "ConnectionError: weak endpoint down"
    assert (row["strong_answer"], row["weak_answer"], row["verdict"]) == ("good", None, None)
    assert row["judge_model"] is None  # nothing to judge
    stats = runner.stats()
    assert (stats.shadow_failed, stats.answered, stats.judged, stats.failed) == (1, 0, 0, 0)
    log.close()


def test_a_failing_judge_is_recorded_and_never_raised(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db", store_prompts=True)

    def broken(messages: list[dict[str, str]]) -> str:
        raise TimeoutError("judge timed out")

    runner = ShadowRunner(log, 1.0, judge=PairwiseJudge(broken, "j"))
    runner.submit(decision(), conversation="q", answer="a", call_other=lambda: ShadowAnswer("b"))
    assert runner.flush(10) and log.flush(10)
    (row,) = read_comparisons(tmp_path / "log.db")
    assert row["judge_error"] == "TimeoutError: judge timed out" and row["verdict"] is None
    assert (row["strong_answer"], row["weak_answer"]) == ("a", "b")  # kept for a later judge
    assert runner.stats().judge_failed == 1
    log.close()


def _submit_good_bad_and_fine_fine(runner: ShadowRunner) -> None:
    # Strong answered "good" (the shadow weak side: "bad"); weak answered "fine" (strong: "fine").
    runner.submit(
        decision("strong"), conversation="q", answer="good", call_other=lambda: ShadowAnswer("bad")
    )
    runner.submit(
        decision("weak"), conversation="q", answer="fine", call_other=lambda: ShadowAnswer("fine")
    )


def test_unparseable_judgments_are_counted_never_guessed(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db", store_prompts=True)
    # Strong-first order readable ([[A]]), weak-first order says nothing parseable.
    judge = scripted_judge({("bad", "good"): "I think both are fine."})
    runner = ShadowRunner(log, 1.0, judge=judge)
    _submit_good_bad_and_fine_fine(runner)
    assert runner.flush(10) and log.flush(10)
    rows = {r["weak_answer"]: r for r in read_comparisons(tmp_path / "log.db")}
    first, second = rows["bad"], rows["fine"]  # written by parallel workers, in either order
    assert (first["verdict"], first["unparseable"]) == (None, 1)
    assert (first["strong_first_verdict"], first["weak_first_verdict"]) == ("A", None)
    assert first["verdict_source"] is None and first["judge_model"] == "scripted-judge"
    assert (second["verdict"], second["unparseable"]) == ("tie", 0)
    stats = runner.stats()
    assert (stats.judged, stats.unparseable) == (1, 1)
    log.close()


@pytest.mark.parametrize("store_prompts", [True, False])
def test_an_unparseable_judgment_is_stored_redacted_beside_the_empty_verdict(
    tmp_path: Path, store_prompts: bool
) -> None:
    # An unreadable verdict was counted, but the judge's text was kept nowhere: nobody could
    # see why it failed. It is stored (redacted) with the answers, under the same setting.
    log = RoutingLog(
        tmp_path / "log.db", store_prompts=store_prompts, redact=lambda t: t.replace("42", "##")
    )
    judge = scripted_judge({("bad", "good"): "Both fine; the answer is 42."})
    runner = ShadowRunner(log, 1.0, judge=judge)
    _submit_good_bad_and_fine_fine(runner)
    assert runner.flush(10) and log.flush(10)
    rows = {r["call_id"]: r for r in read_comparisons(tmp_path / "log.db")}
    unreadable = next(r for r in rows.values() if r["unparseable"])
    readable = next(r for r in rows.values() if not r["unparseable"])
    assert (unreadable["verdict"], unreadable["weak_first_verdict"]) == (None, None)
    expected = "Both fine; the answer is ##." if store_prompts else None
    assert unreadable["weak_first_judgment"] == expected
    assert unreadable["strong_first_judgment"] is None  # readable ([[A]]): its verdict says it
    assert (readable["strong_first_judgment"], readable["weak_first_judgment"]) == (None, None)
    log.close()


def test_sampling_is_seeded_and_skips_fallbacks(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db")

    def draws(seed: int) -> list[bool]:
        runner = ShadowRunner(log, 0.25, seed=seed)
        out = [
            runner.submit(
                decision(), conversation="q", answer="a", call_other=lambda: ShadowAnswer("b")
            )
            for _ in range(400)
        ]
        assert runner.flush(30)
        return out

    first, again, other = draws(7), draws(7), draws(8)
    assert first == again and first != other
    assert 60 < sum(first) < 140  # 25% of 400, well inside the binomial spread
    runner = ShadowRunner(log, 1.0)
    fell_back = replace(decision("weak"), fallback_from="strong", fallback_reason="X: y")
    assert not runner.submit(
        fell_back, conversation="q", answer="a", call_other=lambda: ShadowAnswer("b")
    )
    assert runner.stats().offered == 1 and runner.stats().sampled == 0
    log.close()
    wait_no_shadow_threads()


def test_a_full_queue_drops_and_counts_and_threads_end_when_idle(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db")
    runner = ShadowRunner(log, 1.0, max_pending=3, workers=2)
    release = threading.Event()

    def blocked() -> ShadowAnswer:
        release.wait(10)
        return ShadowAnswer("b")

    results = [
        runner.submit(decision(), conversation="q", answer="a", call_other=blocked)
        for _ in range(5)
    ]
    assert results == [True, True, True, False, False]
    assert len(shadow_threads()) <= 2  # at most `workers` threads
    release.set()
    assert runner.flush(10) and log.flush(10)
    stats = runner.stats()
    assert (stats.sampled, stats.dropped, stats.answered, stats.pending) == (5, 2, 3, 0)
    assert len(read_comparisons(tmp_path / "log.db")) == 3
    wait_no_shadow_threads()  # no worker outlives its queue
    assert runner.close(1)
    assert not runner.submit(decision(), conversation="q", answer="a", call_other=blocked)
    assert runner.stats().dropped == 3
    log.close()


def test_answers_follow_store_prompts_and_the_redaction_hook(tmp_path: Path) -> None:
    for store in (False, True):
        path = tmp_path / f"log-{store}.db"
        log = RoutingLog(path, store_prompts=store, redact=lambda t: t.replace("secret", "[x]"))
        runner = ShadowRunner(log, 1.0)
        runner.submit(
            decision(),
            conversation="q",
            answer="my secret",
            call_other=lambda: ShadowAnswer("secret too"),
        )
        assert runner.flush(10) and log.flush(10)
        (row,) = read_comparisons(path)
        expected = ("my [x]", "[x] too") if store else (None, None)
        assert (row["strong_answer"], row["weak_answer"]) == expected
        log.close()


def test_the_judge_sees_both_orders_of_the_real_question() -> None:
    seen: list[list[dict[str, str]]] = []

    def chat(messages: list[dict[str, str]]) -> str:
        seen.append(messages)
        return "[[A]]"

    verdict = PairwiseJudge(chat, "j").judge("Q?", "S", "W")
    assert seen == [judge_messages("Q?", "S", "W"), judge_messages("Q?", "W", "S")]
    # [[A]] in both orders names a different answer each time: a disagreement, so a tie.
    assert verdict.winner == "tie" and verdict.unparseable == 0


def test_feedback_rows_and_bad_feedback_errors(tmp_path: Path) -> None:
    log = RoutingLog(tmp_path / "log.db")
    d = decision("weak")
    log.feedback(d.call_id, rating=-1)
    log.feedback(d.call_id, label="strong", source="golden")
    log.feedback(d.call_id, rating=1, label="tie", source="reviewer")
    for bad, message in (
        ({"rating": 2}, "rating must be 1"),
        ({"rating": True}, "rating must be 1"),
        ({"label": "model_a"}, "label must be one of"),
        ({}, "give a rating, a label or both"),
        ({"rating": 1, "source": ""}, "source must be"),
    ):
        with pytest.raises(RoutingInputError, match=message):
            log.feedback(d.call_id, **bad)
    with pytest.raises(RoutingInputError, match="call_id"):
        log.feedback("", rating=1)
    assert log.flush(10)
    rows = read_feedback(tmp_path / "log.db")
    assert [(r["call_id"], r["rating"], r["label"], r["source"]) for r in rows] == [
        (d.call_id, -1, None, "user"),
        (d.call_id, None, "strong", "golden"),
        (d.call_id, 1, "tie", "reviewer"),
    ]
    log.close()


def test_a_decision_recorded_twice_loses_only_the_duplicate_row(tmp_path: Path) -> None:
    # call_id is unique per decision row: a caller recording one decision twice must not cost
    # the other rows of the same write batch.
    import sqlite3

    log = RoutingLog(tmp_path / "log.db")
    d = decision()
    log.record(d)
    assert log.flush(10)
    blocker = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer waits on this lock, so the records queue up
    for record in (decision(), d, decision()):
        log.record(record)
    blocker.execute("COMMIT")
    blocker.close()
    assert log.flush(10)
    stats = log.stats()
    assert (stats.written, stats.failed) == (3, 1) and "UNIQUE" in (stats.last_error or "")
    assert len(read_decisions(tmp_path / "log.db")) == 3
    log.close()


def test_every_decision_carries_a_fresh_call_id_kept_through_fallback() -> None:
    a, b = decision(), decision()
    assert len(a.call_id) == 32 and a.call_id != b.call_id
    assert a.fell_back("other", RuntimeError("x")).call_id == a.call_id
    assert a.to_dict()["call_id"] == a.call_id


def test_submit_never_raises_even_when_bookkeeping_fails(tmp_path: Path) -> None:
    class BrokenSink:
        def record_comparison(self, comparison: object) -> None:
            raise RuntimeError("sink broke")

    runner = ShadowRunner(BrokenSink(), 1.0)
    assert runner.submit(
        decision(), conversation="q", answer="a", call_other=lambda: ShadowAnswer("b")
    )
    assert runner.flush(10)
    stats = runner.stats()
    assert stats.failed == 1 and stats.last_error == "RuntimeError: sink broke"
    with pytest.raises(RoutingInputError, match="shadow_rate"):
        ShadowRunner(BrokenSink(), 1.5)
