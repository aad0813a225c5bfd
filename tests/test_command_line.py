"""The ``routellm`` command line as a new user meets it: help text on every option, the data
folder from ``$ROUTELLM_DATA_DIR``, a closed pipe, benchmark file names, the curves plot."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from routellm_base import RandomRouter, RoutingEngine
from routellm_base.cli import EXIT_BROKEN_PIPE, build_parser, main
from routellm_base.data import DATA_DIR_ENV
from routellm_base.evals import curves_figure, evaluate, load_benchmark

ROOT = Path(__file__).resolve().parents[1]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _without_help(name: str, parser: argparse.ArgumentParser) -> list[str]:
    return [
        f"{name} {' / '.join(action.option_strings) or action.dest}"
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]


def test_every_option_of_every_subcommand_has_help_text() -> None:
    subcommands = _subcommands()
    assert {"route", "eval", "calibrate", "train", "judge", "serve", "report"} <= set(subcommands)
    missing = [m for name, parser in subcommands.items() for m in _without_help(name, parser)]
    assert missing == []


def _script_parser(path: str) -> argparse.ArgumentParser:
    """``build_parser()`` of a script outside the package, imported without running it."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.build_parser()


def test_every_option_of_the_module_command_lines_the_docs_print_has_help_text() -> None:
    from routellm_base.train import chat_gated, chat_task_experts, default_mf, default_task_experts

    parsers = {
        "default_mf": default_mf.build_parser(),
        "default_task_experts": default_task_experts.build_parser(),
        "chat_task_experts": chat_task_experts.build_parser(),
        "chat_gated": chat_gated.build_parser(),
        "own_traffic": _script_parser("benchmarks/own_traffic.py"),
        "chat_judge_transfer": _script_parser("scripts/chat_judge_transfer.py"),
        "llamaindex_query_engine": _script_parser("examples/llamaindex_query_engine.py"),
    }
    options = {
        name: {o for a in p._actions for o in a.option_strings} for name, p in parsers.items()
    }
    assert {"--embedder", "--dim", "--lr", "--weight-decay"} <= options["default_mf"]
    assert {"--gate-c", "--gate-class-balance"} <= options["chat_task_experts"]
    assert {"--epochs", "--chat-expert"} <= options["chat_gated"]
    assert {"--data-dir", "--sources", "--seeds"} <= options["own_traffic"]
    assert {"--data-dir", "--seeds"} <= options["chat_judge_transfer"]
    assert {"--strong-model", "--weak-model"} <= options["llamaindex_query_engine"]
    missing = [m for name, parser in parsers.items() for m in _without_help(name, parser)]
    assert missing == []
    # The chat recipe shows its own defaults, not the default recipe's.
    assert "(default: 10.0)" in " ".join(parsers["chat_task_experts"].format_help().split())


def test_the_judge_shows_the_defaults_of_its_limits() -> None:
    helps = " ".join(_subcommands()["judge"].format_help().split())
    assert "requests in flight at most (default: 4)" in helps
    assert "seconds per request (default: 120.0)" in helps


def test_the_report_shows_its_bucket_default() -> None:
    helps = " ".join(_subcommands()["report"].format_help().split())
    assert "of equal counts (default 5)" in helps


def test_every_option_of_every_benchmark_has_help_text_with_its_default() -> None:
    """``python benchmarks/X.py --help`` says what each option is, in what unit, and its
    default (``--n``, ``--calls``, ``--latency-ms``, ``--repeats``, ``--window`` had none)."""
    scripts = sorted((ROOT / "benchmarks").glob("*.py"))
    assert len(scripts) >= 10
    for script in scripts:
        parser = _script_parser(f"benchmarks/{script.name}")
        assert _without_help(script.stem, parser) == []
        for action in parser._actions:
            shown = action.help not in (None, argparse.SUPPRESS)
            if (
                shown
                and action.option_strings
                and action.default not in (None, False, argparse.SUPPRESS)
            ):
                assert "default" in action.help, (script.name, action.option_strings)
        helps = " ".join(parser.format_help().split())
        if "--latency-ms" in helps:
            assert "milliseconds" in helps, script.name


def test_every_subcommand_has_help_text() -> None:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert all((choice.help or "").strip() for choice in sub._choices_actions)
    assert {choice.dest for choice in sub._choices_actions} == set(_subcommands())


def test_every_subcommand_help_has_a_description_line() -> None:
    """Trials: ``eval --help`` and ``train --help`` began with the options (judge and serve say
    what they do first); later route, calibrate, decontaminate and report did too."""
    subcommands = _subcommands()
    assert {"route", "eval", "calibrate", "decontaminate", "train", "report"} <= set(subcommands)
    missing = [n for n, p in subcommands.items() if not (p.description or "").strip()]
    assert missing == []


