"""From a routing log to training data: judging stored comparisons, the documented mapping of
verdicts, golden labels and ratings to battles, and logged prompts for calibration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from log_helpers import decision

from routellm_base.cli import main
from routellm_base.errors import RouteLLMError, RoutingInputError
from routellm_base.judging import PairwiseJudge
from routellm_base.log import RoutingLog, read_comparisons
from routellm_base.log.judge_log import judge_log
from routellm_base.log.training_data import labelled_calls, logged_prompts
from routellm_base.shadow import ShadowAnswer, ShadowRunner


def good_answer_judge(replies: dict[str, str] | None = None) -> PairwiseJudge:
    """Names the answer starting with "good"; ``replies`` maps a question to a fixed judgment."""
    replies = replies or {}
    calls: list[str] = []

    def chat(messages: list[dict[str, str]]) -> str:
        user = messages[1]["content"]
        question = user.split("[User Question]\n")[1].split("\n\n[The Start")[0]
        calls.append(question)
        if question in replies:
            return replies[question]
        shown_a = user.split("[The Start of Assistant A's Answer]\n")[1]
        return "[[A]]" if shown_a.startswith("good") else "[[B]]"

    judge = PairwiseJudge(chat, "scripted")
    judge.calls = calls  # type: ignore[attr-defined]
    return judge


def logged_call(
    log: RoutingLog,
    runner: ShadowRunner | None,
    prompt: str,
    side: str,
    answer: str,
    other: str | Exception,
) -> str:
    """One routed call (and its shadow comparison, with a runner); returns its call_id."""
    d = decision(side, win_rate=0.6)
    log.record(
        d, conversation=[{"role": "user", "content": prompt}], strong_model="S", weak_model="W"
    )

    def call_other() -> ShadowAnswer:
        if isinstance(other, Exception):
            raise other
        return ShadowAnswer(other)

    if runner is not None:
        runner.submit(
            d,
            conversation=prompt,
            answer=answer,
            call_other=call_other,
            strong_model="S",
            weak_model="W",
        )
    return d.call_id


def test_judging_a_log_writes_verdicts_and_counts_what_it_could_not_judge(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    runner = ShadowRunner(log, 1.0)  # no in-process judge: comparisons wait
    logged_call(log, runner, "q1", "strong", "good s", "bad w")
    logged_call(log, runner, "q2", "weak", "good w", "bad s")
    logged_call(log, runner, "q3", "weak", "w", ConnectionError("down"))  # nothing to judge
    logged_call(log, runner, "q4", "strong", "s", "w")  # unreadable verdict below
    assert runner.flush(10) and log.flush(10)
    judge = good_answer_judge({"q4": "no verdict here"})
    counts = judge_log(path, judge)
    assert counts == {
        "items": 3,
        "judged": 2,
        "strong_wins": 1,
        "weak_wins": 1,
        "ties": 0,
        "unparseable": 1,
        "skipped_unparseable_before": 0,
        "skipped_no_text": 0,
        "left_by_limit": 0,
    }
    rows = {r["strong_answer"]: r for r in read_comparisons(path)}
    assert rows["good s"]["verdict"] == "strong" and rows["bad s"]["verdict"] == "weak"
    assert (
        rows["good s"]["verdict_source"] == "judge" and rows["good s"]["judge_model"] == "scripted"
    )
    assert (rows["s"]["verdict"], rows["s"]["unparseable"]) == (None, 2)
    # the judge's own words, so a reader can see why no verdict was read
    assert (rows["s"]["strong_first_judgment"], rows["s"]["weak_first_judgment"]) == (
        "no verdict here",
        "no verdict here",
    )
    assert rows["good s"]["strong_first_judgment"] is None  # readable: nothing extra stored
    assert rows[None]["shadow_error"] == "ConnectionError: down" and rows[None]["verdict"] is None
    # A second run leaves judged and unreadable items alone ...
    again = judge_log(path, judge)
    assert again["items"] == 0 and again["skipped_unparseable_before"] == 1
    # ... unless asked to retry the unreadable ones; the count of unreadable judgments grows.
    retried = judge_log(path, judge, retry_unparseable=True)
    assert retried["unparseable"] == 1
    assert {r["strong_answer"]: r for r in read_comparisons(path)}["s"]["unparseable"] == 4
    assert judge.calls.count("q4") == 4  # type: ignore[attr-defined]
    # a retry that reads a verdict clears the unreadable text it replaces
    fixed = judge_log(path, good_answer_judge({"q4": "[[C]]"}), retry_unparseable=True)
    assert fixed["judged"] == 1
    row = {r["strong_answer"]: r for r in read_comparisons(path)}["s"]
    assert (row["verdict"], row["strong_first_judgment"], row["weak_first_judgment"]) == (
        "tie",
        None,
        None,
    )
    log.close()


def test_judging_a_log_with_a_limit_counts_what_it_left_waiting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "--retry-unparseable --limit 5" said "unparseable before (not retried) 0" and nothing of
    # the items the limit left: they are counted, and the command line says so.
    import importlib.util

    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    runner = ShadowRunner(log, 1.0)
    for i in range(4):
        logged_call(log, runner, f"q{i}", "strong", f"s{i}", f"w{i}")
    assert runner.flush(10) and log.flush(10)
    counts = judge_log(path, good_answer_judge({"q0": "?", "q1": "?", "q2": "?", "q3": "?"}))
    assert counts["unparseable"] == 4
    counts = judge_log(path, good_answer_judge(), retry_unparseable=True, limit=1)
    assert (counts["items"], counts["judged"], counts["left_by_limit"]) == (1, 1, 3)
    assert counts["skipped_unparseable_before"] == 0
    spec = importlib.util.spec_from_file_location(
        "judge_limit_local_openai_server",
        Path(__file__).parents[1] / "train" / "local_openai_server.py",
    )
    assert spec is not None and spec.loader is not None
    server_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server_mod)
    with server_mod.LocalOpenAIServer(lambda messages, max_tokens: ("[[C]]", 10, 1)) as server:
        argv = ["judge", "--log", str(path), "--judge-model", "j", "--base-url", server.url,
                "--api-key-env", "ROUTELLM_TEST_UNSET_KEY", "--retry-unparseable", "--limit", "1"]  # fmt: skip
        assert main(argv) == 0
    out = capsys.readouterr().out
    # A trial: "judged 5 of 5 waiting comparisons ... left waiting by --limit 25" (30 waited).
    assert "judged 1 of 3 waiting comparisons (2 left waiting by --limit) in " in out
    assert "unparseable before (not retried) 0; 2 requests" in out
    log.close()


def test_judging_a_log_redacts_the_stored_unreadable_judgment(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    logged_call(log, ShadowRunner(log, 1.0), "q", "strong", "s", "w")
    assert log.flush(10)
    judge = good_answer_judge({"q": "key sk-123 leaked, no verdict"})
    judge_log(path, judge, redact=lambda t: t.replace("sk-123", "[key]"))
    [row] = read_comparisons(path)
    assert row["strong_first_judgment"] == "key [key] leaked, no verdict"
    with pytest.raises(RoutingInputError, match="redact"):
        judge_log(path, judge, redact="not callable")  # type: ignore[arg-type]
    log.close()


def test_judging_a_log_without_stored_text_names_store_prompts(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = RoutingLog(path)  # store_prompts off: prompts and answers are not kept
    runner = ShadowRunner(log, 1.0)
    logged_call(log, runner, "q", "strong", "s", "w")
    assert runner.flush(10) and log.flush(10)
    with pytest.raises(RouteLLMError, match="store_prompts=True"):
        judge_log(path, good_answer_judge())
    log.close()


def test_a_judge_error_stops_the_run_and_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    runner = ShadowRunner(log, 1.0)
    logged_call(log, runner, "q", "strong", "s", "w")
    assert runner.flush(10) and log.flush(10)

    def broken(messages: list[dict[str, str]]) -> str:
        raise RuntimeError("quota exhausted")

    with pytest.raises(RuntimeError, match="quota exhausted"):
        judge_log(path, PairwiseJudge(broken, "j"), concurrency=1)
    (row,) = read_comparisons(path)
    assert row["judge_error"] == "RuntimeError: quota exhausted" and row["verdict"] is None
    log.close()


def test_verdicts_golden_labels_and_ratings_become_one_battle_per_call(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    runner = ShadowRunner(log, 1.0, judge=good_answer_judge())
    judged_strong = logged_call(log, runner, "judged strong", "strong", "good", "bad")
    overruled = logged_call(log, runner, "judge overruled", "weak", "bad", "good")
    thumbs_down_weak = logged_call(log, None, "thumbs down weak", "weak", "", "")
    thumbs_up_weak = logged_call(log, None, "thumbs up weak", "weak", "", "")
    rated_strong = logged_call(log, None, "rated strong", "strong", "", "")
    changed_mind = logged_call(log, None, "changed mind", "weak", "", "")
    assert runner.flush(10)
    log.feedback(overruled, label="weak", source="golden")  # golden beats the judge's "strong"
    log.feedback(thumbs_down_weak, rating=-1)
    log.feedback(thumbs_up_weak, rating=1)
    log.feedback(rated_strong, rating=1)  # says nothing about the weak model
    log.feedback(changed_mind, rating=1)
    log.feedback(changed_mind, rating=-1)  # the newer rating wins
    log.feedback("0" * 32, label="tie")  # a call this log never saw
    assert log.flush(10)
    calls, summary = labelled_calls(path)
    got = {c.prompt: (c.winner, c.source) for c in calls}
    assert got == {
        "judged strong": ("model_a", "judge"),
        "judge overruled": ("model_b", "golden"),
        "thumbs down weak": ("model_a", "rating"),
        "thumbs up weak": ("tie", "rating"),
        "changed mind": ("model_a", "rating"),
    }
    assert [c.call_id for c in calls][:2] == [judged_strong, overruled]  # oldest first
    assert {(c.strong_model, c.weak_model) for c in calls} == {("S", "W")}
    assert summary.by_source == {"judge": 1, "golden": 1, "rating": 3}
    assert (summary.strong_side_ratings, summary.no_decision, summary.superseded) == (1, 1, 1)
    log.close()


def test_training_from_a_log_without_prompts_names_store_prompts(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = RoutingLog(path)
    call_id = logged_call(log, None, "q", "weak", "", "")
    log.feedback(call_id, rating=-1)
    assert log.flush(10)
    with pytest.raises(RouteLLMError, match="store_prompts=True"):
        labelled_calls(path)
    with pytest.raises(RouteLLMError, match="store_prompts=True"):
        logged_prompts(path)
    log.close()


def test_an_unlabelled_log_says_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    runner = ShadowRunner(log, 1.0)
    logged_call(log, runner, "q", "weak", "a", "b")
    assert runner.flush(10) and log.flush(10)
    with pytest.raises(RouteLLMError, match="1 comparisons not judged: run routellm judge --log"):
        labelled_calls(path)
    log.close()


def test_comparisons_whose_shadow_call_failed_are_not_sent_to_the_judge(
    tmp_path: Path,
) -> None:
    """A trial: comparisons whose shadow call failed were counted as "not judged: run routellm
    judge", which had nothing to judge ("judged 0 of 0 waiting"), and the report said "no
    judged comparison yet", though they can never be judged."""
    from routellm_base.log.report import build_report

    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    runner = ShadowRunner(log, 1.0)
    for i in range(3):
        logged_call(log, runner, f"q{i}", "weak", "w", RuntimeError("down"))
    assert runner.flush(10) and log.flush(10)
    with pytest.raises(RouteLLMError) as raised:
        labelled_calls(path)
    message = str(raised.value)
    assert "3 comparisons whose shadow call failed" in message
    assert "judge --log" not in message and "not judged" not in message
    report = build_report(path)
    assert (report.judged.comparisons, report.judged.shadow_failed) == (3, 3)
    assert report.to_dict()["judged"]["shadow_failed"] == 3
    text = report.format()
    assert "the 3 comparisons recorded all had their shadow call fail" in text
    assert "no judged comparison yet" not in text
    # One comparison that can be judged: it waits for the judge, the failed ones do not.
    logged_call(log, runner, "q3", "weak", "w", "s")
    assert runner.flush(10) and log.flush(10)
    with pytest.raises(RouteLLMError) as raised:
        labelled_calls(path)
    message = str(raised.value)
    assert "3 comparisons whose shadow call failed" in message
    assert f"1 comparisons not judged: run routellm judge --log {path}" in message
    text = build_report(path).format()
    assert "no judged comparison yet (4 comparisons recorded; 3 of them had their shadow" in text
    # Judged, the summary counts the failed ones apart from those still waiting.
    log.feedback(logged_call(log, None, "q4", "weak", "", ""), rating=-1)
    assert log.flush(10)
    _, summary = labelled_calls(path)
    assert (summary.unjudged_comparisons, summary.failed_shadow_comparisons) == (1, 3)
    log.close()


