"""``routellm eval --pool`` on a tiny synthetic LLMRouter-format benchmark: the zero-shot router
sees the data's real costs, the help says which split eval reads, --references is refused, and
the plot keeps every text inside the figure, every model's name clear of the others and of the
markers and curves, and the legend off the data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from plot_geometry import overlapping_pairs, texts_outside

from routellm_base.cli import build_parser, main
from routellm_base.pool.evaluation import PLOT_DPI, evaluate_pool, pool_figure

PRICES = {  # USD per million tokens: three tiers
    "tiny-model": (0.1, 0.1),
    "middle-model": (0.9, 0.9),
    "big-model": (10.0, 30.0),
}
EASY = ["hi", "say hello", "what is 2 + 2?", "name a colour", "thanks!", "good morning"]
HARD = [
    "Prove that there are infinitely many primes p such that p + 2 is also prime, or explain "
    "precisely why the twin prime conjecture remains open and what Zhang's bound shows.",
    "Write a lock-free concurrent hash map in C++ with linearizable resize, and prove it correct.",
    "Derive the Black-Scholes partial differential equation from a self-financing portfolio "
    "argument and solve it for a European call with dividends.",
    "Explain the proof of Fermat's last theorem via modularity of semistable elliptic curves.",
    "Design a distributed consensus protocol tolerating Byzantine faults and analyse its latency.",
    "Implement a dependently typed lambda calculus type checker with bidirectional inference.",
]


def _benchmark(root: Path) -> Path:
    """``root/llmrouter/{test,prices}.json``: easy prompts every model answers, hard ones only the
    big model does (the middle one half of them)."""
    folder = root / "llmrouter"
    folder.mkdir(parents=True)
    records = []
    for i, text in enumerate(EASY + HARD):
        hard = text in HARD
        scores = {"tiny-model": 0.0 if hard else 1.0, "middle-model": float(not hard or i % 2),
                  "big-model": 1.0}  # fmt: skip
        records.append({"question": f"{text} (#{i})", "scores": scores})
    (folder / "test.json").write_text(json.dumps(records))
    (folder / "prices.json").write_text(
        json.dumps({m: {"input": i, "output": o} for m, (i, o) in PRICES.items()})
    )
    return root


def _curve_rows(text: str, router: str) -> list[str]:
    """The λ-table rows printed under ``router``'s summary line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{router}: AIQ"))
    rows = []
    for line in lines[start + 2 :]:
        if not re.match(r"^\s+[\d.inf]+\s+[\d.]+\s+[\d.]+$", line):
            break
        rows.append(line)
    return rows


def test_zero_shot_draws_a_curve_from_the_data_costs(tmp_path: Path, capsys):
    root = _benchmark(tmp_path)
    args = ["eval", "--pool", "--benchmark", f"llmrouter:{root}", "--router", "zero_shot"]
    assert main(args) == 0
    text = capsys.readouterr().out
    rows = _curve_rows(text, "zero_shot")
    points = {tuple(row.split()[1:]) for row in rows}
    # With every model priced alike it took the cheapest at every λ: one point.
    assert len(points) > 1, text
    costs = sorted(float(p[1]) for p in points)
    assert costs[-1] > 10 * costs[0]  # from the big model's cost down to the tiny one's


def test_the_help_says_eval_reads_the_test_split_and_references_is_refused(tmp_path, capsys):
    ev = build_parser()._subparsers._group_actions[0].choices["eval"]  # noqa: SLF001
    text = " ".join(ev.format_help().split())
    assert "train by default" not in text
    assert "SPLIT is test unless given" in text and "(SPLIT test unless given)" in text
    root = _benchmark(tmp_path)
    args = ["eval", "--pool", "--benchmark", f"llmrouter:{root}", "--router", "zero_shot"]
    assert main([*args, "--references"]) == 2
    err = capsys.readouterr().err
    assert "--references" in err and "drop --references" in err


