"""`routellm judge`: verdict parsing, order combination, retries, and the full command against a
real local OpenAI-compatible server running SmolLM2-135M-Instruct on real GSM8K answers."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

from routellm_base.cli import main
from routellm_base.train.data import load_battles_jsonl
from routellm_base.train.judge import (
    JUDGE_SYSTEM_PROMPT,
    JudgeError,
    JudgeItem,
    RetryPolicy,
    combine_verdicts,
    judge_battles,
    load_answer_items,
    parse_verdict,
)

GPT4 = "gpt-4-1106-preview"
MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def _server_module():
    spec = importlib.util.spec_from_file_location(
        "train_tests_local_openai_server", Path(__file__).with_name("local_openai_server.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- scripted client (no network) ---------------------------------------------------------------


class _Message:
    def __init__(self, content):
        self.message = type("M", (), {"content": content})()


class ScriptedClient:
    """``client.chat.completions.create``: the judgment for (answer shown as A, answer shown as B).

    ``script`` maps ``(A, B)`` to judgment text or to an exception raised once per listed entry.
    """

    def __init__(self, script):
        self.script = {k: list(v) if isinstance(v, list) else [v] for k, v in script.items()}
        self.calls = []
        self.chat = self
        self.completions = self

    def create(self, *, model, messages, temperature, max_tokens=None):
        self.calls.append({"model": model, "messages": messages, "temperature": temperature})
        user = messages[1]["content"]
        a = user.split("[The Start of Assistant A's Answer]\n")[1].split("\n[The End")[0]
        b = user.split("[The Start of Assistant B's Answer]\n")[1].split("\n[The End")[0]
        queue = self.script[(a, b)]
        entry = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(entry, BaseException):
            raise entry
        return type("R", (), {"choices": [_Message(entry)]})()


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Assistant A is correct. [[A]]", "A"),
        ("Final verdict: [[B]]", "B"),
        ("Both equally good. [[C]]", "C"),
        ("[[ A ]]", "A"),
        ("I prefer A. [[A]] Again: [[A]]", "A"),  # repeated, same verdict
        ("Assistant A is better.", None),  # no bracketed verdict
        ('"[[A]]" if assistant A is better, "[[B]]" if B', None),  # echoed format: ambiguous
        ("[A]", None),
        ("[[D]]", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) == verdict


@pytest.mark.parametrize(
    ("strong_first", "weak_first", "winner"),
    [
        ("A", "B", "model_a"),  # strong shown first wins, strong shown second wins
        ("B", "A", "model_b"),  # weak wins in both orders
        ("A", "A", "tie"),  # position bias: always the first answer
        ("B", "B", "tie"),  # always the second answer
        ("C", "B", "tie"),
        ("A", "C", "tie"),
        ("C", "C", "tie"),
    ],
)
def test_combine_verdicts(strong_first, weak_first, winner):
    assert combine_verdicts(strong_first, weak_first) == winner


def test_combine_rejects_unknown_verdict():
    with pytest.raises(ValueError, match="not A, B or C"):
        combine_verdicts("A", None)


def test_judge_battles_with_scripted_client():
    items = [
        JudgeItem("p1", "S1", "W1", "1"),  # strong wins both orders
        JudgeItem("p2", "S2", "W2", "2"),  # weak wins both orders
        JudgeItem("p3", "S3", "W3", "3"),  # position bias -> tie
        JudgeItem("p4", "S4", "W4", "4"),  # unparseable in one order -> skipped
        JudgeItem("p5", "S5", "W5", "5"),  # tie verdict
    ]
    client = ScriptedClient({
        ("S1", "W1"): "A is right. [[A]]", ("W1", "S1"): "B is right. [[B]]",
        ("S2", "W2"): "[[B]]", ("W2", "S2"): "[[A]]",
        ("S3", "W3"): "[[A]]", ("W3", "S3"): "[[A]]",
        ("S4", "W4"): "[[A]]", ("W4", "S4"): "I cannot decide.",
        ("S5", "W5"): "[[C]]", ("W5", "S5"): "[[C]]",
    })
    result = judge_battles(items, client, "judge-x", "big", "small", concurrency=3, skipped=2)
    assert [(b["prompt"], b["winner"]) for b in result.battles] == [
        ("p1", "model_a"), ("p2", "model_b"), ("p3", "tie"), ("p5", "tie"),
    ]
    assert all(b["model_a"] == "big" and b["model_b"] == "small" for b in result.battles)
    assert result.summary == {
        "items": 7, "judged": 4, "strong_wins": 1, "weak_wins": 1, "ties": 2,
        "unparseable": 1, "skipped": 2, "requests": 10, "retries": 0,
    }
    bad = [r for r in result.records if r["winner"] is None]
    assert [(r["id"], r["strong_first"]["verdict"], r["weak_first"]["judgment"]) for r in bad] == [
        ("4", "A", "I cannot decide."),
    ]
    # One request per order, temperature 0, the MT-Bench pairwise rubric as system prompt.
    assert len(client.calls) == 10
    assert {c["temperature"] for c in client.calls} == {0}
    assert {c["model"] for c in client.calls} == {"judge-x"}
    assert all(c["messages"][0] == {"role": "system", "content": JUDGE_SYSTEM_PROMPT} for c in client.calls)
    assert "[User Question]\np1\n\n" in client.calls[0]["messages"][1]["content"]


def test_transient_errors_are_retried_with_backoff():
    openai = pytest.importorskip("openai")
    import httpx

    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    timeout = openai.APITimeoutError(request=request)
    overloaded = openai.InternalServerError(
        "overloaded", response=httpx.Response(503, request=request), body=None
    )
    client = ScriptedClient({("S", "W"): [timeout, overloaded, "[[A]]"], ("W", "S"): "[[B]]"})
    waits = []
    result = judge_battles(
        [JudgeItem("p", "S", "W")], client, "j", "big", "small", concurrency=1,
        retry=RetryPolicy(max_retries=3, base_delay=0.5, max_delay=0.75), sleep=waits.append,
    )
    assert result.battles[0]["winner"] == "model_a"
    assert result.summary["requests"] == 4 and result.summary["retries"] == 2
    # Exponential (0.5, then 1.0 capped at 0.75) with jitter in [0.5, 1].
    assert 0.25 <= waits[0] <= 0.5 and 0.375 <= waits[1] <= 0.75


def test_retry_after_header_is_honoured_up_to_the_cap():
    openai = pytest.importorskip("openai")
    import httpx

    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    limited = openai.RateLimitError(
        "slow down", response=httpx.Response(429, headers={"retry-after": "7"}, request=request), body=None
    )
    client = ScriptedClient({("S", "W"): [limited, "[[C]]"], ("W", "S"): "[[C]]"})
    waits = []
    result = judge_battles([JudgeItem("p", "S", "W")], client, "j", "big", "small", concurrency=1,
                           retry=RetryPolicy(base_delay=0.01, max_delay=5.0), sleep=waits.append)
    assert waits == [5.0] and result.battles[0]["winner"] == "tie"


def test_retries_are_bounded_and_permanent_errors_not_retried():
    openai = pytest.importorskip("openai")
    import httpx

    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    down = openai.APIConnectionError(request=request)
    client = ScriptedClient({("S", "W"): down, ("W", "S"): "[[B]]"})
    waits = []
    with pytest.raises(JudgeError, match="after 3 attempts"):
        judge_battles([JudgeItem("p", "S", "W")], client, "j", "big", "small", concurrency=1,
                      retry=RetryPolicy(max_retries=2, base_delay=0.01), sleep=waits.append)
    assert len(waits) == 2

    denied = openai.AuthenticationError(
        "bad key", response=httpx.Response(401, request=request), body=None
    )
    client = ScriptedClient({("S", "W"): denied, ("W", "S"): "[[B]]"})
    waits = []
    with pytest.raises(JudgeError, match="bad key"):
        judge_battles([JudgeItem("p", "S", "W")], client, "j", "big", "small", concurrency=1,
                      sleep=waits.append)
    assert waits == []


def test_answers_file_skips_lines_missing_an_answer(tmp_path):
    path = tmp_path / "answers.jsonl"
    rows = [
        {"prompt": "p1", "answers": {"big": "a", "small": "b", "other": "c"}},
        {"prompt": "p2", "answers": {"big": "a"}},
        {"id": "x", "prompt": "p3", "answers": {"big": "a", "small": "b"}},
        {"prompt": "p4", "answers": {"small": "b", "big": None}},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items, skipped = load_answer_items(path, "big", "small")
    assert [(i.prompt, i.id) for i in items] == [("p1", "1"), ("p3", "x")]
    assert skipped == [f"{path}:2", f"{path}:4"]
    path.write_text(json.dumps({"answers": {}}) + "\n")
    with pytest.raises(ValueError, match="answers.jsonl:1: field 'prompt'"):
        load_answer_items(path, "big", "small")


def test_judge_refuses_models_the_answers_do_not_name(tmp_path, capsys):
    """Not one "skipped" note a line, an empty output and exit 0: an error naming the models
    the answers hold, before any request."""
    path = tmp_path / "answers.jsonl"
    rows = [{"prompt": f"p{i}", "answers": {"big": "a", "small": "b"}} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=r"no answer of 'a'.*'big', 'small'"):
        load_answer_items(path, "a", "b")
    out = tmp_path / "battles.jsonl"
    argv = ["judge", "--input", str(path), "--strong", "big", "--weak", "b", "--judge-model", "j",
            "--base-url", "http://127.0.0.1:9/v1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no answer of 'b'" in err and "'big', 'small'" in err and "skipped" not in err
    assert not out.exists()


# -- real HTTP: the openai client against the local server --------------------------------------


def test_cli_retries_a_transient_http_error(tmp_path, capsys):
    """Real openai client, real HTTP: two 503s are retried, then scripted judgments come back."""
    server_mod = _server_module()

    def reply(messages, max_tokens):
        shown_a = messages[1]["content"].split("[The Start of Assistant A's Answer]\n")[1]
        return ("[[A]]" if shown_a.startswith("strong") else "[[B]]"), 10, 1

    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"prompt": "q", "answers": {"s": "strong answer", "w": "weak answer"}}) + "\n")
    out = tmp_path / "battles.jsonl"
    with server_mod.LocalOpenAIServer(reply, max_requests=8, fail_first=2) as server:
        rc = main(["judge", "--input", str(answers), "--strong", "s", "--weak", "w", "--judge-model", "j",
                   "--base-url", server.url, "--api-key-env", "ROUTELLM_TEST_UNSET_KEY",
                   "--backoff", "0.01", "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["requests"] == 4 and summary["retries"] == 2 and summary["strong_wins"] == 1
    assert server.statuses.count(503) == 2 and server.statuses.count(200) == 2
    assert load_battles_jsonl(out).counts == {"model_a": 1}


def test_cli_names_the_one_missing_answer(tmp_path, capsys):
    server_mod = _server_module()
    answers = tmp_path / "answers.jsonl"
    rows = [
        {"prompt": "q", "answers": {"s": "strong answer", "w": "weak answer"}},
        {"prompt": "q2", "answers": {"s": "strong answer"}},  # only the weak answer missing
        {"prompt": "q3", "answers": {}},
    ]
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "battles.jsonl"
    argv = ["judge", "--input", str(answers), "--strong", "s", "--weak", "w", "--judge-model", "j",
            "--api-key-env", "ROUTELLM_TEST_UNSET_KEY", "--out", str(out)]  # fmt: skip
    with server_mod.LocalOpenAIServer(lambda messages, max_tokens: ("[[A]]", 10, 1)) as server:
        assert main([*argv, "--base-url", server.url]) == 0
    err = capsys.readouterr().err
    assert f"note: {answers}:2: no answer of 'w'; skipped" in err.splitlines()
    assert f"note: {answers}:3: no answer of 's' or 'w'; skipped" in err.splitlines()


def test_cli_names_the_endpoint_it_could_not_reach(tmp_path, capsys):
    # Nothing listens on port 9: the error names the endpoint, and one attempt is one.
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"prompt": "q", "answers": {"s": "a", "w": "b"}}) + "\n")
    argv = ["judge", "--input", str(answers), "--strong", "s", "--weak", "w", "--judge-model", "j",
            "--api-key-env", "ROUTELLM_TEST_UNSET_KEY", "--out", str(tmp_path / "out.jsonl")]  # fmt: skip
    dead = "http://127.0.0.1:9/v1"
    assert main([*argv, "--base-url", dead, "--max-retries", "0"]) != 0
    err = capsys.readouterr().err
    assert f"judge request to {dead}/ failed after 1 attempt: " in err, err


def test_cli_input_honours_limit_and_refuses_retry_unparseable(tmp_path, capsys):
    """A trial: ``judge --input`` with ``--limit 1`` judged all 4 items (paid for), and took
    ``--retry-unparseable`` silently: the limit judges the first items, the other is refused."""
    server_mod = _server_module()
    answers = tmp_path / "answers.jsonl"
    rows = [{"prompt": f"q{i}", "answers": {"s": "strong", "w": "weak"}} for i in range(4)]
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "battles.jsonl"
    argv = ["judge", "--input", str(answers), "--strong", "s", "--weak", "w", "--judge-model", "j",
            "--api-key-env", "ROUTELLM_TEST_UNSET_KEY", "--out", str(out)]  # fmt: skip
    with server_mod.LocalOpenAIServer(lambda messages, max_tokens: ("[[A]]", 10, 1)) as server:
        assert main([*argv, "--base-url", server.url, "--limit", "1", "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert (summary["judged"], summary["left_by_limit"], summary["requests"]) == (1, 3, 2)
        assert len(out.read_text().splitlines()) == 1
        # --force: the first run's battles are in --out.
        assert main([*argv, "--base-url", server.url, "--limit", "3", "--force"]) == 0
        assert "(1 more items left unjudged by --limit)" in capsys.readouterr().out
        capsys.readouterr()
        assert main([*argv, "--base-url", server.url, "--retry-unparseable"]) == 2
        assert "--input takes no --retry-unparseable" in capsys.readouterr().err
        assert main([*argv, "--base-url", server.url, "--limit", "-1"]) == 2
        assert "--limit must be at least 0, got -1" in capsys.readouterr().err
        assert len(server.statuses) == 2 + 6  # nothing sent for the refused runs


def test_cli_input_refuses_to_overwrite_its_input_another_output_or_earlier_battles(
    tmp_path, capsys
):
    """A trial: ``--out`` equal to ``--input`` replaced the 8 answers by 2 battles, ``--out``
    equal to ``--records`` kept the records alone, and an existing ``--out`` (7 battles, 14
    paid requests) was replaced without a word. Each is refused before any request; an
    existing output is overwritten with ``--force`` alone, the input never."""
    server_mod = _server_module()
    answers = tmp_path / "answers.jsonl"
    rows = [{"prompt": f"q{i}", "answers": {"s": "strong", "w": "weak"}} for i in range(3)]
    answers.write_text(text := "".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "sub").mkdir()
    out, records = tmp_path / "battles.jsonl", tmp_path / "records.jsonl"
    argv = ["judge", "--input", str(answers), "--strong", "s", "--weak", "w", "--judge-model", "j",
            "--api-key-env", "ROUTELLM_TEST_UNSET_KEY"]  # fmt: skip
    refused = [
        (["--out", str(answers)], f"--out {answers} is the --input file"),
        # Another spelling of the input: refused all the same, both spellings named.
        (["--out", str(tmp_path / "sub" / ".." / "answers.jsonl")], f"is the --input file ({answers})"),
        (["--out", str(out), "--records", str(answers), "--force"], f"--records {answers} is the --input"),
        (["--out", str(out), "--records", str(out)], f"--out {out} and --records {out} are one file"),
        (["--out", str(tmp_path / "sub")], "is a folder, not a file"),
    ]
    with server_mod.LocalOpenAIServer(lambda messages, max_tokens: ("[[A]]", 10, 1)) as server:
        for options, message in refused:
            assert main([*argv, "--base-url", server.url, *options]) == 2, options
            assert message in capsys.readouterr().err, options
        assert answers.read_text() == text and not out.exists() and not server.statuses

        assert main([*argv, "--base-url", server.url, "--out", str(out), "--limit", "2"]) == 0
        assert len(out.read_text().splitlines()) == 2 and len(server.statuses) == 4
        capsys.readouterr()
        # A re-run into the same --out (or --records) keeps the earlier battles unless --force.
        assert main([*argv, "--base-url", server.url, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--out {out} already holds 2 lines" in err and "--force" in err
        records.write_text("{}\n")
        assert main([*argv, "--base-url", server.url, "--out", str(tmp_path / "new.jsonl"),
                     "--records", str(records)]) == 2  # fmt: skip
        assert f"--records {records} already holds 1 line " in capsys.readouterr().err
        assert len(server.statuses) == 4 and len(out.read_text().splitlines()) == 2
        assert main([*argv, "--base-url", server.url, "--out", str(out), "--force"]) == 0
        assert len(out.read_text().splitlines()) == 3
        # An empty file is no earlier run's output.
        empty = tmp_path / "empty.jsonl"
        empty.write_text("")
        assert main([*argv, "--base-url", server.url, "--out", str(empty)]) == 0
        assert len(empty.read_text().splitlines()) == 3
    capsys.readouterr()
    log_argv = ["judge", "--log", str(tmp_path / "r.db"), "--judge-model", "j", "--force"]
    assert main(log_argv) == 2
    assert "--log takes no --force" in capsys.readouterr().err


# -- the real model -------------------------------------------------------------------------------


def _gsm8k_answer_items(data_dir: Path, n: int) -> list[dict]:
    """The ``n`` shortest GSM8K rows (prompt plus both answers) with the stored GPT-4 and
    Mixtral answers, in the answers-JSONL form."""
    csv.field_size_limit(sys.maxsize)
    path = data_dir / "routellm" / "routellm" / "evals" / "gsm8k" / "gsm8k_responses.csv"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = ("prompt", f"{GPT4}_response", f"{MIXTRAL}_response")
    rows.sort(key=lambda r: sum(len(r[c]) for c in columns))
    return [
        {"prompt": r["prompt"], "answers": {GPT4: r[f"{GPT4}_response"], MIXTRAL: r[f"{MIXTRAL}_response"]}}
        for r in rows[:n]
    ]


@pytest.mark.slow
def test_judge_command_with_real_smollm2_judge(data_dir, tmp_path, capsys):
    server_mod = _server_module()
    items = _gsm8k_answer_items(data_dir, 4)
    items.append({"prompt": items[0]["prompt"], "answers": {GPT4: "only the strong answer"}})  # skipped
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps(r) + "\n" for r in items))
    out, records = tmp_path / "battles.jsonl", tmp_path / "records.jsonl"

    reply = server_mod.smollm2_reply(max_new_tokens=24)  # loads the model before the clock starts
    started = time.perf_counter()
    with server_mod.LocalOpenAIServer(reply, max_requests=16) as server:
        rc = main(["judge", "--input", str(answers), "--strong", GPT4, "--weak", MIXTRAL,
                   "--judge-model", "SmolLM2-135M-Instruct", "--base-url", server.url,
                   "--concurrency", "2", "--out", str(out), "--records", str(records), "--json"])
    seconds = time.perf_counter() - started
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)

    # Exact accounting, whatever a 135M judge says.
    assert summary["items"] == 5 and summary["skipped"] == 1
    assert summary["judged"] + summary["unparseable"] + summary["skipped"] == summary["items"]
    assert summary["strong_wins"] + summary["weak_wins"] + summary["ties"] == summary["judged"]
    assert summary["retries"] == 0
    assert summary["requests"] == 2 * (summary["judged"] + summary["unparseable"]) == 8
    assert len(server.received) == 8 and set(server.statuses) == {200}
    assert all(b["temperature"] == 0 and b["model"] == "SmolLM2-135M-Instruct" for b in server.received)

    lines = out.read_text().splitlines()
    assert len(lines) == summary["judged"]
    if lines:
        battles = load_battles_jsonl(out)
        assert set(battles.models) <= {GPT4, MIXTRAL}
        assert sum(battles.counts.values()) == summary["judged"]
    recs = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(recs) == 4
    assert sum(r["winner"] is None for r in recs) == summary["unparseable"]
    for rec in recs:  # what was recorded is what the parser reads from the raw judgment
        for order in ("strong_first", "weak_first"):
            assert rec[order]["verdict"] == parse_verdict(rec[order]["judgment"])
    with capsys.disabled():
        print(f"\nSmolLM2 judge on GSM8K: {summary} in {seconds:.1f} s")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_retries": -1}, "max_retries must be at least 0, got -1"),
        ({"max_retries": 1.5}, "max_retries must be a whole number, got 1.5"),
        ({"base_delay": -1.0}, "base_delay must be a number of seconds, at least 0, got -1.0"),
        ({"max_delay": float("nan")}, "max_delay must be a number of seconds, at least 0"),
    ],
)
def test_a_retry_policy_refuses_negative_counts_and_delays(settings, message):
    """A trial: ``judge --max-retries -1 --backoff -1`` ran silently (as no retries, no wait)."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        RetryPolicy(**settings)


def test_judge_battles_refuses_a_max_tokens_below_1_before_any_request():
    """A trial: ``--max-tokens 0`` was sent to the endpoint as ``"max_tokens": 0``."""

    class NoClient:
        def __getattr__(self, name):
            raise AssertionError("no request may be sent")

    items = [{"prompt": "p", "strong_answer": "a", "weak_answer": "b"}]
    with pytest.raises(ValueError, match=r"max_tokens must be at least 1 \(or None: no limit\)"):
        judge_battles(items, NoClient(), "j", "s", "w", max_tokens=0)