def test_one_model_name_on_both_sides_warns_at_construction(tmp_path: Path) -> None:
    """A trial: two stand-ins of one class (in real use two ChatOpenAI(model="default") on two
    local servers) were logged, shadowed and judged silently, then refused whole by training
    ("a model battles itself"); strong_model_name/weak_model_name, the fix, was named nowhere."""
    import itertools
    import warnings

    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from llama_index.core.llms import MockLLM

    from langchain_routellm import RouterChatModel
    from llamaindex_routellm import RouterLLM

    def canned(text: str) -> GenericFakeChatModel:
        return GenericFakeChatModel(messages=itertools.cycle([AIMessage(text)]))

    log = str(tmp_path / "log.db")
    with pytest.warns(UserWarning, match="both report the model name 'GenericFakeChatModel'") as w:
        RouterChatModel(strong=canned("s"), weak=canned("w"), log=log, shadow_rate=1.0)
    assert "strong_model_name= and weak_model_name=" in str(w[0].message)
    assert w[0].filename == __file__  # points at the caller's line, not at our code
    with pytest.warns(UserWarning, match="both report the model name 'MockLLM'") as w:
        RouterLLM(strong=MockLLM(), weak=MockLLM(), log=log)
    assert w[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RouterChatModel(
            strong=canned("s"),
            weak=canned("w"),
            log=log,
            strong_model_name="big",
            weak_model_name="small",
        )
        RouterLLM(strong=MockLLM(), weak=MockLLM(), log=log, weak_model_name="small")
        RouterChatModel(strong=canned("s"), weak=canned("w"))  # no log: nothing recorded


def test_a_log_with_one_model_name_on_both_sides_trains_on_its_sides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The log records which side answered and the verdict names a side: such a call's battle
    names the sides NAME (strong) and NAME (weak), which --model-map renames, instead of a model
    against itself that refused the whole log."""
    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    runner = ShadowRunner(log, 1.0, judge=good_answer_judge())
    for i in range(6):
        d = decision("weak", win_rate=0.6)
        prompt = f"question {i}"
        log.record(d, conversation=prompt, strong_model="default", weak_model="default")
        # The weak answer is the good one on even calls, the strong (shadow) one on odd calls.
        weak_answer, strong_answer = ("bad w", "good s") if i % 2 else ("good w", "bad s")
        runner.submit(
            d,
            conversation=prompt,
            answer=weak_answer,
            call_other=lambda text=strong_answer: ShadowAnswer(text),
            strong_model="default",
            weak_model="default",
        )
    assert runner.flush(10) and log.flush(10)
    log.close()
    calls, summary = labelled_calls(path)
    assert {(c.strong_model, c.weak_model) for c in calls} == {
        ("default (strong)", "default (weak)")
    }
    assert [c.winner for c in calls] == ["model_b", "model_a"] * 3
    assert summary.same_name_calls == {"default": 6}
    out = tmp_path / "router"
    argv = ["train", "sw_ranking", "--data", f"log:{path}", "--strong", "gpt-4o", "--weak",
            "gpt-4o-mini", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "battles itself" not in err
    assert "6 battles come from calls that logged one model name on both sides" in err
    assert "--model-map 'default (strong)=STRONG'" in err and "strong_model_name=" in err
    mapped = ["--model-map", "default (strong)=gpt-4o", "--model-map", "default (weak)=gpt-4o-mini"]
    assert main(argv + mapped) == 0, capsys.readouterr().err


QUESTIONS = [
    "What is the capital of Australia?",
    "Write a haiku about autumn leaves.",
    "How do I reverse a linked list in C?",
    "Explain the causes of the French Revolution.",
    "Suggest a name for a bakery.",
    "What is the derivative of x squared?",
    "Translate 'good morning' into Japanese.",
    "Why is the sky blue?",
    "Plan a three-day trip to Lisbon.",
    "What does a mitochondrion do?",
    "Give me a limerick about a cat.",
    "How does compound interest work?",
    "Name three jazz pianists.",
    "What is a hash table?",
]


def test_eval_finds_the_prompts_a_router_was_trained_on_in_its_routing_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: a router trained on --data log:PATH recorded 'log:PATH' as a training file, so
    eval said its training files were "missing, or their sha256 differs". Eval reads the log
    again as training read it: calls labelled or judged after training are not counted."""
    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    runner = ShadowRunner(log, 1.0)  # judged below with routellm judge's logic
    ids = []
    for i, q in enumerate(QUESTIONS[:10]):
        good = i % 2 == 0  # the strong answer wins on even calls
        ids.append(
            logged_call(
                log, runner, q, "weak", "bad w" if good else "good w", "good s" if good else "bad s"
            )  # fmt: skip
        )
    assert runner.flush(10) and log.flush(10)
    log.close()
    judge_log(path, good_answer_judge(), limit=6)  # calls 0-5 judged; 6-9 wait
    bench = tmp_path / "bench.jsonl"
    rows = [{"id": i, "prompt": q, "scores": {"S": int(i % 3 > 0), "W": i % 2}}
            for i, q in enumerate(QUESTIONS)]  # fmt: skip
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "router"
    train = ["train", "sw_ranking", "--data", f"log:{path}", "--strong", "S", "--weak", "W",
             "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(train) == 0
    config = json.loads((out / "config.json").read_text())
    [entry] = config["training"]["data"]
    assert entry["path"] == f"log:{path}" and entry["log_mark"]["comparisons"] == 10
    # The log grows after training: more calls, the waiting comparisons judged, labels on
    # calls that had none. None of these was trained on.
    with RoutingLog(path, store_prompts=True) as log:
        later = logged_call(log, None, QUESTIONS[10], "weak", "", "")
        log.feedback(later, rating=-1)
        log.feedback(ids[6], label="strong", source="golden")
    judge_log(path, good_answer_judge())
    evaluate = ["eval", "--benchmark", str(bench), "--strong", "S", "--weak", "W", "--router",
                str(out), "--no-progress", "--json"]  # fmt: skip
    capsys.readouterr()
    assert main(evaluate) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["n"] == len(QUESTIONS) - 6, row  # QUESTIONS[0:6], the judged ones, left out
    assert row["notes"][0].startswith(f"6 items left out: they are in {out}'s training data")
    assert not any("not there unchanged" in n or "log:" in n for n in row["notes"]), row
    # A checkpoint that records no mark (trained before marks were recorded): the log has
    # changed since, so which prompts were trained on cannot be told, and the note says why.
    del config["training"]["data"][0]["log_mark"]
    (out / "config.json").write_text(json.dumps(config))
    assert main(evaluate) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["n"] == len(QUESTIONS)
    [note] = [n for n in row["notes"] if "routing log" in n]
    assert f"trained on the labelled calls of the routing log {path} (it has changed" in note
    assert "are scored as unseen" in note and "sha256 differs" not in note
    path.rename(tmp_path / "moved.db")
    assert main(evaluate) == 0
    [row] = json.loads(capsys.readouterr().out)
    [note] = [n for n in row["notes"] if "routing log" in n]
    assert "cannot be read: log: no routing log at" in note


def test_logged_prompts_are_the_routed_calls_routing_texts(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    conversation = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second question"},
    ]
    log.record(decision(), conversation=conversation)
    log.record(decision(), conversation="second question")  # repeats are traffic: kept
    log.record(decision(win_rate=None), conversation="forced or unscored: left out")
    assert log.flush(10)
    assert logged_prompts(path) == ["second question", "second question"]
    log.close()


def test_calibrate_on_logged_prompts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    topics = ["prove a theorem", "write a haiku", "fix my python", "plan a trip", "explain tax law"]
    for i in range(50):
        log.record(
            decision(), conversation=f"Please {topics[i % 5]} about item {i} in {i * 7} words"
        )
    assert log.flush(10)
    log.close()
    rc = main(["calibrate", "--prompts", f"log:{path}", "--strong-share", "0.3", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["prompts"] == 50 and out["achieved_share"] == pytest.approx(0.3, abs=0.021)
    empty = RoutingLog(tmp_path / "empty.db")
    empty.record(decision(), conversation="not stored")
    empty.close()
    rc = main(["calibrate", "--prompts", f"log:{tmp_path / 'empty.db'}", "--strong-share", "0.3"])
    assert rc == 2 and "store_prompts=True" in capsys.readouterr().err


def test_judge_command_arguments_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["judge", "--judge-model", "j", "--base-url", "http://127.0.0.1:9/v1"]
    cases = [
        ([], "give --input ANSWERS.jsonl or --log PATH"),
        (["--input", "a.jsonl", "--log", "x.db"], "give --input ANSWERS.jsonl or --log PATH"),
        (["--input", "a.jsonl", "--strong", "s"], "--input needs --weak, --out"),
        (["--log", "x.db", "--out", "b.jsonl"], "--log takes no --out"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err


def test_judge_command_needs_no_api_key_when_nothing_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ROUTELLM_TEST_JUDGE_KEY", raising=False)
    path = tmp_path / "log.db"
    log = RoutingLog(path, store_prompts=True)
    runner = ShadowRunner(log, 1.0)
    logged_call(log, runner, "q1", "weak", "w", ConnectionError("down"))  # nothing to judge
    assert runner.flush(10) and log.flush(10)
    argv = [
        "judge",
        "--log",
        str(path),
        "--judge-model",
        "j",
        "--api-key-env",
        "ROUTELLM_TEST_JUDGE_KEY",
    ]
    argv.append("--json")
    assert main(argv) == 0
    counts = json.loads(capsys.readouterr().out)
    assert (counts["items"], counts["judged"], counts["requests"]) == (0, 0, 0)
    # Once a comparison waits, the missing key is named before anything is sent.
    logged_call(log, runner, "q2", "strong", "s", "w")
    assert runner.flush(10) and log.flush(10)
    assert main(argv) != 0
    assert "ROUTELLM_TEST_JUDGE_KEY" in capsys.readouterr().err
    assert read_comparisons(path)[-1]["verdict"] is None
    log.close()


def test_commands_that_read_a_log_refuse_a_missing_file_instead_of_creating_one(
    tmp_path: Path,
) -> None:
    from routellm_base.errors import RoutingInputError
    from routellm_base.log.judge_log import judge_log
    from routellm_base.log.training_data import labelled_calls, logged_prompts

    missing = tmp_path / "typo.db"
    for read, reader in (
        (labelled_calls, "log"),
        (logged_prompts, "log"),
        (lambda t: judge_log(t, judge=None), "judge --log"),
    ):
        with pytest.raises(RoutingInputError, match=f"{reader}: no routing log at"):
            read(missing)
        assert not missing.exists()


def test_a_log_without_battles_names_what_it_lacks(tmp_path: Path) -> None:
    """A trial: a log with no stored prompts and no comparisons said "(0 comparisons not
    judged: run routellm judge --log ...)": the fix named is the one for what is missing."""
    bare = tmp_path / "bare.db"
    with RoutingLog(bare) as log:
        logged_call(log, None, "q", "weak", "", "")
    with pytest.raises(RouteLLMError) as raised:
        labelled_calls(bare)
    message = str(raised.value)
    assert "none of its 1 calls has its prompt stored" in message
    assert "store_prompts=True" in message and "shadow_rate > 0" in message
    assert "judge --log" not in message
    prompts = tmp_path / "prompts.db"
    with RoutingLog(prompts, store_prompts=True) as log:
        logged_call(log, None, "q", "weak", "", "")
    with pytest.raises(RouteLLMError) as raised:
        labelled_calls(prompts)
    message = str(raised.value)
    assert "shadow_rate > 0" in message and "judge --log" not in message
    assert "prompt stored" not in message