def _crowded_report():
    """Eleven models with RouterBench's long names, the priciest two close together at the
    right edge, and a router's curve running past them."""
    rng = np.random.default_rng(3)
    names = [
        "WizardLM/WizardLM-13B-V1.2", "claude-instant-v1", "claude-v1", "claude-v2",
        "gpt-3.5-turbo-1106", "gpt-4-1106-preview", "meta/code-llama-instruct-34b-chat",
        "meta/llama-2-70b-chat", "mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat",
        "zero-one-ai/Yi-34B-Chat",
    ]  # fmt: skip
    per_call = np.array([0.12, 0.37, 3.6, 3.9, 0.42, 5.0, 0.31, 0.38, 0.08, 0.25, 0.33]) / 1000
    quality = np.array([0.56, 0.68, 0.74, 0.57, 0.75, 0.88, 0.61, 0.63, 0.59, 0.75, 0.78])
    n = 400
    scores = (rng.random((n, len(names))) < quality).astype(float)
    costs = per_call * rng.uniform(0.8, 1.2, (n, len(names)))
    pred = np.clip(scores * 0.6 + rng.random(scores.shape) * 0.4, 0, 1)
    return evaluate_pool({"/tmp/experiments/rb-knn": pred}, scores, costs, names)


def test_the_pool_plot_keeps_its_texts_inside_and_clear(tmp_path: Path):
    import matplotlib.pyplot as plt

    report = _crowded_report()
    fig = pool_figure(report, "RouterBench test split, 400 items: router rb-knn", at_cost=2.5)
    assert texts_outside(fig, PLOT_DPI) == []
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    [ax] = fig.axes
    frame = ax.get_window_extent(renderer)
    names = {m.split("/")[-1] for m in report.models}
    labels = [t for t in ax.texts if t.get_text() in names]
    assert sorted(t.get_text() for t in labels) == sorted(names)  # every model named once
    boxes = [t.get_window_extent(renderer) for t in labels]
    for box in boxes:  # inside the axes: not across the right axis line nor the edge
        assert (
            frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 <= box.y1 <= frame.y1
        )
    assert overlapping_pairs(boxes) == []
    # No name covers a marker (its own or another's): the single models and the oracle.
    points = ax.transData.transform(
        list(zip(report.single_cost, report.single_quality))
        + [(report.oracle_cost, report.oracle_quality)]
    )
    assert not [(t.get_text(), x, y) for t, b in zip(labels, boxes) for x, y in points
                if b.contains(x, y)]  # fmt: skip
    # The legend, under the axes, covers no point and explains the per-λ dots and the line.
    legend = ax.get_legend()
    box = legend.get_window_extent(renderer)
    every = np.concatenate([points, ax.transData.transform(
        np.column_stack([report.curves[0].cost, report.curves[0].quality]))])  # fmt: skip
    assert not any(box.contains(x, y) for x, y in every)
    entries = [t.get_text() for t in legend.get_texts()]
    assert any("one point per cost weight" in e for e in entries)
    assert any(e.startswith("--at-cost $2.5") for e in entries)
    at_cost = [line for line in ax.lines if line.get_label().startswith("--at-cost")]
    assert len(at_cost) == 1 and set(at_cost[0].get_xdata()) == {2.5}
    # Readable dollar ticks on the log axis, not two powers of ten.
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert len(ticks) >= 4 and all(t.startswith("$") for t in ticks), ticks
    assert "$0.1" in ticks and "$1" in ticks
    plt.close(fig)


def test_eval_plot_titles_the_benchmark_router_and_items(tmp_path: Path, capsys, monkeypatch):
    import routellm_base.pool.evaluation as evaluation

    titles = []
    real = evaluation.pool_figure

    def spy(report, title="", at_cost=None):  # type: ignore[no-untyped-def]
        titles.append((title, at_cost))
        return real(report, title, at_cost)

    monkeypatch.setattr(evaluation, "pool_figure", spy)
    root = _benchmark(tmp_path)
    out = tmp_path / "curve.png"
    args = ["eval", "--pool", "--benchmark", f"llmrouter:{root}", "--router", "zero_shot"]
    assert main([*args, "--plot", str(out), "--at-cost", "1"]) == 0
    assert out.stat().st_size > 10_000
    assert titles == [("LLMRouter test split, 12 items: router zero_shot", 1.0)]


