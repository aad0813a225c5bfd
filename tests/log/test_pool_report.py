"""``routellm report`` on a log of calls routed among a pool of three models: each model's share of
the calls and of the spend, and its judged quality against its cost per call, as a table and as
plot panels, on a log of a third of a second and on one of four months. Every figure is checked
against the log's rows, counted independently."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from log_helpers import redate_calls
from pool_helpers import BIG, MID, PRICES, SMALL, pool_call, pool_engine, pool_judge
from sqlalchemy import create_engine

from routellm_base.cli import main
from routellm_base.log import RoutingLog, read_comparisons, read_decisions
from routellm_base.log.report import build_report
from routellm_base.log.report_plot import POOL_PANELS, report_figure
from routellm_base.shadow import ShadowRunner

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
COST_WEIGHTS = (0.02, 0.1, 10.0, 0.1)
"""Per call, in turn: the fixed predictions then choose BIG, MID, SMALL, MID."""


def _pool_log(path: Path, step: timedelta, calls: int = 40) -> None:
    """``calls`` pool calls ``step`` apart, every one shadowed (seeded) and judged."""
    engine = pool_engine()
    with RoutingLog(path, store_prompts=True, prices=PRICES) as log:
        runner = ShadowRunner(log, 1.0, judge=pool_judge(), seed=11, workers=1)
        for i in range(calls):
            pool_call(
                engine,
                log,
                f"question {i}",
                runner=runner,
                route={"cost_weight": COST_WEIGHTS[i % len(COST_WEIGHTS)]},
            )
        assert runner.flush(60)
    db = create_engine(f"sqlite:///{path}")
    with db.begin() as connection:
        redate_calls(connection, lambda i: START + i * step)
    db.dispose()


def _independent(path: Path) -> dict[str, dict[str, float]]:
    """Per model from the rows: calls, spend, wins, losses, ties."""
    rows = read_decisions(path)
    out: dict[str, dict[str, float]] = {m: Counter() for m in PRICES}  # type: ignore[misc]
    for r in rows:
        out[r["side"]]["calls"] += 1
        out[r["side"]]["spend"] += r["cost_usd"]
    for c in read_comparisons(path):
        a, b, v = c["strong_model"], c["weak_model"], c["verdict"]
        out[a]["wins" if v == "strong" else "losses" if v == "weak" else "ties"] += 1
        out[b]["wins" if v == "weak" else "losses" if v == "strong" else "ties"] += 1
    return out


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pool-report")
    short, long = folder / "short.db", folder / "long.db"
    _pool_log(short, timedelta(milliseconds=7.5))
    _pool_log(long, timedelta(days=3))
    return {"short": short, "long": long}


def test_the_pool_section_matches_the_rows(logs):
    path = logs["long"]
    report = build_report(path)
    pool = report.pool
    assert pool is not None and pool.calls == report.calls == 40 and report.pair_calls == 0
    assert pool.policies == {"cost_weight": 40}
    expected = _independent(path)
    total = sum(e["spend"] for e in expected.values())
    assert [m.model for m in pool.models] == [MID, SMALL, BIG]  # most calls first, then by name
    for m in pool.models:
        e = expected[m.model]
        assert m.calls == e["calls"] and m.call_share == pytest.approx(e["calls"] / 40)
        assert m.cost_usd == pytest.approx(e["spend"])
        assert m.spend_share == pytest.approx(e["spend"] / total)
        assert (m.wins, m.losses, m.ties) == (e["wins"], e["losses"], e["ties"])
        assert m.battles == e["wins"] + e["losses"] + e["ties"]
    assert pool.comparisons == pool.judged == 40
    by_name = {m.model: m for m in pool.models}
    # The judge prefers the big model's answers, and calls it a tie between the other two.
    assert by_name[BIG].judged_score == 1.0 and by_name[BIG].losses == 0
    assert by_name[BIG].cost_per_call > by_name[MID].cost_per_call > by_name[SMALL].cost_per_call
    # A pool log's traffic bins count calls per model; its cost has no always-strong side.
    assert sum(sum(b.models.values()) for b in report.bins) == 40
    assert report.cost.calls_compared == 0 and report.cost.unpriced_models == ()


def test_the_text_and_json_reports_show_the_pool(logs, tmp_path: Path, capsys):
    path = logs["short"]
    out = tmp_path / "pool.png"
    assert main(["report", "--log", str(path), "--plot", str(out)]) == 0
    text = capsys.readouterr().out
    assert "routed among a pool of 3 models" in text
    assert "Pool: 40 calls among 3 models (cost_weight x40)" in text
    assert "Judged quality against spend" in text and "40 judged of 40 comparisons" in text
    assert "always-strong" not in text and "strong share" not in text
    table = [line for line in text.splitlines() if not line.startswith(("plot:", "routing log"))]
    assert max(len(line) for line in table) <= 80  # the log's path and the plot's may be longer
    for name in (BIG, MID, SMALL):
        assert name in text  # short enough to print whole
    assert out.stat().st_size > 10_000
    assert main(["report", "--log", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    models = {m["model"]: m for m in data["pool"]["models"]}
    assert models[BIG]["judged_score"] == 1.0 and len(models[BIG]["interval_95"]) == 2
    assert all("models" in b for b in data["bins"])
    # No strong/weak call: the two-model figures are null, not 0 (62% of calls went to the
    # priciest model in a trial that read "strong": 0), the judged battles the pool's.
    assert data["strong"] is None and data["strong_share"] is None and data["judged"] is None
    assert data["pool"]["judged"] == 40
    for key in ("calls_compared", "cost_usd", "always_strong_usd", "savings_usd"):
        assert data["cost"][key] is None, key
    assert data["cost"]["total_cost_usd"] == pytest.approx(data["pool"]["cost_usd"])
    assert all(b["strong"] is None and b["strong_share"] is None for b in data["bins"])
    # The models' prices are not in the default table, but the log stored those its calls were
    # priced at: the saving is known without --price.
    assert data["pool"]["baseline_model"] == BIG and data["pool"]["savings_usd"] > 0
    assert "unknown (give --price" not in text


def test_the_pool_report_counts_savings_against_the_priciest_model(logs, tmp_path: Path, capsys):
    import matplotlib.pyplot as plt
    from plot_geometry import texts_outside

    path = logs["long"]
    rows = read_decisions(path)
    spent = sum(r["cost_usd"] for r in rows)
    # As PoolCostReport counts it: the same tokens, every call on the priciest model.
    big_in, big_out = PRICES[BIG]
    always = sum(r["input_tokens"] * big_in + r["output_tokens"] * big_out for r in rows) / 1e6
    report = build_report(path, prices=PRICES)
    pool = report.pool
    assert pool.baseline_model == BIG and pool.always_baseline_usd == pytest.approx(always)
    assert pool.savings_usd == pytest.approx(always - spent) and pool.savings_usd > 0
    assert pool.savings_share == pytest.approx((always - spent) / always)
    assert sum(b.always_baseline_usd for b in report.bins) == pytest.approx(always)
    text = report.format()
    assert f"against always {BIG} (same tokens at its price): ${always:,.4f}" in text
    assert f"saved ${always - spent:,.4f} ({(always - spent) / always:.1%})" in text
    assert max(len(line) for line in text.splitlines()[1:]) <= 80
    prices = [f"--price={m}={i},{o}" for m, (i, o) in PRICES.items()]
    assert main(["report", "--log", str(path), "--json", *prices]) == 0
    data = json.loads(capsys.readouterr().out)["pool"]
    assert data["baseline_model"] == BIG and data["savings_usd"] == pytest.approx(always - spent)
    # The plot: the always-priciest line, and dollar amounts with their "$".
    fig = report_figure(report)
    cost = {ax.get_label(): ax for ax in fig.axes}["cost"]
    [note] = [t.get_text() for t in cost.texts]
    assert f"40 pool calls: ${spent:,.4f} spent" in note and f"${always:,.4f} always" in note
    assert [line.get_label() for line in cost.lines] == ["spent", f"always {BIG}"]
    assert texts_outside(fig) == []
    plt.close(fig)


def test_a_given_price_reprices_a_pool_models_calls_and_the_baseline(logs):
    """As for two models: --price re-prices the spend of the model's calls, not only the
    always-priciest figure, so both use one price list."""
    path = logs["short"]
    rows = read_decisions(path)
    given = {**PRICES, BIG: (50.0, 100.0), SMALL: (1.0, 2.0)}
    price = given
    spent = (
        sum(
            r["input_tokens"] * price[r["side"]][0] + r["output_tokens"] * price[r["side"]][1]
            for r in rows
        )
        / 1e6
    )
    always = sum(r["input_tokens"] * 50.0 + r["output_tokens"] * 100.0 for r in rows) / 1e6
    report = build_report(path, prices={BIG: (50.0, 100.0), SMALL: (1.0, 2.0)})
    pool = report.pool
    assert pool.baseline_model == BIG and pool.always_baseline_usd == pytest.approx(always)
    assert pool.cost_usd == pytest.approx(spent) and report.cost.total_cost_usd == pytest.approx(
        spent
    )
    assert pool.savings_usd == pytest.approx(always - spent)
    mid = [r for r in rows if r["side"] == MID]
    assert report.cost.logged_cost_calls == len(mid) and report.cost.logged_cost_models == (MID,)
    assert report.cost.repriced_calls == len(rows) - len(mid)
    assert report.cost.prices[MID]["source"] == "log" and report.cost.prices[BIG]["source"] == (
        "given"
    )


def test_a_mixed_log_reports_the_two_model_part_alone(logs, tmp_path: Path):
    import shutil

    from log_helpers import decision
    from sqlalchemy import insert

    from routellm_base.log import comparisons

    path = tmp_path / "mixed.db"
    shutil.copy(logs["long"], path)
    with RoutingLog(path) as log:
        for i in range(10):
            log.record(decision("strong" if i < 4 else "weak"), strong_model="gpt-4o",
                       weak_model="gpt-4o-mini", input_tokens=100, output_tokens=50)  # fmt: skip
    pair_ids = [r["call_id"] for r in read_decisions(path) if r["pool_policy"] is None]
    db = create_engine(f"sqlite:///{path}")
    with db.begin() as connection:
        connection.execute(insert(comparisons), [
            {"call_id": c, "created_at": START, "answered_side": "weak", "verdict": v,
             "verdict_source": "judge"} for c, v in zip(pair_ids, ("strong", "weak", "tie"))
        ])  # fmt: skip
    db.dispose()
    report = build_report(path, prices={"strong-model": (2.5, 10), "weak-model": (0.15, 0.6)})
    assert report.calls == 50 and report.pair_calls == 10 and report.pool.calls == 40
    assert report.strong == 4 and report.strong_share == pytest.approx(0.4)  # not 4 / 50
    assert report.judged.comparisons == 3 and report.judged.judged == 3  # not the pool's 40
    assert report.pool.comparisons == report.pool.judged == 40
    assert report.cost.pair_calls == report.cost.calls_compared == 10
    assert report.cost.savings_usd is not None and report.cost.savings_usd > 0
    data = report.to_dict()
    assert data["strong_share"] == pytest.approx(0.4) and data["judged"]["comparisons"] == 3
    text = report.format()
    assert "10 between strong and weak (strong share 40.0%), 40 among a pool" in text
    # A trial: "saving: unknown (only these 10 of 50 calls can be compared ...)" though every
    # two-model call compared (the pool calls have their own saving, in the pool section).
    assert "saving: unknown" not in text and "10 calls: $" in text
    assert "(calls: all, pool calls too; strong: the share of the two-model calls)" in text


def test_a_two_model_report_has_no_pool_keys(tmp_path: Path):
    from log_helpers import decision

    with RoutingLog(tmp_path / "pair.db") as log:
        log.record(decision(), strong_model="gpt-4o", weak_model="gpt-4o-mini")
    report = build_report(tmp_path / "pair.db")
    data = report.to_dict()
    assert report.pool is None and "pool" not in data and "models" not in data["bins"][0]
    assert [
        ax.get_label() for ax in report_figure(report).axes if ax.get_label() in POOL_PANELS
    ] == []


@pytest.mark.parametrize("length", ["short", "long"])
def test_the_pool_plot_has_its_panels_uncut_and_unobstructed(logs, length, tmp_path: Path):
    import matplotlib.pyplot as plt

    report = build_report(logs[length])
    fig = report_figure(report)
    fig.savefig(tmp_path / f"{length}.png", dpi=110)  # a layout pass, as the CLI saves it
    renderer = fig.canvas.get_renderer()
    panels = {ax.get_label(): ax for ax in fig.axes if ax.get_label()}
    assert ["traffic", "cost", *POOL_PANELS] == [
        name for name in panels if name in ("traffic", "cost", *POOL_PANELS)
    ]
    assert "judged" not in panels and "drift" not in panels  # no win rates in a pool log
    figure_box = fig.bbox
    for ax in panels.values():
        title = ax.title.get_window_extent(renderer)
        assert figure_box.x0 <= title.x0 and title.x1 <= figure_box.x1, ax.get_label()
        legend = ax.get_legend()
        if legend is not None:
            box = legend.get_window_extent(renderer)
            assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1, ax.get_label()
            assert figure_box.y0 <= box.y0 and box.y1 <= figure_box.y1, ax.get_label()
    traffic = panels["traffic"]
    box, frame = (
        traffic.get_legend().get_window_extent(renderer),
        traffic.get_window_extent(renderer),
    )
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1  # inside its panel, above the bars
    tallest = max(bar.get_window_extent(renderer).y1 for bar in traffic.patches)
    assert box.y0 >= tallest
    share = panels["pool_share"]
    labels = [t.get_window_extent(renderer) for t in share.texts]
    assert len(labels) == 6 and not any(
        a.overlaps(b) for i, a in enumerate(labels) for b in labels[i + 1 :]
    )
    ticks = [t.get_window_extent(renderer) for t in share.get_yticklabels() if t.get_text()]
    assert len(ticks) == 3 and all(figure_box.x0 - 0.5 <= t.x0 for t in ticks)  # not cut
    quality = panels["pool_quality"]
    legend = quality.get_legend().get_window_extent(renderer)
    points = quality.transData.transform(
        [c.lines[0].get_xydata()[0] for c in quality.containers]  # each model's errorbar
    )
    assert len(points) == 3
    assert not any(legend.contains(x, y) for x, y in points)  # the legend covers no point
    assert legend.y1 <= quality.get_window_extent(renderer).y0  # under the panel
    plt.close(fig)


def test_a_one_call_pool_log_prices_its_baseline_from_the_log(tmp_path: Path, capsys):
    """A trial: a serve log of one pool call (prices in its [pool] config) reported "against
    always the priciest model: unknown (give --price ...)", ``cost.calls`` 0 beside
    ``priced_calls`` 1, "1 pool calls" and a cost axis of 0 to 5 under a bare 1e-7."""
    import matplotlib.pyplot as plt

    path = tmp_path / "one.db"
    _pool_log(path, timedelta(seconds=1), calls=1)
    assert main(["report", "--log", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pool"]["baseline_model"] == BIG and data["pool"]["savings_usd"] is not None
    assert data["cost"]["pair_calls"] == 0 and data["cost"]["priced_calls"] == 1
    assert "calls" not in data["cost"]
    # --price still wins over the log's prices.
    assert main(["report", "--log", str(path), "--json", f"--price={MID}=100,100"]) == 0
    assert json.loads(capsys.readouterr().out)["pool"]["baseline_model"] == MID
    fig = report_figure(build_report(path))
    fig.canvas.draw()
    cost = {ax.get_label(): ax for ax in fig.axes}["cost"]
    [note] = [t.get_text() for t in cost.texts]
    assert note.startswith("1 pool call: $") and "always " + BIG[:10] in note
    labels = [t.get_text() for t in cost.get_yticklabels() if t.get_text()]
    assert labels and all(label.startswith("$") for label in labels), labels
    assert len(set(labels)) == len(labels) and cost.yaxis.get_offset_text().get_text() == ""
    plt.close(fig)