def test_eval_reads_the_data_folder_from_the_environment(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    assert main(["eval", "--benchmark", "rmb", "--router", "random", "--no-progress"]) == 0
    [row] = [line.split() for line in capsys.readouterr().out.splitlines() if " rmb " in line]
    assert row[:3] == ["random", "rmb", "266"]


def test_a_named_benchmark_without_a_data_folder_says_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/data here either
    assert main(["eval", "--benchmark", "rmb", "--router", "random", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "--data-dir" in error and DATA_DIR_ENV in error and "rmb/pairs.jsonl" in error
    assert "RouteLLM checkout" not in error  # a RouteLLM checkout has no rmb/
    assert main(["eval", "--benchmark", "mmlu", "--router", "random", "--no-progress"]) == 2
    assert "routellm/" in capsys.readouterr().err


def test_a_reader_that_leaves_ends_the_command_quietly(tmp_path: Path) -> None:
    from routellm_base.log import RoutingLog

    engine = RoutingEngine("random", threshold=0.5)
    with RoutingLog(tmp_path / "log.db") as log:
        for i in range(20):
            log.record(engine.decide(f"question {i}"))
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte (`| head`, done early)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "routellm_base", "report", "--log", str(tmp_path / "log.db")],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert done.stderr == ""  # no BrokenPipeError traceback
    assert done.returncode == EXIT_BROKEN_PIPE


def test_eval_prints_a_benchmark_file_name_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "my_prompts.jsonl"
    rows = [
        {"id": i, "prompt": f"prompt {i}", "scores": {"big": i % 2, "small": 0}} for i in range(8)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["eval", "--benchmark", str(path), "--strong", "big", "--weak", "small"]
    assert main([*args, "--router", "random", "--no-progress"]) == 0
    [row] = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert row[:3] == ["random", "my_prompts.jsonl", "8"]


def test_the_curves_plot_draws_the_random_band_beside_the_routers(data_dir: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    bench = load_benchmark("mt-bench", data_dir)
    fig = curves_figure([evaluate(RandomRouter(seed=1), bench)])
    [ax] = fig.axes
    labels = ax.get_legend_handles_labels()[1]
    assert labels[0].startswith("random (200 seeds, band ±1 sd; APGR ")
    assert labels[1].startswith("random (APGR ")  # the router scored, seed 1
    [band] = [c for c in ax.collections if isinstance(c, PolyCollection)]
    x = band.get_paths()[0].vertices[:, 0]
    assert x.min() == 0 and x.max() == 100  # over every strong-call share
    plt.close(fig)


def test_the_curves_plot_puts_four_benchmarks_in_a_two_by_two_grid() -> None:
    import matplotlib.pyplot as plt

    from routellm_base.data import ScoredPrompt
    from routellm_base.evals import Benchmark

    def bench(name: str) -> Benchmark:
        rows = [ScoredPrompt(f"{name}/{i}", f"prompt {i}", {"big": i % 2, "small": 0}, name, {})
                for i in range(10)]  # fmt: skip
        return Benchmark(name, rows, "big", "small")

    results = [evaluate(RandomRouter(seed=0), bench(name)) for name in ("a", "b", "c", "d")]
    fig = curves_figure(results, seeds=5)
    assert [ax.get_title() for ax in fig.axes] == ["a (n=10)", "b (n=10)", "c (n=10)", "d (n=10)"]
    assert {ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes} == {(2, 2)}
    plt.close(fig)


@pytest.mark.parametrize(
    "recipe", ["default_mf", "default_task_experts", "chat_task_experts", "chat_gated", "chat_bert"]
)
def test_the_training_recipes_read_the_data_folder_from_the_environment(
    recipe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    module = importlib.import_module(f"routellm_base.train.{recipe}")
    monkeypatch.chdir(tmp_path)  # no ../shared/data here: the old default fails fast too
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "no-data-here"))
    with pytest.raises(FileNotFoundError, match="no-data-here"):  # it looked where it was told
        module.main(["--out", str(tmp_path / "out")])


RECIPES = ["default_mf", "default_task_experts", "chat_task_experts", "chat_gated", "chat_bert",
           "pool_research", "pool_bundled"]  # fmt: skip
"""Every training recipe that reads the data folder."""


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_recipe_without_its_data_folder_says_so_in_one_line(
    recipe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A trial: ``python -m routellm_base.train.default_task_experts --out runs/te4`` with no
    ../shared/data ended in a 20-line traceback; ``routellm eval`` says in one line how to give
    the folder and, when it came from the variable, says so."""
    import importlib

    from routellm_base.train.recipe import run_recipe

    main_of = importlib.import_module(f"routellm_base.train.{recipe}").main
    monkeypatch.chdir(tmp_path)  # no ../shared/data here
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    out = ["--out", str(tmp_path / "out")]
    assert run_recipe(main_of, out) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "../shared/data" in err and "neither --data-dir nor ROUTELLM_DATA_DIR was given" in err
    assert "pass --data-dir DIR or set ROUTELLM_DATA_DIR" in err
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "no-data-here"))
    assert run_recipe(main_of, out) == 2
    err = capsys.readouterr().err
    assert f"the data folder {tmp_path / 'no-data-here'} came from ROUTELLM_DATA_DIR" in err, err
    assert run_recipe(main_of, [*out, "--data-dir", str(tmp_path / "elsewhere")]) == 2
    err = capsys.readouterr().err
    assert f"(--data-dir {tmp_path / 'elsewhere'}: give the folder holding the data" in err, err
    assert "came from" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written before the data was found


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_recipe_run_as_a_module_ends_in_one_line_without_its_data(
    recipe: str, tmp_path: Path
) -> None:
    env = {**os.environ, DATA_DIR_ENV: str(tmp_path / "none")}
    done = subprocess.run(
        [sys.executable, "-m", f"routellm_base.train.{recipe}", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"{recipe}.py: error: " in done.stderr and "came from ROUTELLM_DATA_DIR" in done.stderr


def test_the_data_folder_hint_is_only_for_errors_that_name_it() -> None:
    from routellm_base.train.recipe import data_dir_hint

    argv = ["--data-dir", "data"]
    assert data_dir_hint("no RouteLLM evals folder under data: expected ...", argv)
    assert data_dir_hint("[Errno 2] No such file or directory: 'data/llmrouter/train.json'", argv)
    assert data_dir_hint("[Errno 2] No such file or directory: 'mydata.json'", argv) == ""
    assert data_dir_hint("--embeddings-cache data.npy: not found", argv) == ""


def _file_bench(name: str, n: int = 10):
    from routellm_base.data import ScoredPrompt
    from routellm_base.evals import Benchmark

    rows = [ScoredPrompt(f"{name}/{i}", f"prompt {i}", {"big": i % 2, "small": 0}, name, {})
            for i in range(n)]  # fmt: skip
    return Benchmark(name, rows, "big", "small")


def test_the_curves_plot_fits_a_long_title_and_keeps_the_legend_off_the_data() -> None:
    import matplotlib.pyplot as plt

    name = "/home/someone/projects/routing/benchmarks/our-support-tickets-2024-q3-labelled.jsonl"
    fig = curves_figure([evaluate(RandomRouter(seed=0), _file_bench(name))], seeds=5)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    [ax] = fig.axes
    title = ax.title.get_window_extent(renderer)
    assert title.width <= ax.bbox.width and title.x0 >= 0 and title.x1 <= fig.bbox.width
    assert ax.get_title().replace("\n", "") == f"{name} (n=10)"  # wrapped, not cut
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.y1 <= ax.bbox.y0  # below the panel, over none of its lines
    assert legend.y0 >= 0  # and inside the figure
    plt.close(fig)


def test_the_curves_plot_gives_no_router_the_colour_of_a_reference_line() -> None:
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    bench = _file_bench("a")
    results = [evaluate(RandomRouter(seed=s), bench) for s in range(6)]
    results = [r.__class__(**{**vars(r), "router": f"r{i}"}) for i, r in enumerate(results)]
    fig = curves_figure(results, seeds=5)
    [ax] = fig.axes
    handles, labels = ax.get_legend_handles_labels()
    colours = {label: to_rgb(line.get_color()) for line, label in zip(handles, labels)}
    reference = {c for label, c in colours.items() if label[:2] not in {f"r{i}" for i in range(6)}}
    routers = [c for label, c in colours.items() if label[:2] in {f"r{i}" for i in range(6)}]
    assert len(routers) == 6 and len(set(routers)) == 6
    # Not merely another shade of green or red (matplotlib's 3rd and 4th default colours are).
    nearest = min(float(np.linalg.norm(np.subtract(a, b))) for a in routers for b in reference)
    assert nearest > 0.35
    plt.close(fig)


# Units that an option's help must name: the option's value means nothing without them.
UNITS = {
    ("route", "--max-tokens"): "cl100k tokens",
    ("train", "--max-length"): "tokens",
    ("train", "--train-layers"): "layers",
    ("judge", "--timeout"): "seconds",
    ("judge", "--backoff"): "seconds",
    ("judge", "--max-tokens"): "tokens",
    ("serve", "--share-window"): "calls",
    ("serve", "--timeout"): "seconds",
    ("serve", "--connect-timeout"): "seconds",
    ("serve", "--max-body-bytes"): "MiB",
    ("report", "--every"): "ms",
}


def test_every_option_with_a_default_says_it_and_numeric_options_name_their_unit() -> None:
    missing = []
    for name, parser in _subcommands().items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.default in (None, False, []):
                continue
            text = " ".join(parser._get_formatter()._expand_help(action).split())
            if "default" not in text:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []
    helps = {
        (name, o): " ".join(parser._get_formatter()._expand_help(a).split())
        for name, parser in _subcommands().items()
        for a in parser._actions
        for o in a.option_strings
        if a.help
    }
    assert [k for k, unit in UNITS.items() if unit not in helps[k]] == []
    # Options whose default is computed (None on the command line) still say what it is.
    assert "default: the whole prompt" in helps[("route", "--max-tokens")]
    assert "default 0.5" in helps[("serve", "--strong-share")]
    assert "default: off" in helps[("serve", "--share-window")]
    assert "(default 0.95)" in helps[("decontaminate", "--cosine")]
    assert "(default task_experts)" in helps[("decontaminate", "--router")]
    assert "(default 128)" in helps[("train", "--max-length")]
    assert "(default 2)" in helps[("train", "--train-layers")]
    example = _script_parser("examples/llamaindex_query_engine.py")
    [strong_share] = [a for a in example._actions if "--strong-share" in a.option_strings]
    assert "default 0.5" in example._get_formatter()._expand_help(strong_share)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "mf", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        (["train", "mf", "--batch-size", "0"], "argument --batch-size: must be at least 1"),
        (["train", "mf", "--patience", "-1"], "argument --patience: must be at least 0"),
        (["train", "mf", "--dim", "0"], "argument --dim: must be at least 1"),
        (["train", "bert", "--max-length", "0"], "argument --max-length: must be at least 1"),
        (["train", "causal_llm", "--train-layers", "0"], "argument --train-layers: must be at"),
        (["train", "mf", "--lr", "0"], "argument --lr: must be above 0"),
        (
            ["train", "mf", "--cosine", "5"],
            "argument --cosine: must be a cosine similarity in (0, 1]",
        ),
        (["decontaminate", "--cosine", "5"], "argument --cosine: must be a cosine similarity in"),
        (["decontaminate", "--cosine", "0"], "argument --cosine: must be a cosine similarity in"),
        (["route", "hi", "--max-tokens", "0"], "argument --max-tokens: must be at least 1"),
        (
            ["route", "hi", "--strong-share", "2"],
            "argument --strong-share: must be a share in [0, 1]",
        ),
        (["calibrate", "--strong-share", "-1", "--prompts", "p"], "must be a share in [0, 1]"),
        (["report", "--log", "x", "--buckets", "0"], "argument --buckets: must be at least 1"),
        (["eval", "--pool", "--at-cost", "-1"], "argument --at-cost: must be at least 0, got -1"),
        (["eval", "--pool", "--at-cost", "nan"], "argument --at-cost: must be a finite number"),
    ],
)
def test_out_of_range_options_are_refused_when_parsed(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    train_args = ["--data", "d.jsonl", "--out", "o", "--strong", "a", "--weak", "b"]
    with pytest.raises(SystemExit) as exit_:
        main(argv + (train_args if argv[0] == "train" else []))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_calibrate_prints_a_threshold_above_1_as_route_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"question {i}"}) + "\n" for i in range(20)))
    assert (
        main(["calibrate", "--prompts", str(prompts), "--strong-share", "0", "--router", "mf"]) == 0
    )
    out = capsys.readouterr().out
    assert out.startswith(
        "threshold above 1 (no call goes strong) sends 0.0% of p.jsonl (20 prompts)"
    ), out
    assert "1.000000" not in out


def test_eval_falls_back_to_the_development_data_folder_as_the_recipes_do(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from routellm_base.data.location import DEV_DATA_DIR, default_data_dir
    from routellm_base.train.recipe import recipe_parser

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(data_dir)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert DEV_DATA_DIR == "../shared/data" and default_data_dir() == DEV_DATA_DIR
    assert recipe_parser(None).parse_args([]).data_dir == DEV_DATA_DIR
    assert main(["eval", "--benchmark", "rmb", "--router", "random", "--no-progress"]) == 0
    assert " rmb " in capsys.readouterr().out
    helps = " ".join(_subcommands()["eval"].format_help().split())
    assert "(default: $ROUTELLM_DATA_DIR, else ../shared/data when that folder exists" in helps


def test_train_refuses_to_overwrite_a_checkpoint_folder_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "router"
    out.mkdir()
    (out / "config.json").write_text("{}")
    argv = ["train", "mf", "--data", str(tmp_path / "none.jsonl"), "--out", str(out),
            "--strong", "a", "--weak", "b"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("routellm: error:") and str(out) in err and "--force" in err
    assert (out / "config.json").read_text() == "{}"
    # With --force it goes on (and fails later, on the missing data, not on the folder).
    assert main([*argv, "--force"]) == 2
    assert "--force" not in capsys.readouterr().err


def test_the_eval_plot_keeps_the_benchmark_order_and_labels_its_scale() -> None:
    import matplotlib.pyplot as plt

    from routellm_base.evals.harness import score_label

    results = [evaluate(RandomRouter(seed=0), _file_bench(n)) for n in ("zeta", "alpha")]
    fig = curves_figure(results, seeds=5)
    assert [ax.get_title().split(" (")[0] for ax in fig.axes] == ["zeta", "alpha"]
    assert fig.axes[0].get_ylabel() == score_label("zeta") != "performance"
    plt.close(fig)
    assert "1-10" in score_label("mt-bench") and "accuracy" in score_label("mmlu")
    assert "accuracy" in score_label("gsm8k") and "battles won" in score_label("rmb")


def _example(path: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--strong-share", "2"], "argument --strong-share: must be a share in [0, 1]"),
        (["--strong-share", "-1"], "argument --strong-share: must be a share in [0, 1]"),
        (["--router", "nope"], "argument --router: unknown router 'nope'"),
    ],
)
@pytest.mark.parametrize(
    "example", ["examples/langchain_quickstart.py", "examples/llamaindex_query_engine.py"]
)
def test_the_examples_refuse_bad_options_before_loading_a_model(
    example: str, argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    module = _example(example)

    def no_model(*args: object) -> None:
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(
        module, "local_models" if "langchain" in example else "local_sides", no_model
    )
    with pytest.raises(SystemExit) as exit_:
        module.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "example", ["examples/langchain_quickstart.py", "examples/llamaindex_query_engine.py"]
)
def test_the_examples_refuse_an_uncalibrated_router_in_one_line(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A checkpoint trained without --calibration-prompts cannot hold a strong share: an
    argparse-style error before any model loads, not a traceback."""
    sys.path.insert(0, str(Path(__file__).parent))
    from live_routers import uncalibrated_checkpoint

    folder = uncalibrated_checkpoint(tmp_path / "R")
    module = _example(example)

    def no_model(*args: object) -> None:
        raise AssertionError("a model was loaded before the router was checked")

    monkeypatch.setattr(
        module, "local_models" if "langchain" in example else "local_sides", no_model
    )
    with pytest.raises(SystemExit) as exit_:
        module.main(["--router", str(folder), "--offline"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "no stored calibration" in err and "--calibration-prompts" in err
    assert "Traceback" not in err and err.count("error:") == 1


@pytest.mark.parametrize(
    "example", ["examples/langchain_quickstart.py", "examples/llamaindex_query_engine.py"]
)
def test_the_examples_fall_back_to_random_only_for_a_bundled_router_that_does_not_load(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    import routellm_base
    from routellm_base.errors import CheckpointError

    module = _example(example)

    def pick(name: str):  # type: ignore[no-untyped-def]
        if "langchain" in example:
            return module.router_or_fallback(module.build_parser(), name)
        return module.pick_router(name)

    # A folder that is no checkpoint: an error, not a random router.
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(SystemExit) as exit_:
        pick(str(tmp_path))
    assert exit_.value.code == 2 and "does not load" in capsys.readouterr().err

    def broken(name: str) -> None:
        raise CheckpointError("weights.safetensors fails its sha256 check")

    monkeypatch.setattr(routellm_base, "load_router", broken)
    assert isinstance(pick("task_experts"), RandomRouter)
    assert "RANDOM baseline router" in capsys.readouterr().out


def test_the_llamaindex_example_loads_its_model_before_the_first_query(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _example("examples/llamaindex_query_engine.py")
    loaded = []

    class FakeLocal:
        @classmethod
        def smollm2(cls, **kwargs: object) -> FakeLocal:
            return cls()

        def _local_model(self) -> None:
            loaded.append(self)

    monkeypatch.setattr(module, "LocalChatLLM", FakeLocal)
    module.local_sides()
    assert len(loaded) == 2  # loaded here, so the first query's time is the query's alone
    assert "loaded in " in capsys.readouterr().out


def test_a_file_that_is_not_a_database_is_a_one_line_error_for_every_log_reader(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``routellm report`` says it: calibrate and train read ``log:PATH``, judge --log writes
    verdicts into it, serve --log writes every call (and dropped them all, /health ok)."""
    not_db = tmp_path / "notdb.db"
    not_db.write_text("hello, this is not a database\n")
    runs = [
        ["calibrate", "--prompts", f"log:{not_db}", "--strong-share", "0.3"],
        ["train", "mf", "--data", f"log:{not_db}", "--strong", "a", "--weak", "b",
         "--out", str(tmp_path / "R")],
        ["judge", "--log", str(not_db), "--judge-model", "j", "--base-url", "http://127.0.0.1:9/v1"],
        ["report", "--log", str(not_db)],
    ]  # fmt: skip
    for argv in runs:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"{not_db} is not a routing log (not a SQLite database" in err, (argv, err)
        assert "Traceback" not in err
    import uvicorn

    def no_server(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server started on a log it cannot write")

    monkeypatch.setattr(uvicorn, "run", no_server)
    sides = ["--strong-base-url", "http://127.0.0.1:9/v1", "--strong-model", "s",
             "--weak-base-url", "http://127.0.0.1:9/v1", "--weak-model", "w"]  # fmt: skip
    assert main(["serve", *sides, "--log", str(not_db)]) == 2
    assert f"{not_db} is not a routing log (not a SQLite database" in capsys.readouterr().err


def test_a_folder_given_as_an_input_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evals = tmp_path / "e.jsonl"
    evals.write_text('{"prompt": "hi"}\n')
    for argv in (
        ["calibrate", "--prompts", str(tmp_path), "--strong-share", "0.3"],
        ["decontaminate", "--train", str(tmp_path), "--eval", str(evals)],
    ):
        with pytest.raises(SystemExit) as exit_:  # refused when parsed, naming the option
            main(argv)
        assert exit_.value.code == 2, argv
        err = capsys.readouterr().err
        assert f"{tmp_path} is a folder, not a file" in err, (argv, err)


def test_input_mistakes_get_messages_that_say_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    db = tmp_path / "routed.db"
    sqlite3.connect(db).execute("create table t (x)").connection.close()
    assert main(["calibrate", "--prompts", str(db), "--strong-share", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "a routing log? prefix it with log:" in err and f"log:{db}" in err
    assert main(["eval", "--router", "random", "--benchmark", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    argv = ["train", "mf", "--data", str(tmp_path / "nosuch.jsonl"), "--strong", "a", "--weak",
            "b", "--out", str(tmp_path / "R")]  # fmt: skip
    assert main(argv) == 2
    assert "log:PATH" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--log", str(db), "--plot", "/nonexist/x.png"])
    assert "folder /nonexist does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--router", "random", "--benchmark", "gsm8k", "--plot", "/nonexist/x.png"])
    assert "folder /nonexist does not exist" in capsys.readouterr().err
    # A plain text file is one prompt a line, as --help says, and the output says so.
    text = tmp_path / "prompts.txt"
    text.write_text("What is 2+2?\nWrite a poem about rain.\nExplain TCP.\n")
    assert (
        main(["calibrate", "--router", "mf", "--prompts", str(text), "--strong-share", "0.3"]) == 0
    )
    assert "prompts.txt (text, one prompt a line: 3 prompts)" in capsys.readouterr().out
    help_text = " ".join(
        build_parser()._subparsers._group_actions[0].choices["calibrate"].format_help().split()
    )
    assert "one prompt a line" in help_text


def test_pool_only_eval_options_without_pool_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["eval", "--router", "random", "--benchmark", "gsm8k", "--at-cost", "3"]) == 2
    assert "--at-cost needs --pool" in capsys.readouterr().err
    argv = ["eval", "--router", "random", "--benchmark", "gsm8k", "--model-map", "a=b"]
    assert main(argv) == 2
    assert "--model-map needs --pool" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calibrate", "--prompts", "nofile.txt"], "argument --prompts: no such file: nofile.txt"),
        (["decontaminate", "--train", "nofile", "--eval", "x"], "argument --train: no such file"),
        (["serve", "--config", "{tmp}"], "argument --config: {tmp} is a folder, not a file"),
        (["report", "--log", "{tmp}"], "argument --log: {tmp} is a folder, not a routing log"),
        (["report", "--log", "x.db", "--plot", "r.txt"], "argument --plot: r.txt: a plot is"),
    ],
)
def test_a_missing_file_or_a_folder_is_named_with_its_option(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: "[Errno 2] No such file or directory", "does not exist" for a folder, and
    matplotlib's bare "Format 'txt' is not supported" after the report."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message.replace("{tmp}", str(tmp_path)) in err, err


def _scores_file(path: Path, strong_right: list[int], weak_right: list[int]) -> Path:
    rows = [
        {"id": i, "prompt": f"prompt {i}", "scores": {"big": s, "small": w}}
        for i, (s, w) in enumerate(zip(strong_right, weak_right))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("strong_right", "weak_right", "note"),
    [
        # The strong model scores lower: a trial printed APGR 1.988 and no note.
        ([1, 0] * 20, [1, 1, 0, 1] * 10, "scores below the weak one"),
        # Above by 1 item in 40, far under 2 standard errors of the per-item gap.
        ([1] * 21 + [0] * 19, [0] * 20 + [1] * 20, "within sampling noise"),
        # Clearly above: no note.
        ([1] * 40, [0] * 40, None),
    ],
)
def test_eval_notes_a_strong_model_not_clearly_above_the_weak_one(
    strong_right: list[int],
    weak_right: list[int],
    note: str | None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _scores_file(tmp_path / "pair.jsonl", strong_right, weak_right)
    args = ["eval", "--benchmark", str(path), "--strong", "big", "--weak", "small"]
    args += ["--router", "random", "--no-progress"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert main([*args, "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    noted = [n for n in row["notes"] if "PGR and APGR are not meaningful" in n]
    if note is None:
        assert noted == [] and "not meaningful" not in table
    else:
        assert len(noted) == 1 and note in noted[0], row["notes"]
        assert f"note: pair.jsonl: {noted[0]}" in table


@pytest.mark.parametrize(
    ("strong", "weak", "retarget", "note"),
    [
        ("gemma-2-9b-it", "llama-3.1-8b-instruct", False, "--retarget makes it compare"),
        ("gemma-2-9b-it", "llama-3.1-8b-instruct", True, None),
        ("big", "small", False, "it does not know big, small"),
    ],
)
def test_eval_notes_that_mf_scores_its_own_pair_without_retarget(
    strong: str,
    weak: str,
    retarget: bool,
    note: str | None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A trial: ``eval --router mf --strong A --weak B`` scored mf's built-in pair, no note."""
    path = tmp_path / "pair.jsonl"
    rows = [{"id": i, "prompt": f"question {i}", "scores": {strong: 1, weak: 0}} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["eval", "--benchmark", str(path), "--strong", strong, "--weak", weak]
    args += ["--router", "mf", "--no-progress", *(["--retarget"] if retarget else [])]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert main([*args, "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    own = [n for n in row["notes"] if "scores its own pair" in n]
    if note is None:
        assert own == [] and "own pair" not in table
    else:
        assert len(own) == 1 and note in own[0], row["notes"]
        assert "gpt-4-1106-preview vs mistralai/Mixtral-8x7B-Instruct-v0.1" in own[0]
        assert f"note: mf on pair.jsonl: {own[0]}" in table


def test_eval_retarget_needs_both_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With one of --strong/--weak, --retarget kept the router's own model for the other, which
    need not be the benchmark's."""
    argv = ["eval", "--benchmark", "gsm8k", "--router", "mf", "--retarget", "--no-progress"]
    assert main([*argv, "--strong", "gemma-2-9b-it"]) == 2
    assert "--retarget needs both --strong and --weak" in capsys.readouterr().err


@pytest.mark.parametrize("named", ["gsm8k", "rmb"])
def test_a_data_folder_from_the_environment_is_named_as_its_source(
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A trial: ``ROUTELLM_DATA_DIR=/nope routellm eval`` said only "no RouteLLM evals folder
    under /nope"."""
    missing = str(tmp_path / "nope")
    monkeypatch.setenv(DATA_DIR_ENV, missing)
    argv = ["eval", "--benchmark", named, "--router", "random", "--no-progress"]
    assert main(argv) == 2
    assert f"the data folder {missing} came from {DATA_DIR_ENV}" in capsys.readouterr().err
    assert main([*argv, "--data-dir", missing]) == 2  # given here: nothing to add
    assert DATA_DIR_ENV not in capsys.readouterr().err


# Distinct prompts (pairwise cosine < 0.61 under the default embedder).
QUESTIONS = [
    "How many legs does a spider have?",
    "Write a haiku about autumn leaves.",
    "Explain the rules of chess to a child.",
    "What is the capital of Australia?",
    "Translate 'good morning' into Spanish.",
    "Prove that the square root of two is irrational.",
    "Suggest a name for a bakery in Paris.",
    "Why is the sky blue during the day?",
    "Summarise the plot of Hamlet in two sentences.",
    "Write a SQL query returning the ten largest orders.",
    "What causes ocean tides?",
    "Give three tips for a job interview.",
    "How do vaccines train the immune system?",
    "Convert 72 degrees Fahrenheit to Celsius.",
    "Compose a limerick about a lazy cat.",
    "What year did the Berlin Wall fall?",
    "Describe how a bicycle gear system works.",
    "List the planets of the solar system in order.",
    "Write a Python function that reverses a linked list.",
    "What is the difference between weather and climate?",
]
OTHER_QUESTIONS = [
    "Name a famous jazz trumpet player.",
    "What is the boiling point of water at sea level?",
    "Give a recipe for pancakes.",
    "How do noise-cancelling headphones work?",
    "What does a database index do?",
    "Write a motivational quote about persistence.",
    "How tall is Mount Everest?",
    "Explain the offside rule in football.",
    "What is a prime number?",
    "Suggest a gift for a gardener.",
]


def test_eval_leaves_out_benchmark_file_items_in_the_checkpoints_training_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trials: a checkpoint trained on battles holding benchmark items (others passed to
    --exclude) was scored on all of them, no note; then only exact copies were found, though
    `train --exclude` drops near-duplicates (case, whitespace, cosine >= 0.95) too."""
    bench, excluded, battles = (tmp_path / n for n in ("b.jsonl", "x.jsonl", "battles.jsonl"))
    rows = [
        {"id": i, "prompt": q, "scores": {"big": int(i % 3 > 0), "small": i % 2}}
        for i, q in enumerate(QUESTIONS)
    ]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    excluded.write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))
    trained = (
        [q[:-1] + "!?" for q in QUESTIONS[:5]]  # near 0-4: training drops them (--exclude)
        + QUESTIONS[5:10]  # the same text
        + [" ".join(q.upper().split(" ", 2)) for q in QUESTIONS[10:13]]  # case and spacing
        + [q[:-1] + "!?" for q in QUESTIONS[13:16]]  # punctuation: cosine > 0.99
    )  # 16-19: never trained on
    fights = [
        {"prompt": p, "model_a": "big", "model_b": "small", "winner": "model_a"} for p in trained
    ]
    fights += [
        {"prompt": q, "model_a": "big", "model_b": "small", "winner": ("model_b", "tie")[i % 2]}
        for i, q in enumerate(OTHER_QUESTIONS)
    ]
    battles.write_text("".join(json.dumps(f) + "\n" for f in fights))
    out = tmp_path / "ck"
    train = ["train", "sw_ranking", "--data", str(battles), "--strong", "big", "--weak", "small"]
    assert main([*train, "--exclude", str(excluded), "--out", str(out)]) == 0
    card = json.loads((out / "config.json").read_text())["training"]
    assert card["removed_as_contaminated_prompts"] == 5 and card["near_duplicate_cosine"] == 0.95
    args = ["eval", "--benchmark", str(bench), "--strong", "big", "--weak", "small"]
    capsys.readouterr()
    assert main([*args, "--router", str(out), "--no-progress", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    # 5-15 left out; 0-4 were dropped from training as near --exclude items, so scored
    assert row["n"] == 9, row
    assert f"11 items left out: they are in {out}'s training files" in row["notes"][0]
    assert "or cosine >= 0.95 under its embedder" in row["notes"][0]
    moved = excluded.rename(tmp_path / "moved.jsonl")  # the removed ones can no longer be told
    assert main([*args, "--router", str(out), "--no-progress", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["n"] == 4 and f"--exclude files {excluded} are not there" in row["notes"][1]
    moved.rename(excluded)
    battles.write_text(battles.read_text() + "\n")  # changed since training: cannot be checked
    assert main([*args, "--router", str(out), "--no-progress", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["n"] == 20 and "are not there unchanged" in row["notes"][0]
    assert main([*args, "--router", "mf", "--no-progress", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert "not files: whether b.jsonl's items are among them cannot be checked" in row["notes"][0]


def test_eval_notes_that_task_experts_predicts_its_training_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: task_experts on another --strong/--weak pair gave no note (only mf/sw did)."""
    path = tmp_path / "pair.jsonl"
    rows = [
        {"id": i, "prompt": f"question {i}", "scores": {"big": 1, "small": 0}} for i in range(12)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["eval", "--benchmark", str(path), "--strong", "big", "--weak", "small"]
    assert main([*args, "--router", "task_experts", "--no-progress", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    [note] = [n for n in row["notes"] if "training pair" in n]
    assert "gpt-4-1106-preview vs mistralai/Mixtral-8x7B-Instruct-v0.1, not big vs small" in note
    assert "cannot be retargeted" in note and "routellm train task_experts" in note


def test_calibrate_names_an_empty_prompts_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: an empty file said 'calibrate_threshold needs at least one prompt', no file."""
    empty = tmp_path / "none.txt"
    empty.write_text("\n")
    argv = ["calibrate", "--router", "mf", "--strong-share", "0.5", "--prompts", str(empty)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--prompts {empty} holds no prompt" in err and "calibrate_threshold" not in err


def test_calibrate_refuses_the_random_router_and_says_what_to_do_instead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: ``calibrate --router random --strong-share 0.3`` printed another threshold and
    'achieved' share each run (60%, 20%, 20%): fitted on one random draw, measured on another."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"question {i}\n" for i in range(10)))
    argv = ["calibrate", "--router", "random", "--strong-share", "0.3", "--prompts", str(prompts)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--router random: the random router draws its win rates uniformly at random" in err
    assert "routellm route --router random --strong-share S" in err and "threshold 1 - S" in err
    # The way it names routes the share asked for, with the threshold it says.
    assert main(["route", "--router", "random", "--strong-share", "0.3", "q"]) == 0
    assert "threshold 0.7000" in capsys.readouterr().out
    # A learned router on the same prompts: one threshold, met on them.
    assert main([*argv[:2], "task_experts", *argv[3:], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["achieved_share"] == 0.3


def test_route_says_the_default_share_applied_to_an_uncalibrated_router(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: ``route --router DIR "hi"`` blamed a strong_share the user never gave."""
    sys.path.insert(0, str(Path(__file__).parent))
    from live_routers import uncalibrated_checkpoint

    folder = uncalibrated_checkpoint(tmp_path / "R")
    assert main(["route", "--router", str(folder), "hi"]) == 2
    err = capsys.readouterr().err
    assert "neither --threshold nor --strong-share was given" in err, err
    assert "default strong share 0.5 applied" in err and "Give --threshold" in err
    assert main(["route", "--router", str(folder), "--strong-share", "0.3", "hi"]) == 2
    assert "neither --threshold" not in capsys.readouterr().err  # the share given: as before
    assert main(["route", "--router", str(folder), "--threshold", "0.5", "hi"]) == 0


def test_eval_refuses_a_plot_suffix_matplotlib_cannot_write_before_scoring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: ``eval --plot x.txt`` failed with matplotlib's message, after the scoring."""
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--benchmark", "gsm8k", "--router", "mf", "--plot", str(tmp_path / "x.txt")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "x.txt: a plot is written as .png, .svg, .pdf" in err, err


def test_eval_refuses_a_benchmark_file_with_a_repeated_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: a scored JSONL with one id on two lines was scored silently."""
    path = tmp_path / "dup.jsonl"
    rows = [{"id": i % 4, "prompt": f"q {i}", "scores": {"big": 1, "small": 0}} for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["eval", "--benchmark", str(path), "--strong", "big", "--weak", "small"]
    assert main([*args, "--router", "random", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "id '0' on lines 1, 5; id '1' on lines 2, 6" in err and "its own 'id'" in err, err


def test_eval_refuses_a_data_dir_no_benchmark_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: ``--data-dir`` with only benchmark files was accepted and read by nothing."""
    scored = tmp_path / "mine.jsonl"
    scored.write_text('{"id": "1", "prompt": "hi", "scores": {"a": 1, "b": 0}}\n')
    argv = [
        "eval",
        "--benchmark",
        str(scored),
        "--router",
        "random",
        "--strong",
        "a",
        "--weak",
        "b",
    ]
    assert main([*argv, "--data-dir", str(tmp_path)]) == 2
    assert "--data-dir locates the named benchmarks" in capsys.readouterr().err


def test_eval_refuses_a_benchmark_file_item_with_a_blank_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: items whose prompt was "" or whitespace were scored (``routellm route ""``
    refuses such a prompt: no text to route on)."""
    args = ["eval", "--strong", "big", "--weak", "small", "--router", "random"]
    for n, blank in ((1, ""), (3, " \t ")):
        path = tmp_path / f"blank{n}.jsonl"
        rows = [{"id": i, "prompt": f"q {i}", "scores": {"big": 1, "small": 0}} for i in range(4)]
        rows[n - 1]["prompt"] = blank
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        assert main([*args, "--benchmark", str(path), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"{path}:{n}: field 'prompt' is " in err and "no text to route on" in err, err


def test_decontaminate_refuses_a_router_without_an_embedder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: ``--router random`` (or a bert checkpoint) compared exact text only, even with
    ``--cosine 0.5``, and printed a shorter, clean-looking list with no word of it."""
    train, evals = tmp_path / "train.txt", tmp_path / "eval.txt"
    evals.write_text("What is 2+2?\nTell me a joke\n")
    train.write_text("What is 2+2?\nwhat is 2 + 2 ?\nSomething else entirely different\n")
    argv = ["decontaminate", "--train", str(train), "--eval", str(evals)]
    assert main([*argv, "--router", "random", "--cosine", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--router random (random) has no embedder" in err and "cosine >= --cosine" in err
    assert main([*argv, "--router", "mf"]) == 0  # one that embeds: the near-duplicate is found
    assert capsys.readouterr().out.startswith("2 of 3 training prompts duplicate")


def test_eval_gives_no_wrong_pair_note_for_a_benchmark_the_checkpoint_learned(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: chat_task_experts on ``rmb`` was told it predicts GPT-4 vs Mixtral, "not top-tier
    vs mid-tier", and to retrain, though its chat kind learned RMB's top vs mid tier battles (its
    checkpoint records rmb in ``trained_on_benchmarks``). A checkpoint that records no rmb keeps
    the note."""
    from routellm_base.data import GPT4, MIXTRAL

    battles = tmp_path / "b.jsonl"
    winners = ["model_a", "model_b", "tie", "model_a"] * 8
    battles.write_text("".join(
        json.dumps({"prompt": f"question {i}", "model_a": GPT4, "model_b": MIXTRAL, "winner": w}) + "\n"
        for i, w in enumerate(winners)
    ))  # fmt: skip
    train = ["train", "task_experts", "--data", str(battles), "--strong", GPT4, "--weak", MIXTRAL,
             "--no-progress"]  # fmt: skip
    assert main([*train, "--out", str(tmp_path / "rmb"), "--trained-on-benchmark", "rmb"]) == 0
    assert main([*train, "--out", str(tmp_path / "other")]) == 0
    capsys.readouterr()
    args = ["eval", "--benchmark", "rmb", "--data-dir", str(data_dir), "--no-progress", "--json"]
    assert (
        main([*args, "--router", str(tmp_path / "rmb"), "--router", str(tmp_path / "other")]) == 0
    )
    learned, other = json.loads(capsys.readouterr().out)
    assert not [n for n in learned["notes"] if "training pair" in n], learned["notes"]
    [note] = [n for n in other["notes"] if "training pair" in n]
    assert "not top-tier vs mid-tier" in note and "cannot be retargeted" in note


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--benchmark", "gsm8k", "--benchmark", "gsm8k", "--router", "mf"],
         "--benchmark gsm8k is given 2 times"),
        (["--benchmark", "gsm8k", "--router", "mf", "--router", "random", "--router", "mf"],
         "--router mf is given 2 times"),
        (["--benchmark", "gsm8k", "--router", "{tmp}", "--router", "{tmp}/"],
         "--router {tmp} and {tmp}/ name the same one"),
        (["--pool", "--benchmark", "llmrouter:{tmp}", "--benchmark", "llmrouter:{tmp},test",
          "--router", "pool_knn"],
         "--benchmark llmrouter:{tmp} and llmrouter:{tmp},test name the same one"),
        # a trial: a bundled router by its name and by its folder was scored twice
        (["--benchmark", "gsm8k", "--router", "task_experts", "--router",
          "{bundled}/task-experts-minilm-static"],
         "--router task_experts and {bundled}/task-experts-minilm-static name the same one"),
    ],
)  # fmt: skip
def test_eval_refuses_a_router_or_benchmark_given_twice(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: ``--benchmark gsm8k --benchmark gsm8k`` (or one --router twice) printed two
    identical rows and every note twice."""
    from routellm_base.checkpoints import BUNDLED_DIR

    def filled(text: str) -> str:
        return text.replace("{tmp}", str(tmp_path)).replace("{bundled}", str(BUNDLED_DIR))

    argv = ["eval", "--no-progress", *(filled(a) for a in extra)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert filled(message) in err and "drop the repeats" in err, err


CHECKED_AFTER_PARSING = {
    ("serve", o)
    for o in ("--threshold", "--share-window", "--port", "--workers", "--max-body-bytes",
              "--timeout", "--connect-timeout", "--max-retries", "--max-connections",
              "--pool-timeout")
} | {("judge", "--limit")}  # fmt: skip
"""Numeric options with no range check when parsed: serve checks its flags together with the
--config file's values; judge refuses a negative --limit itself. Every one is in the table below."""
SERVE_ARGS = ["--strong-base-url", "http://127.0.0.1:9/v1", "--weak-base-url",
              "http://127.0.0.1:9/v1", "--strong-model", "a", "--weak-model", "b", "--router",
              "random"]  # fmt: skip
REQUIRED = {
    "judge": ["--judge-model", "j", "--log", "x.db"],
    "eval": ["--benchmark", "gsm8k", "--router", "random"],
    "train": ["--data", "d.jsonl", "--out", "o"],
    "serve": SERVE_ARGS,
}


def test_every_numeric_option_is_range_checked() -> None:
    """A trial found ``judge --max-tokens 0``, ``--timeout 0`` (then "Connection error" after 5
    attempts), ``--max-retries -1`` and ``--backoff -1`` accepted; so were negative seeds, which
    numpy refused later as "expected non-negative integer" naming no option. A numeric option
    now has a ``type=`` that checks its range, or is checked after parsing (and is in the
    table of refusals)."""
    plain = sorted(
        (name, option)
        for name, parser in _subcommands().items()
        for action in parser._actions
        if action.type in (int, float)
        for option in action.option_strings[:1]
    )
    assert [o for o in plain if o not in CHECKED_AFTER_PARSING] == []
    tabled = {(argv[0], argv[2 if argv[0] in ("train", "route") else 1]) for argv, _ in
              NUMERIC_REFUSALS}  # fmt: skip
    assert CHECKED_AFTER_PARSING - tabled == set()


NUMERIC_REFUSALS = [
    (["judge", "--max-tokens", "0"], "argument --max-tokens: must be at least 1, got 0"),
    (["judge", "--timeout", "0"], "argument --timeout: must be above 0, got 0"),
    (["judge", "--max-retries", "-1"], "argument --max-retries: must be at least 0, got -1"),
    (["judge", "--backoff", "-1"], "argument --backoff: must be at least 0, got -1"),
    (["judge", "--backoff", "inf"], "argument --backoff: must be a finite number"),
    (["judge", "--concurrency", "0"], "argument --concurrency: must be at least 1, got 0"),
    (["judge", "--limit", "-1"], "--limit must be at least 0, got -1"),
    (["eval", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    (["train", "mf", "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    (["train", "pool", "--k", "0"], "argument --k: must be at least 1, got 0"),
    (["train", "pool", "--steps", "0"], "argument --steps: must be at least 1, got 0"),
    (["train", "pool", "--weight-decay", "-1"], "argument --weight-decay: must be at least 0"),
    (["train", "pool", "--battle-weight", "-1"], "argument --battle-weight: must be at least 0"),
    (["route", "hi", "--threshold", "2"], "argument --threshold: must be a win rate in [0, 1]"),
    (["serve", "--threshold", "2"], "--threshold: threshold must be in [0, 1], got 2.0"),
    (["serve", "--share-window", "0"], "--share-window: share_window must be"),
    (["serve", "--port", "-1"], "--port: port must be an integer in [0, 65535], got -1"),
    (["serve", "--workers", "0"], "--workers: workers must be an integer in [1, 256], got 0"),
    (["serve", "--max-body-bytes", "0"], "--max-body-bytes: max_body_bytes must be an integer"),
    (["serve", "--timeout", "0"], "--timeout: timeout must be a positive number of seconds"),
    (["serve", "--connect-timeout", "-1"], "--connect-timeout: connect_timeout must be a positive"),
    (["serve", "--max-retries", "-1"], "--max-retries: max_retries must be an integer in [0, 10]"),
    (["serve", "--max-connections", "0"], "--max-connections: max_connections must be an integer"),
    (["serve", "--pool-timeout", "0"], "--pool-timeout: pool_timeout must be a positive number"),
]


@pytest.mark.parametrize(("argv", "message"), NUMERIC_REFUSALS)
def test_an_out_of_range_number_is_refused_before_any_work(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # nothing is read or written: x.db, d.jsonl and o are not there
    try:
        status = main([*argv, *REQUIRED.get(argv[0], [])])
    except SystemExit as exit_:
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("recipe", "argv", "message"),
    [
        ("default_mf", ["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        ("default_mf", ["--dim", "0"], "argument --dim: must be at least 1, got 0"),
        ("default_mf", ["--lr", "-1"], "argument --lr: must be above 0, got -1"),
        ("default_mf", ["--weight-decay", "-1"], "argument --weight-decay: must be at least 0"),
        ("default_mf", ["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
        ("default_task_experts", ["--gate-c", "0"], "argument --gate-c: must be above 0, got 0"),
        ("chat_task_experts", ["--gate-class-balance", "2"],
         "argument --gate-class-balance: must be a share in [0, 1]"),
        ("chat_task_experts", ["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
        ("chat_gated", ["--seeds", "0", "-1"], "argument --seeds: must be at least 0, got -1"),
        ("chat_gated", ["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        ("chat_bert", ["--mmlu-items", "0"], "argument --mmlu-items: must be at least 1, got 0"),
        ("chat_bert", ["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
        ("chat_bert", ["--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    ],
)  # fmt: skip
def test_a_recipe_refuses_an_out_of_range_number_when_parsed(
    recipe: str, argv: list[str], message: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """As the subcommands: a zero epoch count, a negative seed or learning rate ran on (or
    failed deep inside numpy or torch) instead of being refused before any data is read."""
    import importlib

    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(f"routellm_base.train.{recipe}")
    with pytest.raises(SystemExit) as exit_:
        module.main([*argv, "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_file_options_name_themselves_and_logs_go_only_where_logs_are_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial: ``train --exclude nope.jsonl`` (and ``--calibration-prompts``) ended in a bare
    ``[Errno 2]``; ``decontaminate --train log:X`` passed the check, then failed the same way."""
    battles = tmp_path / "b.jsonl"
    battles.write_text(
        json.dumps({"prompt": "p", "model_a": "s", "model_b": "w", "winner": "model_a"}) + "\n"
    )
    missing = str(tmp_path / "nope.jsonl")
    train = ["train", "task_experts", "--data", str(battles), "--strong", "s", "--weak", "w"]
    for option in ("--exclude", "--calibration-prompts"):
        assert main([*train, "--out", str(tmp_path / "o"), option, missing]) == 2
        assert f"argument {option}: no such file: {missing}" in capsys.readouterr().err
    assert main([*train, "--out", str(tmp_path / "o"), "--exclude", "log:t.db"]) == 2
    said = "log:t.db: this option reads a file of prompts, not a routing log"
    assert said in capsys.readouterr().err
    for argv in (
        ["decontaminate", "--train", "log:t.db", "--eval", str(battles)],
        ["decontaminate", "--train", str(battles), "--eval", "log:t.db"],
    ):
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err
        assert said in err, err
    assert not (tmp_path / "o").exists()