def test_a_bad_benchmark_is_named_with_evals_own_forms(capsys):
    """A trial: ``eval --pool --benchmark mmlu`` printed train's message (--data, rmb/log forms,
    "SPLIT train by default")."""
    for spec in ("mmlu", "rmb:pairs.jsonl"):
        assert main(["eval", "--pool", "--benchmark", spec, "--router", "pool_knn"]) != 0
        err = capsys.readouterr().err
        assert f"--benchmark {spec!r}" in err and "SPLIT test unless given" in err, err
        assert "--data" not in err and "train by default" not in err and "rmb:FILE" not in err


def test_eval_pool_refuses_the_two_model_options_it_does_not_read(tmp_path: Path, capsys):
    """A trial: ``eval --pool`` silently ignored --strong, --retarget and --seed."""
    root = _benchmark(tmp_path)
    args = ["eval", "--pool", "--benchmark", f"llmrouter:{root}", "--router", "zero_shot"]
    for extra, named in [
        (["--strong", "big-model", "--retarget"], "--strong, --retarget"),
        (["--weak", "tiny-model"], "--weak"),
        (["--seed", "0"], "--seed"),
        (["--data-dir", str(root)], "--data-dir"),
    ]:
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert f"--pool does not read {named}:" in err, err
    assert main([*args, "--no-progress"]) == 0  # no progress bar to turn off: accepted


def test_at_cost_outside_a_routers_costs_is_noted(tmp_path: Path, capsys):
    """A trial: ``--at-cost 0.5`` above every router's spend printed a quality, no note."""
    root = _benchmark(tmp_path)
    args = ["eval", "--pool", "--benchmark", f"llmrouter:{root}", "--router", "zero_shot"]
    for cost, said in [("50", "is above the most it spends"), ("0.001", "is below the least")]:
        assert main([*args, "--at-cost", cost]) == 0
        notes = [n for n in capsys.readouterr().out.splitlines() if n.startswith("note:")]
        assert len(notes) == 1 and f"zero_shot: --at-cost ${cost} {said}" in notes[0], notes
        assert main([*args, "--at-cost", cost, "--json"]) == 0
        [report] = json.loads(capsys.readouterr().out)
        assert [n.split(":")[0] for n in report["notes"]] == ["Zero router", "zero_shot"]
        assert all(said in n for n in report["notes"])
    assert main([*args, "--at-cost", "1", "--json"]) == 0  # inside: no note
    assert json.loads(capsys.readouterr().out)[0]["notes"] == []


def test_eval_pool_notes_a_router_trained_on_the_file_it_scores(
    tmp_path: Path, capsys, monkeypatch
):
    """A trial: ``eval --pool`` on pool_knn's own training split (llmrouter/train.json, listed in
    its model card) printed AIQ 0.640, no note."""
    import routellm_base.pool.command as command
    from routellm_base.hashing import sha256_file

    root = _benchmark(tmp_path)
    test_json = root / "llmrouter" / "test.json"
    loaded = command.load_pool_router

    def trained_on(name: str, sha256: str):
        router = loaded(name)
        router.metadata = {"training": {"data": [{"path": "llmrouter/x.json", "sha256": sha256}]}}
        return router

    args = ["eval", "--pool", "--benchmark", f"llmrouter:{root}", "--router", "zero_shot"]
    for sha256, noted in [(sha256_file(test_json), True), ("0" * 64, False)]:
        monkeypatch.setattr(command, "load_pool_router", lambda n, s=sha256: trained_on(n, s))
        assert main(args) == 0
        said = f"note: zero_shot was trained on {test_json}"
        assert (said in capsys.readouterr().out) is noted
        assert main([*args, "--json"]) == 0
        [report] = json.loads(capsys.readouterr().out)
        assert any("not held out" in n for n in report["notes"]) is noted


