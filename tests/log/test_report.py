"""``routellm report`` on real logs: a SQLite file and a PostgreSQL database written by
``RoutingLog`` from real prompts routed by the bundled router, with shadow comparisons judged by
real labels (AlpacaEval's GPT-4-turbo judgments, GSM8K correctness). Every figure is checked
against an independent computation (scikit-learn's AUC, SciPy's KS test, prices by hand)."""

from __future__ import annotations

import csv
import json
import sys
import uuid
from dataclasses import replace as replace_report
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from log_helpers import redate_calls
from plot_geometry import texts_outside
from scipy.stats import kstest
from sklearn.metrics import roc_auc_score
from sqlalchemy import create_engine, insert, text

from routellm_base import RoutingEngine, load_router
from routellm_base.cli import main
from routellm_base.costs import DEFAULT_PRICES
from routellm_base.errors import MissingDependencyError, RoutingInputError
from routellm_base.log import RoutingLog, comparisons, decisions
from routellm_base.log.report import build_report, parse_every, rank_auc, wilson_interval
from routellm_base.log.report_plot import plot_report

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
STRONG, WEAK = "gpt-4o", "gpt-4o-mini"


def _labelled_prompts(data_dir: Path) -> list[tuple[str, str]]:
    """150 AlpacaEval prompts then 150 GSM8K problems, each with the side that answers better:
    AlpacaEval's judge preference of gpt4_1106_preview over Mixtral (>1.5: Mixtral), GSM8K's
    correctness of gpt-4-1106-preview against Mixtral (both right or both wrong: a tie)."""
    prompts = {}
    for line in (data_dir / "alpaca_eval/prompts.jsonl").read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            prompts[str(item["prompt_id"])] = item["prompt"]
    chat = []
    with open(data_dir / "alpaca_eval/judgments.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["model_2"] == "Mixtral-8x7B-Instruct-v0.1_concise":
                preference = float(row["preference"])
                verdict = "weak" if preference > 1.5 else "strong" if preference < 1.5 else "tie"
                chat.append((prompts[row["prompt_id"]], verdict))
    maths = []
    with open(data_dir / "routellm/routellm/evals/gsm8k/gsm8k_responses.csv", newline="") as f:
        for row in csv.DictReader(f):
            strong = row["gpt-4-1106-preview"] == "True"
            weak = row["mistralai/Mixtral-8x7B-Instruct-v0.1"] == "True"
            maths.append(
                (row["prompt"], "tie" if strong == weak else "strong" if strong else "weak")
            )
    return chat[:150] + maths[:150]


def _write_log(target: str, data_dir: Path) -> list[dict]:
    """300 routed calls one minute apart from START (the last 10 forced strong), judged
    comparisons for every other call; returns what was written, per call."""
    engine = RoutingEngine(load_router("task_experts"), strong_share=0.3, share_window=50)
    log = RoutingLog(target)
    calls = []
    for i, (prompt, verdict) in enumerate(_labelled_prompts(data_dir)):
        decision = engine.decide(prompt, strong_model=STRONG, weak_model=WEAK,
                                 force="strong" if i >= 290 else None)  # fmt: skip
        tokens = (len(prompt) // 4 + 1, 200 + i)
        log.record(decision, conversation=prompt, strong_model=STRONG, weak_model=WEAK,
                   checkpoint_id=decision.checkpoint_id, input_tokens=tokens[0],
                   output_tokens=tokens[1])  # fmt: skip
        calls.append({"decision": decision, "tokens": tokens, "verdict": verdict})
    assert log.close(timeout=60) and log.stats().written == 300
    db = create_engine(target if "://" in target else f"sqlite:///{target}")
    with db.begin() as connection:
        ids = redate_calls(connection, lambda i: START + timedelta(minutes=i))
        for call_id, call in zip(ids, calls, strict=True):
            call["call_id"] = call_id
        rows = []
        for i, call in enumerate(calls):
            if i % 2:
                continue
            judged = i % 10 != 0  # a fifth of the comparisons wait for their judge
            rows.append(
                {
                    "call_id": call["call_id"],
                    "created_at": START + timedelta(minutes=i, seconds=30),
                    "answered_side": call["decision"].side,
                    "verdict": call["verdict"] if judged else None,
                    "verdict_source": ("golden" if i % 6 == 0 else "judge") if judged else None,
                }
            )
        # A call judged twice: the later verdict counts.
        twice = calls[2]
        rows.insert(0, {**rows[1], "verdict": "tie" if twice["verdict"] != "tie" else "weak"})
        connection.execute(insert(comparisons), rows)
    db.dispose()
    return calls


def _expected(calls: list[dict], calibration) -> dict:  # type: ignore[no-untyped-def]
    """The report's figures computed independently of it."""
    strong_price, weak_price = DEFAULT_PRICES[STRONG], DEFAULT_PRICES[WEAK]
    spent = always = 0.0
    for call in calls:
        price = strong_price if call["decision"].side == "strong" else weak_price
        spent += price.cost(*call["tokens"])
        always += strong_price.cost(*call["tokens"])
    judged_index = [i for i in range(290) if i % 2 == 0 and i % 10 != 0]
    judged = [calls[i] for i in judged_index]
    golden = sum(i % 6 == 0 for i in judged_index)
    decisive = [c for c in judged if c["verdict"] != "tie"]
    scored = np.array([c["decision"].win_rate for c in calls[:290]])
    quantiles = np.asarray(calibration.quantiles)
    levels = np.linspace(0, 1, len(quantiles))
    ks = kstest(scored, lambda x: np.interp(x, quantiles, levels, left=0.0, right=1.0)).statistic
    edges = np.interp(np.linspace(0, 1, 11)[1:-1], levels, quantiles)
    shares = np.maximum(
        np.bincount(np.searchsorted(edges, scored, "right"), minlength=10) / 290, 1e-4
    )
    return {
        "strong": sum(c["decision"].side == "strong" for c in calls),
        "spent": spent,
        "always": always,
        "judged": len(judged),
        "by_source": {"golden": golden, "judge": len(judged) - golden},
        "auc": roc_auc_score(
            [c["verdict"] == "strong" for c in decisive], [c["decision"].win_rate for c in decisive]
        ),
        "ks": ks,
        "psi": float(np.sum((shares - 0.1) * np.log(shares / 0.1))),
        "window_calls": 300,
    }


@pytest.fixture(scope="module")
def sqlite_log(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("report") / "log.db"
    return path, _write_log(str(path), data_dir)


def _check(report, calls: list[dict]) -> None:  # type: ignore[no-untyped-def]
    calibration = load_router("task_experts").calibration
    expected = _expected(calls, calibration)
    assert report.calls == 300 and report.forced == 10 and report.strong == expected["strong"]
    assert (report.first, report.last) == (START, START + timedelta(minutes=299))
    assert report.routers == {"task_experts": 300}
    # Time bins: 300 minutes -> 20 bins of 15 minutes (the smallest width giving at most 24).
    assert [(b.start, b.calls) for b in report.bins] == [
        (START + timedelta(minutes=15 * k), 15) for k in range(20)
    ]
    assert sum(b.strong for b in report.bins) == report.strong
    assert sum(b.cost_usd for b in report.bins) == pytest.approx(expected["spent"])
    assert sum(b.always_strong_usd for b in report.bins) == pytest.approx(expected["always"])
    cost = report.cost
    assert cost.calls_compared == 300 and cost.unpriced_models == ()
    assert cost.cost_usd == pytest.approx(expected["spent"])
    assert cost.always_strong_usd == pytest.approx(expected["always"])
    assert cost.savings_usd == pytest.approx(expected["always"] - expected["spent"])
    judged = report.judged
    assert judged.available and judged.comparisons == 151 and judged.judged == expected["judged"]
    assert sum(b.judged for b in judged.buckets) == expected["judged"] and len(judged.buckets) == 5
    assert judged.by_source == expected["by_source"]
    assert judged.auc == pytest.approx(expected["auc"])
    lows = [b.low for b in judged.buckets]
    assert lows == sorted(lows) and all(
        b.low <= b.router_win_rate <= b.high for b in judged.buckets
    )
    [drift] = report.drift
    assert drift.calls == 290 and drift.reference_size == 498
    assert drift.checkpoint_id == load_router("task_experts").metadata["checkpoint_id"]
    assert drift.ks == pytest.approx(expected["ks"], abs=1e-9)
    assert drift.psi == pytest.approx(expected["psi"])
    assert report.window is not None and report.window.calls == expected["window_calls"]
    assert report.window.from_window == 250  # the first 50 calls warm the window up


def test_report_of_a_sqlite_log_matches_independent_figures(sqlite_log):
    path, calls = sqlite_log
    _check(build_report(path), calls)


def test_report_of_a_postgresql_log_matches(postgres_url: str, data_dir: Path):
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    name = f"report_{uuid.uuid4().hex[:8]}"  # its own database: other tests share the default
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    calls = _write_log(url, data_dir)
    report = build_report(url)
    _check(report, calls)
    assert report.log.endswith(f"/{name}")


def test_the_text_report_reads_in_a_terminal(sqlite_log):
    path, _ = sqlite_log
    text_report = build_report(path, every=2 * 3600).format()
    for heading in (
        "Traffic per 2 hours (UTC)",
        "Cost against always-strong",
        "Judged strong-win rate by router win rate",
        "Drift of the win rates against the checkpoint's calibration set",
        "KS distance",
        "PSI",
        "share window: 300 calls, 250 routed with the window's quantile",
    ):
        assert heading in text_report
    assert max(len(line) for line in text_report.splitlines()) <= 100
    assert "more than sampling noise" in text_report  # the fixture's maths traffic is not chat
    # Bins are aligned to UTC multiples of their width: 08:00, 10:00, 12:00.
    rows = [line.split()[:3] for line in text_report.splitlines() if line.startswith("  2026-")]
    assert rows == [["2026-03-02", "08:00", "60"], ["2026-03-02", "10:00", "120"],
                    ["2026-03-02", "12:00", "120"]]  # fmt: skip


def test_cli_report_json_text_and_plot(sqlite_log, tmp_path: Path, capsys):
    path, calls = sqlite_log
    assert main(["report", "--log", str(path), "--json", "--every", "1h", "--buckets", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["calls"] == 300 and len(data["bins"]) == 5 and len(data["judged"]["buckets"]) == 3
    assert data["first"] == START.isoformat()
    assert data["drift"][0]["ks"] > data["drift"][0]["ks_critical_95"]  # maths is not chat
    plot = tmp_path / "report.png"
    assert main(["report", "--log", str(path), "--plot", str(plot)]) == 0
    assert "Judged strong-win rate" in capsys.readouterr().out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000


def test_unpriced_models_are_named_and_prices_can_be_given(tmp_path: Path):
    engine = RoutingEngine(load_router("task_experts"), strong_share=0.5)
    log = RoutingLog(tmp_path / "log.db")
    for prompt in ("What is 2 + 2?", "Prove that there are infinitely many primes."):
        decision = engine.decide(prompt, strong_model="big", weak_model="small", force="weak")
        log.record(decision, conversation=prompt, strong_model="big", weak_model="small",
                   input_tokens=1000, output_tokens=1000)  # fmt: skip
    log.close()
    cost = build_report(tmp_path / "log.db").cost
    assert cost.calls_compared == 0 and cost.unpriced_models == ("big", "small")
    cost = build_report(tmp_path / "log.db", prices={"big": (10, 30), "small": (1, 3)}).cost
    assert cost.calls_compared == 2 and cost.unpriced_models == ()
    assert (cost.cost_usd, cost.always_strong_usd) == pytest.approx((0.008, 0.08))
    assert cost.savings_share == pytest.approx(0.9)


def test_given_prices_reprice_spend_and_always_strong_alike(tmp_path: Path, capsys):
    """A trial: --price re-priced only the always-strong figure; the spend kept the logged
    costs, so re-pricing the weak model changed nothing and re-pricing the strong one moved the
    saving from 94.0% to 99.7% (two price lists in one figure)."""
    from routellm_base import RandomRouter

    path = tmp_path / "log.db"
    engine = RoutingEngine(RandomRouter(seed=0), threshold=0.5)
    tokens = []
    log = RoutingLog(path)
    for i in range(20):
        decision = engine.decide(f"q{i}", strong_model=STRONG, weak_model=WEAK)
        t = (30 + i, 20 + 2 * i)
        tokens.append((decision.model, t))
        log.record(decision, conversation=f"q{i}", strong_model=STRONG, weak_model=WEAK,
                   input_tokens=t[0], output_tokens=t[1],
                   cost_usd=DEFAULT_PRICES[decision.model].cost(*t))  # fmt: skip
    assert log.close(timeout=60)
    sides = {m for m, _ in tokens}
    assert sides == {STRONG, WEAK}  # both sides answered: both kinds of call are re-priced

    def by_hand(prices: dict[str, tuple[float, float]]) -> tuple[float, float]:
        price = {**{m: (p.input_per_million, p.output_per_million) for m, p in
                    DEFAULT_PRICES.items()}, **prices}  # fmt: skip
        spent = sum(t[0] * price[m][0] + t[1] * price[m][1] for m, t in tokens) / 1e6
        always = sum(t[0] * price[STRONG][0] + t[1] * price[STRONG][1] for _, t in tokens) / 1e6
        return spent, always

    for given in ({}, {WEAK: (100.0, 100.0)}, {STRONG: (100.0, 100.0)}, {STRONG: (5, 20),
                                                                        WEAK: (1, 2)}):  # fmt: skip
        cost = build_report(path, prices=given).cost
        spent, always = by_hand(given)
        assert (cost.cost_usd, cost.always_strong_usd) == pytest.approx((spent, always)), given
        assert cost.savings_share == pytest.approx(1 - spent / always)
        repriced = sum(m in given for m, _ in tokens)
        assert (cost.repriced_calls, cost.logged_cost_calls) == (repriced, 20 - repriced)
        assert cost.logged_cost_models == tuple(sorted(sides - set(given)))
        for model in (STRONG, WEAK):
            source = "given" if model in given else "default"
            assert cost.prices[model]["source"] == source
    # The text and the JSON say which prices were used and which costs were kept as logged.
    assert main(["report", "--log", str(path), f"--price={WEAK}=100,100"]) == 0
    out = capsys.readouterr().out
    assert "prices, USD per 1M input/output tokens: gpt-4o 2.5/10 (default), gpt-4o-mini" in out
    assert "100/100 (--price)" in out
    n_strong = sum(m == STRONG for m, _ in tokens)
    assert f"{20 - n_strong} calls re-priced at --price: their logged cost is not used" in out
    assert f"{n_strong} calls of gpt-4o counted at the cost logged with them" in out
    cost_section = out.split("Cost against")[1].split("\n\n")[0]
    assert max(len(line) for line in cost_section.splitlines()) <= 80
    assert main(["report", "--log", str(path), "--json", f"--price={WEAK}=100,100"]) == 0
    data = json.loads(capsys.readouterr().out)["cost"]
    assert data["prices"][WEAK] == {
        "input_per_million": 100.0,
        "output_per_million": 100.0,
        "source": "given",
    }
    assert (data["repriced_calls"], data["logged_cost_calls"]) == (20 - n_strong, n_strong)
    assert data["cost_usd"] == pytest.approx(by_hand({WEAK: (100.0, 100.0)})[0])


def test_drift_inside_the_noise_level_is_not_called_more_than_noise(tmp_path: Path, data_dir: Path):
    # Traffic drawn from the calibration set itself: its KS distance is chance.
    prompts = [
        json.loads(line)["prompt"] for line in (data_dir / "arena_hard" / "questions.jsonl").open()
    ]
    engine = RoutingEngine(load_router("task_experts"), strong_share=0.5)
    log = RoutingLog(tmp_path / "log.db")
    for prompt in prompts[:40]:
        log.record(engine.decide(prompt, strong_model="big", weak_model="small"), conversation=prompt,
                   strong_model="big", weak_model="small")  # fmt: skip
    log.close()
    report = build_report(tmp_path / "log.db")
    [drift] = report.drift
    assert drift.ks is not None and drift.ks < drift.ks_critical_95
    assert (
        "could be chance" in report.format() and "more than sampling noise" not in report.format()
    )


def test_a_log_without_comparisons_or_calibration_says_so(tmp_path: Path):
    from sqlalchemy import Column, MetaData, Table

    # A schema-1 log (no comparisons table), written by hand, with a router that is not found.
    db = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{db}")
    meta = MetaData()
    table = Table(decisions.name, meta, *(Column(c.name, c.type) for c in decisions.columns))
    meta.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(table), [{
            "call_id": "a" * 32, "created_at": START, "router": "gone-router",
            "checkpoint_id": "f" * 64, "threshold": 0.5, "side": "weak", "win_rate": 0.3,
            "model": "small", "strong_model": "big", "forced": False, "no_known_tokens": False,
            "routing_seconds": 0.001, "extra": "{}",
        }])  # fmt: skip
    engine.dispose()
    report = build_report(db)
    assert not report.judged.available and report.window is None
    assert "no comparisons table" in report.format()
    [drift] = report.drift
    assert drift.ks is None and "no calibration found for this checkpoint" in drift.note
    assert "gone-router" in drift.note and "--router" in drift.note


def test_bad_input_gets_a_clear_error(tmp_path: Path, capsys, monkeypatch):
    with pytest.raises(RoutingInputError, match="no routing log at"):
        build_report(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()  # reading never creates a log
    empty = tmp_path / "other.db"
    create_engine(f"sqlite:///{empty}").connect().execute(text("CREATE TABLE t (x INT)"))
    with pytest.raises(RoutingInputError, match="is not a routing log"):
        build_report(empty)
    for bad in ("0h", "1y", "h"):
        with pytest.raises(RoutingInputError, match="--every must be"):
            parse_every(bad)
    assert parse_every("15m") == 900 and parse_every("2d") == 172800 and parse_every("30") == 30
    assert main(["report", "--log", str(empty), "--price", "gpt-4o:2.5"]) == 2
    assert "--price must be MODEL=IN,OUT" in capsys.readouterr().err


def test_a_plot_without_matplotlib_names_the_extra(sqlite_log, tmp_path: Path, monkeypatch):
    path, _ = sqlite_log
    report = build_report(path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(MissingDependencyError, match=r"langchain-routellm\[report\]"):
        plot_report(report, tmp_path / "x.png")


def test_rank_auc_counts_ties_half():
    assert rank_auc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert rank_auc(np.array([0.5]), np.array([0.5])) == 0.5
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 40) / 4, rng.integers(0, 5, 30) / 4
    labels = [1] * 40 + [0] * 30
    assert rank_auc(pos, neg) == pytest.approx(roc_auc_score(labels, np.concatenate([pos, neg])))


def test_golden_labels_given_as_feedback_count_and_outrank_the_judge(tmp_path: Path):
    # Golden labels live in routellm_feedback (RoutingLog.feedback), not in comparisons.verdict;
    # training reads them first (log.training_data), and so must the report's judged buckets.
    engine = RoutingEngine(load_router("task_experts"), strong_share=0.3)
    db = tmp_path / "labels.db"
    log = RoutingLog(db)
    prompts = [
        "What is 17 * 23?",
        "Write a haiku about rain.",
        "Prove that there are infinitely many primes.",
    ]
    decisions_made = [engine.decide(p, strong_model=STRONG, weak_model=WEAK) for p in prompts]
    for prompt, decision in zip(prompts, decisions_made):
        log.record(decision, conversation=prompt, strong_model=STRONG, weak_model=WEAK)
    first, second, _ = (d.call_id for d in decisions_made)
    log.feedback(first, label="strong", source="golden")
    log.feedback(second, label="tie", source="golden")
    assert log.close(timeout=30) and log.stats().written == 5  # 3 calls, 2 feedback rows
    with create_engine(f"sqlite:///{db}").begin() as connection:  # a judge said "weak" on the first
        connection.execute(insert(comparisons), [{"call_id": first, "created_at": START, "answered_side": "weak",
                                                  "verdict": "weak", "verdict_source": "judge"}])  # fmt: skip
    judged = build_report(db).judged
    assert judged.comparisons == 1 and judged.judged == 2
    assert judged.by_source == {"label:golden": 2}
    assert (
        sum(b.strong_wins for b in judged.buckets) == 1 and sum(b.ties for b in judged.buckets) == 1
    )
    assert sum(b.weak_wins for b in judged.buckets) == 0


def _timed_log(
    path: Path,
    step: timedelta,
    routers: tuple[str, ...],
    pair: tuple[str, str],
    start: datetime = START,
) -> None:
    """40 calls ``step`` apart from ``start``, the routers taking turns, then their times set."""
    engines = [RoutingEngine(load_router(r), strong_share=0.3) for r in routers]
    prompts = [f"What is {a} times {a + 7}?" for a in range(20)] + [
        f"Write a short poem about the number {a}." for a in range(20)
    ]
    log = RoutingLog(path)
    for i, prompt in enumerate(prompts):
        decision = engines[i % len(engines)].decide(
            prompt, strong_model=pair[0], weak_model=pair[1]
        )
        log.record(decision, conversation=prompt, strong_model=pair[0], weak_model=pair[1],
                   checkpoint_id=decision.checkpoint_id, input_tokens=40, output_tokens=200)  # fmt: skip
    assert log.close(timeout=60)
    db = create_engine(f"sqlite:///{path}")
    with db.begin() as connection:
        redate_calls(connection, lambda i: start + i * step)
    db.dispose()


def _check_time_axes(report, step: timedelta):  # type: ignore[no-untyped-def]
    """The two time panels span exactly the report's bins, which cover the calls and no more
    than a bin either side, with distinct tick labels inside; returns the figure."""
    import matplotlib.dates as mdates

    from routellm_base.log.report_plot import report_figure, time_span

    first, last = START, START + 39 * step
    assert (report.first, report.last) == (first, last)
    assert 4 <= len(report.bins) <= 8  # a picture of the log, not one bar; 5 calls a bin or more
    width = timedelta(seconds=report.bins[0].seconds)
    start, end = time_span(report)
    assert first - width < start <= first and last < end <= last + width
    fig = report_figure(report)
    panels = {ax.get_label(): ax for ax in fig.axes}
    expected = (mdates.date2num(start), mdates.date2num(end))
    for name in ("traffic", "cost"):
        ax = panels[name]
        assert ax.get_xlim() == pytest.approx(expected, abs=1e-9), name
    fig.canvas.draw()
    ticks = [t for t in panels["traffic"].get_xticklabels() if t.get_text()]
    assert len(ticks) >= 3
    assert len({t.get_text() for t in ticks}) == len(ticks)  # each tick says a different time
    for legend in [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]:
        box = legend.get_window_extent()
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, legend.get_texts()[0].get_text()
        assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1, legend.get_texts()[0].get_text()
    return fig


def test_the_report_of_a_one_second_log_bins_and_draws_that_second(tmp_path: Path):
    import matplotlib.pyplot as plt

    # Two routers (their drift legend fits the figure); unpriced models (the cost panel says so).
    _timed_log(tmp_path / "log.db", timedelta(milliseconds=25), ("task_experts", "mf"),
               ("big", "small"))  # fmt: skip
    report = build_report(tmp_path / "log.db")
    assert report.bins[0].seconds == 0.2 and sum(b.calls for b in report.bins) == 40
    fig = _check_time_axes(report, timedelta(milliseconds=25))
    cost = {ax.get_label(): ax for ax in fig.axes}["cost"]
    assert cost.get_lines() == []  # no made-up $0 line
    assert "no price for big, small" in " ".join(t.get_text() for t in cost.texts).replace(
        "\n", " "
    )
    plt.close(fig)
    text = report.format()
    assert "Traffic per 200 ms (UTC)" in text
    assert "40 calls from 2026-03-02 09:00:00.000 to 2026-03-02 09:00:00.975 UTC" in text
    assert "  2026-03-02 09:00:00.200 " in text


def test_the_report_of_a_month_long_log_bins_and_draws_that_month(tmp_path: Path):
    import matplotlib.pyplot as plt

    step = timedelta(hours=18, minutes=30)  # 40 calls over 30 days
    _timed_log(tmp_path / "log.db", step, ("task_experts",), (STRONG, WEAK))
    report = build_report(tmp_path / "log.db")
    assert report.bins[0].seconds == 7 * 86400
    fig = _check_time_axes(report, step)
    cost = {ax.get_label(): ax for ax in fig.axes}["cost"]
    spent, always = cost.get_lines()
    assert spent.get_ydata()[-1] == pytest.approx(report.cost.cost_usd)
    assert always.get_ydata()[-1] == pytest.approx(report.cost.always_strong_usd)
    plt.close(fig)
    assert "Traffic per week (UTC)" in report.format()


def test_the_wilson_interval_holds_the_observed_share():
    # A bucket the strong model won every time has share 1: its interval must reach 1 (the
    # plot's error bar below it is share - low, above it high - share, neither negative).
    for n in range(1, 300):
        for share in (0.0, 1.0, *(k / n for k in range(1, n))):
            low, high = wilson_interval(share, n)
            assert 0.0 <= low <= share <= high <= 1.0, (share, n)


def test_a_price_for_a_model_the_log_never_saw_is_warned_about(tmp_path: Path, capsys):
    # A trial: "--price=nosuchmodel=1,2" was taken silently (a misspelt name prices nothing).
    path = tmp_path / "log.db"
    _timed_log(path, timedelta(minutes=1), ("task_experts", "mf"), ("big", "small"))
    assert build_report(path).models == ("big", "small")
    assert main(["report", "--log", str(path), "--price=nosuchmodel=1,2", "--price=big=3,4"]) == 0
    err = capsys.readouterr().err
    assert (
        "warning: --price nosuchmodel=...: no call of the log names model 'nosuchmodel', so this "
        "price is unused (the log's models: big, small)"
    ) in err
    assert "'big'" not in err


def test_unknown_cost_is_reported_as_unknown_not_zero(tmp_path: Path, capsys):
    # Unpriced models ("big", "small"): no call's cost is known, which is not a cost of $0.
    _timed_log(tmp_path / "log.db", timedelta(minutes=1), ("task_experts", "mf"), ("big", "small"))
    report = build_report(tmp_path / "log.db")
    assert report.cost.total_cost_usd is None and report.cost.priced_calls == 0
    assert all(b.cost_usd is None and b.priced_calls == 0 for b in report.bins)
    text_report = report.format()
    assert "$0.0000" not in text_report and "spend: unknown" in text_report
    assert main(["report", "--log", str(tmp_path / "log.db"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cost"]["total_cost_usd"] is None
    assert [b["cost_usd"] for b in data["bins"]] == [None] * len(report.bins)
    # Nothing compares: what was spent and what always-strong would cost are unknown, not $0.
    assert data["cost"]["cost_usd"] is None and data["cost"]["always_strong_usd"] is None
    assert [b["always_strong_usd"] for b in data["bins"]] == [None] * len(report.bins)
    # Only the weak model priced: a mix, and the report says how many calls are priced.
    mixed = build_report(tmp_path / "log.db", prices={"small": (1, 3)})
    weak = 40 - mixed.strong
    assert 0 < weak < 40 and mixed.cost.priced_calls == weak
    assert mixed.cost.total_cost_usd == pytest.approx(weak * (40 * 1 + 200 * 3) / 1e6)
    assert f"known spend over the {weak} of 40 calls with a known cost" in mixed.format()
    assert [b.priced_calls for b in mixed.bins] == [b.calls - b.strong for b in mixed.bins]
    # Only the strong model priced: its calls compare (cost = always-strong), the weak ones do
    # not, so their "saving" is not the log's and the report says so.
    strong_only = build_report(tmp_path / "log.db", prices={"big": (2.5, 10)})
    assert 0 < strong_only.cost.calls_compared < 40
    assert strong_only.cost.savings_usd is None and strong_only.cost.savings_share is None
    assert "saving: unknown (only these" in strong_only.format()
    assert "saved" not in strong_only.format()
    both = build_report(tmp_path / "log.db", prices={"big": (2.5, 10), "small": (0.15, 0.6)})
    assert both.cost.calls_compared == 40 and both.cost.savings_share > 0


def test_the_calibration_size_is_printed_once(tmp_path: Path):
    from dataclasses import replace

    _timed_log(tmp_path / "log.db", timedelta(minutes=1), ("task_experts",), (STRONG, WEAK))
    report = build_report(tmp_path / "log.db")
    [drift] = report.drift
    assert drift.reference_size == 498 and "498" in drift.reference  # its name says the size
    [line] = [line for line in report.format().splitlines() if "calibration:" in line]
    assert line.count("498") == 1, line
    # A calibration whose name does not say its size gets it after the name.
    unnamed = replace(report, drift=(replace(drift, reference="my prompts"),))
    assert "    calibration: my prompts, 498 prompts" in unnamed.format().splitlines()


def test_psi_is_read_against_its_sampling_noise(tmp_path: Path, data_dir: Path, sqlite_log):
    from routellm_base.log.report import psi_noise_95

    # Twelve calls drawn from the calibration set itself: their PSI is large, and chance.
    prompts = [
        json.loads(line)["prompt"] for line in (data_dir / "arena_hard" / "questions.jsonl").open()
    ]
    engine = RoutingEngine(load_router("task_experts"), strong_share=0.5)
    log = RoutingLog(tmp_path / "log.db")
    for prompt in prompts[:12]:
        log.record(engine.decide(prompt, strong_model="big", weak_model="small"), conversation=prompt,
                   strong_model="big", weak_model="small")  # fmt: skip
    log.close()
    report = build_report(tmp_path / "log.db")
    [drift] = report.drift
    assert drift.psi > 0.25 and drift.psi <= drift.psi_noise_95
    [line] = [line for line in report.format().splitlines() if "PSI" in line]
    assert "could be chance" in line and "shift" not in line
    # The plot's legend gives the same noise level beside the PSI.
    import matplotlib.pyplot as plt

    from routellm_base.log.report_plot import report_figure

    fig = report_figure(report)
    labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts]
    plt.close(fig)
    assert any(f"chance up to {drift.psi_noise_95:.3f}" in label for label in labels), labels
    assert any(f"KS {drift.ks:.3f} (chance up to" in label for label in labels), labels
    # The fixture's 290 maths calls against a chat calibration: above the noise, and read.
    [drift] = build_report(sqlite_log[0]).drift
    assert drift.psi > drift.psi_noise_95
    # The noise level against a brute-force one: 40 uniform calls against exact deciles.
    rng = np.random.default_rng(1)
    edges = np.linspace(0, 1, 11)[1:-1]
    shares = [np.bincount(np.searchsorted(edges, rng.random(40)), minlength=10) / 40
              for _ in range(4000)]  # fmt: skip
    psis = [np.sum((np.maximum(s, 1e-4) - 0.1) * np.log(np.maximum(s, 1e-4) / 0.1)) for s in shares]
    assert psi_noise_95(40, None) == pytest.approx(np.quantile(psis, 0.95), rel=0.05)
    assert psi_noise_95(40, 498) > psi_noise_95(40, None) > psi_noise_95(400, None)


def test_the_judged_panel_counts_do_not_overlap(tmp_path: Path):
    import matplotlib.pyplot as plt

    from routellm_base.log.report import JudgedBucket, JudgedSummary
    from routellm_base.log.report_plot import report_figure

    _timed_log(tmp_path / "log.db", timedelta(minutes=1), ("task_experts",), (STRONG, WEAK))
    # Neighbouring buckets at close win rates (as equal-count buckets of clustered rates are).
    buckets = tuple(
        JudgedBucket(x - 0.005, x + 0.005, 4, 2, 2, 0, x) for x in (0.50, 0.51, 0.52, 0.9)
    )
    judged = JudgedSummary(True, 16, 16, {"judge": 16}, buckets, 0.5, 16)
    report = replace_report(build_report(tmp_path / "log.db"), judged=judged)
    fig = report_figure(report)
    fig.draw_without_rendering()
    panel = {ax.get_label(): ax for ax in fig.axes}["judged"]
    counts = [t for t in panel.texts if t.get_text().startswith("n=") and t.get_visible()]
    boxes = [t.get_window_extent() for t in counts]
    assert len(boxes) >= 2  # the far bucket's and at least one of the close ones
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    plt.close(fig)


def test_time_bins_align_to_the_calendar(tmp_path: Path):
    wednesday = datetime(2026, 3, 4, 15, 30, tzinfo=timezone.utc)
    _timed_log(tmp_path / "weeks.db", timedelta(days=1), ("task_experts",), (STRONG, WEAK),
               start=wednesday)  # fmt: skip
    weeks = build_report(tmp_path / "weeks.db")
    assert weeks.bins[0].seconds == 7 * 86400 and weeks.bins[0].start == datetime(
        2026, 3, 2, tzinfo=timezone.utc
    )
    assert all(b.start.weekday() == 0 and b.start.time().isoformat() == "00:00:00"
               for b in weeks.bins)  # fmt: skip
    assert build_report(tmp_path / "weeks.db", every=2 * 7 * 86400).bins[0].start.weekday() == 0
    _timed_log(tmp_path / "months.db", timedelta(days=4), ("task_experts",), (STRONG, WEAK),
               start=wednesday)  # fmt: skip
    months = build_report(tmp_path / "months.db")
    assert [(b.start.month, b.start.day, b.start.hour, b.unit) for b in months.bins] == [
        (m, 1, 0, "month") for m in (3, 4, 5, 6, 7, 8)
    ]
    assert [b.seconds / 86400 for b in months.bins] == [31, 30, 31, 30, 31, 31]
    assert sum(b.calls for b in months.bins) == 40 and "Traffic per month (UTC)" in months.format()
    days = build_report(tmp_path / "months.db", every=86400)
    assert all(b.start.time().isoformat() == "00:00:00" for b in days.bins)


def _tick_gaps(ax) -> list[float]:  # type: ignore[no-untyped-def]
    """The space between neighbouring x tick labels, in ems of their font (negative: overlap;
    under one em, labels like "09:00:00.25" run together as they read)."""
    ax.figure.draw_without_rendering()
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    em = labels[0].get_fontsize() * ax.figure.dpi / 72
    boxes = sorted((t.get_window_extent() for t in labels), key=lambda b: b.x0)
    return [(b.x0 - a.x1) / em for a, b in zip(boxes, boxes[1:])]


def test_the_plot_time_axis_labels_never_overlap_and_every_bin_is_drawn(tmp_path: Path):
    import matplotlib.pyplot as plt

    from routellm_base.log.report_plot import report_figure

    # A 0.3 s log: sub-second ticks.
    _timed_log(tmp_path / "short.db", timedelta(milliseconds=7.5), ("task_experts",),
               (STRONG, WEAK))  # fmt: skip
    fig = report_figure(build_report(tmp_path / "short.db"))
    for name in ("traffic", "cost"):
        gaps = _tick_gaps({ax.get_label(): ax for ax in fig.axes}[name])
        assert len(gaps) >= 2 and min(gaps) >= 1, (name, gaps)
    plt.close(fig)
    # A 4-month log in hourly bins: each bin far narrower than a pixel, each drawn.
    _timed_log(tmp_path / "long.db", timedelta(days=3), ("task_experts",), (STRONG, WEAK))
    report = build_report(tmp_path / "long.db", every=3600)
    fig = report_figure(report)
    traffic = {ax.get_label(): ax for ax in fig.axes}["traffic"]
    assert min(_tick_gaps(traffic)) >= 1
    strong, weak = traffic.containers
    assert len(strong) == len(weak) == len(report.bins) == 40
    pixels_per_point = fig.dpi / 72
    for bar, b in zip(weak, report.bins):
        assert bar.get_height() == b.calls - b.strong
        fill = bar.get_window_extent().width
        edge = bar.get_linewidth() * pixels_per_point if bar.get_edgecolor()[3] > 0 else 0.0
        assert fill < 1 and fill + edge >= 1  # narrower than a pixel, drawn by its edge
    plt.close(fig)


def test_a_long_checkpoint_path_keeps_the_drift_legend_inside_the_figure(tmp_path: Path):
    import shutil

    import matplotlib.pyplot as plt

    from routellm_base.checkpoints import BUNDLED_DIR, BUNDLED_ROUTERS
    from routellm_base.log.report_plot import report_figure

    folder = tmp_path / "experiments" / "2026-12-06-learning-loop-run" / "router"
    shutil.copytree(BUNDLED_DIR / BUNDLED_ROUTERS["task_experts"][0], folder)
    _timed_log(tmp_path / "log.db", timedelta(milliseconds=3), (str(folder),), (STRONG, WEAK))
    report = build_report(tmp_path / "log.db")
    [drift] = report.drift
    assert drift.ks is not None  # the legend carries the KS and PSI figures
    fig = report_figure(report)
    assert texts_outside(fig) == []
    plt.close(fig)


def test_the_judged_panel_shows_every_bucket_count_inside_the_panel(tmp_path: Path):
    import matplotlib.pyplot as plt

    from routellm_base.log.report import JudgedBucket, JudgedSummary
    from routellm_base.log.report_plot import report_figure

    _timed_log(tmp_path / "log.db", timedelta(minutes=1), ("task_experts",), (STRONG, WEAK))
    # The learning loop's buckets: the last two at close win rates, both judged 1.0.
    buckets = (
        JudgedBucket(0.120, 0.476, 4, 0, 3, 1, 0.232),
        JudgedBucket(0.498, 0.543, 4, 0, 0, 4, 0.513),
        JudgedBucket(0.618, 0.926, 4, 2, 0, 2, 0.774),
        JudgedBucket(0.928, 0.945, 4, 4, 0, 0, 0.936),
        JudgedBucket(0.949, 0.967, 4, 4, 0, 0, 0.958),
    )
    judged = JudgedSummary(True, 20, 20, {"judge": 20}, buckets, 1.0, 13)
    report = replace_report(build_report(tmp_path / "log.db"), judged=judged)
    fig = report_figure(report)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    panel = {ax.get_label(): ax for ax in fig.axes}["judged"]
    counts = [t for t in panel.texts if t.get_text().startswith("n=")]
    assert len(counts) == 5 and all(t.get_visible() for t in counts)  # none hidden
    boxes = [t.get_window_extent(renderer) for t in counts]
    inside = panel.get_window_extent(renderer)
    for box in boxes:
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1, box
        assert inside.y0 <= box.y0 and box.y1 <= inside.y1, box  # not across the top edge
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    legend = panel.get_legend().get_window_extent(renderer)
    assert not any(box.overlaps(legend) for box in boxes)
    plt.close(fig)


def test_a_log_that_cannot_be_read_is_a_one_line_error(tmp_path: Path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    assert main(["report", "--log", str(notes)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"routellm: error: report: {notes} is not a routing log")
    assert "not a SQLite database" in err
    assert notes.read_text() == "hello\n"  # untouched
    url = "postgresql+psycopg://u@127.0.0.1:1/db"
    assert main(["report", "--log", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"routellm: error: report: cannot connect to the routing log {url}")


def test_a_report_router_that_names_nothing_is_an_error(tmp_path: Path, capsys):
    _timed_log(tmp_path / "log.db", timedelta(minutes=1), ("task_experts",), (STRONG, WEAK))
    assert main(["report", "--log", str(tmp_path / "log.db"), "--router", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("routellm: error: report: --router nope: unknown router 'nope'")
    with pytest.raises(RoutingInputError, match="--router nope"):
        build_report(tmp_path / "log.db", routers=["nope"])


def test_a_report_router_of_no_logged_checkpoint_is_an_error(tmp_path: Path, capsys):
    # --router is where a logged checkpoint's calibration is looked for, not a filter: one that
    # matches none of the log's checkpoints changed nothing, and must not pass in silence.
    _timed_log(tmp_path / "log.db", timedelta(minutes=1), ("task_experts",), (STRONG, WEAK))
    assert main(["report", "--log", str(tmp_path / "log.db"), "--router", "mf"]) == 2
    err = capsys.readouterr().err
    logged = load_router("task_experts").metadata["checkpoint_id"][:12]
    mf = load_router("mf").metadata["checkpoint_id"][:12]
    assert err.startswith(f"routellm: error: report: --router mf: its checkpoint ({mf})")
    assert f"its scored calls are from task_experts@{logged} (40 calls)" in err
    with pytest.raises(RoutingInputError, match="--router mf: .* routed none of this log's calls"):
        build_report(tmp_path / "log.db", routers=["mf"])
    # The logged router's own checkpoint is accepted (as the name already finds it).
    assert main(["report", "--log", str(tmp_path / "log.db"), "--router", "task_experts"]) == 0


def test_every_takes_milliseconds_and_fractions_and_says_what_it_takes(tmp_path: Path):
    assert parse_every("1ms") == 0.001 and parse_every("50ms") == 0.05
    assert parse_every("0.05s") == 0.05 and parse_every("0.05") == 0.05
    assert parse_every("1.5m") == 90 and parse_every("30") == 30 and parse_every("2w") == 14 * 86400
    for bad in ("0", "0s", "0.5ms", "-1s", "1y", "h", "1e3"):
        with pytest.raises(RoutingInputError) as error:
            parse_every(bad)
        assert "ms, s, m, h, d or w" in str(error.value)
        assert "a bare number is seconds" in str(error.value) and "at least 1 ms" in str(
            error.value
        )
    _timed_log(tmp_path / "log.db", timedelta(milliseconds=7.5), ("task_experts",), (STRONG, WEAK))
    report = build_report(tmp_path / "log.db", every=parse_every("50ms"))
    assert report.bins[0].seconds == 0.05 and sum(b.calls for b in report.bins) == 40
    assert "Traffic per 50 ms (UTC)" in report.format()


def test_a_one_call_report_says_call(tmp_path: Path):
    import matplotlib.pyplot as plt

    from routellm_base.log.report_plot import report_figure

    log = RoutingLog(tmp_path / "log.db")
    log.record(RoutingEngine("random", threshold=0.5).decide("hello"))
    log.close()
    report = build_report(tmp_path / "log.db")
    assert "1 call from " in report.format() and "1 calls" not in report.format()
    fig = report_figure(report)
    assert fig._suptitle.get_text() == "routellm report: 1 call"
    plt.close(fig)


def _partly_priced_log(path: Path) -> None:
    """10 calls within 45 ms, each with its cost stored, between models the report has no price
    for: the strong calls compare with always-strong (same model), the weak ones cannot."""
    from routellm_base import RandomRouter

    engine = RoutingEngine(RandomRouter(seed=0), threshold=0.5)
    log = RoutingLog(path)
    for i in range(10):
        decision = engine.decide(f"question {i}", strong_model="big", weak_model="small")
        cost = 1e-4 if decision.side == "strong" else 4.5e-6
        log.record(decision, conversation=f"question {i}", strong_model="big", weak_model="small",
                   input_tokens=40, output_tokens=200, cost_usd=cost)  # fmt: skip
    assert log.close(timeout=60)
    db = create_engine(f"sqlite:///{path}")
    with db.begin() as connection:
        redate_calls(connection, lambda i: START + timedelta(minutes=10, milliseconds=5 * i))
    db.dispose()


def test_the_cost_plot_compares_spent_and_always_strong_over_the_same_calls(tmp_path: Path):
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from routellm_base.log.report_plot import report_figure

    _partly_priced_log(tmp_path / "log.db")
    report = build_report(tmp_path / "log.db", every=3600)
    c = report.cost
    assert 0 < c.calls_compared < report.calls and c.total_cost_usd > c.cost_usd
    # The bins (and so the JSON) sum to the summary's figures, over the compared calls.
    assert sum(b.compared_calls for b in report.bins) == c.calls_compared
    assert sum(b.compared_cost_usd for b in report.bins) == pytest.approx(c.cost_usd)
    assert sum(b.always_strong_usd for b in report.bins) == pytest.approx(c.always_strong_usd)
    fig = report_figure(report)
    cost = {ax.get_label(): ax for ax in fig.axes}["cost"]
    spent, always = cost.get_lines()[:2]
    spent_y, always_y = np.asarray(spent.get_ydata()), np.asarray(always.get_ydata())
    assert spent_y[-1] == pytest.approx(c.cost_usd)  # as the text box says
    assert always_y[-1] == pytest.approx(c.always_strong_usd)
    assert np.all(spent_y <= always_y + 1e-15)
    # The calls were made within 45 ms of an hour's bin: the line rises at their times, not
    # evenly across the hour.
    x = np.asarray(mdates.date2num(spent.get_xdata()))
    risen = x[np.argmax(spent_y >= spent_y[-1] - 1e-15)]
    assert risen <= mdates.date2num(report.last) + 1e-9
    plt.close(fig)


def test_small_costs_keep_their_significant_digits():
    from routellm_base.log.report import usd_text

    assert usd_text(4.5e-6) == "$0.0000045" and usd_text(0.00095) == "$0.00095"
    assert usd_text(0.0123) == "$0.0123" and usd_text(0.0) == "$0.0000"
    assert usd_text(1234.5) == "$1,234.50" and usd_text(None) == "unknown"


def test_the_traffic_table_shows_a_bin_of_microdollars(tmp_path: Path):
    _partly_priced_log(tmp_path / "log.db")
    text = build_report(tmp_path / "log.db", every=0.005).format()
    assert "$0.0000045" in text  # a weak call's bin, not "$0.0000"


def test_the_judged_panel_zooms_on_clustered_win_rates(tmp_path: Path):
    """300 judged calls all in 0.46-0.56 (the bundled router on chat traffic): the x axis
    spans the data with a margin, not 0-1, so points, bars and counts spread apart."""
    import matplotlib.pyplot as plt

    from routellm_base.log.report import JudgedBucket, JudgedSummary
    from routellm_base.log.report_plot import report_figure

    _timed_log(tmp_path / "log.db", timedelta(minutes=1), ("task_experts",), (STRONG, WEAK))
    rates = (0.47, 0.49, 0.51, 0.53, 0.55)
    buckets = tuple(JudgedBucket(x - 0.01, x + 0.01, 60, 30, 28, 2, x) for x in rates)
    judged = JudgedSummary(True, 300, 300, {"judge": 300}, buckets, 0.5, 300)
    report = replace_report(build_report(tmp_path / "log.db"), judged=judged)
    fig = report_figure(report)
    fig.draw_without_rendering()
    panel = {ax.get_label(): ax for ax in fig.axes}["judged"]
    left, right = panel.get_xlim()
    assert left < min(rates) and max(rates) < right and right - left < 0.3
    counts = [t for t in panel.texts if t.get_text().startswith("n=")]
    boxes = [t.get_window_extent() for t in counts]
    assert len(boxes) == len(rates)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    plt.close(fig)


def test_the_drift_legend_wraps_a_calibration_name_inside_the_figure(tmp_path: Path):
    import matplotlib.pyplot as plt

    from routellm_base.log.report_plot import report_figure

    _timed_log(tmp_path / "log.db", timedelta(minutes=1), ("task_experts",), (STRONG, WEAK))
    report = build_report(tmp_path / "log.db")
    fig = report_figure(report)
    legend = {ax.get_label(): ax for ax in fig.axes}["drift"].get_legend()
    [label] = [t.get_text() for t in legend.texts if "its calibration" in t.get_text()]
    # The whole name, on lines short enough for the legend (it was cut: "... Chatbot Arena...").
    assert " ".join(label.split()) == (
        "its calibration: Arena-Hard-Auto v0.1 questions (498 real Chatbot Arena prompts)"
    )
    assert max(len(line) for line in label.splitlines()) <= 70
    assert texts_outside(fig) == []
    plt.close(fig)


def test_too_few_scored_calls_measure_no_drift(tmp_path: Path):
    import matplotlib.pyplot as plt

    from routellm_base.log.report import MIN_DRIFT_CALLS
    from routellm_base.log.report_plot import report_figure

    engine = RoutingEngine(load_router("task_experts"), strong_share=0.5)
    note = f"too few scored calls (1) to measure drift: it takes {MIN_DRIFT_CALLS} or more"
    with RoutingLog(tmp_path / "log.db") as log:
        log.record(engine.decide("What is 2+2?", strong_model=STRONG, weak_model=WEAK),
                   strong_model=STRONG, weak_model=WEAK)  # fmt: skip
    report = build_report(tmp_path / "log.db")
    [drift] = report.drift
    # No KS distance (it cannot pass 1, yet its noise level was 1.359) nor PSI (its own level).
    assert (drift.ks, drift.ks_critical_95, drift.psi, drift.psi_noise_95) == (None,) * 4
    assert drift.calls == 1 and drift.note == note
    assert drift.reference.startswith("Arena-Hard-Auto")
    text = report.format()
    assert f"    {note}" in text.splitlines()
    assert "KS distance" not in text and "PSI" not in text
    [as_json] = report.to_dict()["drift"]
    assert as_json["note"] == note and as_json["ks"] is None and as_json["psi"] is None
    # The plot draws no one-step CDF: the panel says why instead.
    fig = report_figure(report)
    panel = {ax.get_label(): ax for ax in fig.axes}["drift"]
    assert panel.get_lines() == [] and panel.get_legend() is None
    assert any(note in " ".join(t.get_text().split()) for t in panel.texts)
    assert texts_outside(fig) == []
    plt.close(fig)