def test_eval_pool_names_the_splits_and_words_model_map_for_benchmark(tmp_path: Path, capsys):
    """A trial: ``llmrouter:DIR,validation`` failed with a bare 'No such file' error, and an
    unused --model-map spoke of --data, which eval does not take."""
    root = _benchmark(tmp_path)
    args = ["eval", "--pool", "--router", "zero_shot", "--benchmark"]
    assert main([*args, f"llmrouter:{root},validation"]) == 2
    err = capsys.readouterr().err
    assert "no split 'validation'" in err and "its splits: test" in err, err
    # The same loader reads train pool's --data: its default train split is checked alike.
    out = tmp_path / "pool-router"
    assert main(["train", "pool", "--data", f"llmrouter:{root}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--data 'llmrouter:" in err and "no split 'train'" in err and "its splits: test" in err
    assert main([*args, f"llmrouter:{root}", "--model-map", "nobody=big-model"]) == 2
    err = capsys.readouterr().err
    assert "which no --benchmark source has" in err and "--data" not in err, err


def test_train_pool_refuses_a_repeated_data_source(tmp_path: Path, capsys):
    """The same source twice (or two spellings of its folder) read every file twice; two splits
    of one folder share prices.json and are two sources."""
    root = _benchmark(tmp_path)
    folder = root / "llmrouter"
    (folder / "train.json").write_text(json.dumps([{"question": "another", "scores": {"big-model": 1.0}}]))
    out = tmp_path / "pool-router"
    args = ["train", "pool", "--out", str(out), "--data"]
    for first, second, said in [
        (f"llmrouter:{root},test", f"llmrouter:{root},test", "is given twice"),
        (f"llmrouter:{root},test", f"llmrouter:{folder},test", "name the same data"),
    ]:
        assert main([*args, first, "--data", second]) == 2
        err = capsys.readouterr().err
        assert f"--data {first}" in err and said in err and "read twice" in err, err
    assert not out.exists()
    assert main([*args, f"llmrouter:{root},test", "--data", f"llmrouter:{root}"]) == 0
    assert out.is_dir()


def test_train_pool_names_exclude_data_in_its_errors_and_wants_its_split(
    tmp_path: Path, capsys
):
    """A trial: a bad --exclude-data was reported as '--data ...', whose value was fine; and
    a RouterBench/LLMRouter exclusion without a split meant the train split."""
    root = _benchmark(tmp_path)
    args = ["train", "pool", "--out", str(tmp_path / "r"), "--data", f"llmrouter:{root},test"]
    for exclude, said in [
        ("nope.jsonl", "--exclude-data 'nope.jsonl': expected one of"),
        ("scores:e.jsonl", "--exclude-data 'scores:e.jsonl': unknown source 'scores'"),
        (f"llmrouter:{root},dev", f"--exclude-data 'llmrouter:{root},dev': no split 'dev'"),
        (f"llmrouter:{root}", "name the split to exclude, e.g."),
    ]:
        assert main([*args, "--exclude-data", exclude]) == 2
        err = capsys.readouterr().err
        assert said in err and "--data '" not in err, err
    assert not (tmp_path / "r").exists()


def test_an_at_cost_off_the_data_keeps_the_axis_on_the_data(tmp_path: Path):
    """A trial: ``--at-cost 1000 --plot`` stretched the x-axis to $1000, squashing the data,
    and the legend said "quality pool_knn 0.571" without the out-of-range caveat."""
    import matplotlib.pyplot as plt

    report = _crowded_report()
    most = max(float(np.max(c.cost)) for c in [report.zero, *report.curves])
    for at_cost, said, arrow in [(1000.0, "above", "\u2192"), (1e-6, "below", "\u2190")]:
        fig = pool_figure(report, "t", at_cost=at_cost)
        [ax] = fig.axes
        low, high = ax.get_xlim()
        assert low > 1e-6 and high < 10 * most  # the data's span, not the --at-cost
        [entry] = [t.get_text() for t in ax.get_legend().get_texts() if "--at-cost" in t.get_text()]
        assert f"{said} the costs drawn" in entry, entry
        assert ("its best point" if said == "above" else "its cheapest point") in entry
        assert [t for t in ax.texts if arrow in t.get_text()]  # marked at the edge
        assert texts_outside(fig, PLOT_DPI) == []
        plt.close(fig)
