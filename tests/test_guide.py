"""docs/guide.md's table of what the default router gives is what the command beside it prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from routellm_base.cli import main

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guide.md"
BENCHMARKS = {"MMLU": "mmlu", "GSM8K": "gsm8k", "MT Bench": "mt-bench", "RMB": "rmb"}


def test_the_guide_table_is_what_its_command_prints(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index("## What the default router") : text.index("## Which router")]
    [command] = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    args = shlex.split(command.replace("\\\n", " ").split("#")[0])
    assert args[0] == "routellm"
    args = [str(data_dir) if a == "../shared/data" else a for a in args[1:]]
    args[args.index("--plot") + 1] = str(tmp_path / "curves.png")
    assert main([*args, "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    rows = [line for line in section.splitlines() if line.startswith("| ") and "(random " in line]
    assert len(rows) == len(BENCHMARKS)
    for row in rows:
        [bench] = [
            b for label, b in BENCHMARKS.items() if row.split("|")[2].strip().startswith(label)
        ]
        lines = " ".join(line for line in printed if line.split()[1:2] == [bench]
                         or f" {bench} " in line)  # fmt: skip
        figures = re.findall(r"\d+\.\d+%?", row.split("|", 3)[3])
        assert figures and all(f in lines for f in figures), (row, lines)


def test_no_command_in_the_docs_writes_over_a_shipped_file() -> None:
    """A reader who pastes a command must not overwrite the image the guide shows (``--plot
    docs/curves.png`` did): commands write to the reader's own paths."""
    docs = GUIDE.parent
    shipped = {p.relative_to(docs.parent).as_posix() for p in docs.rglob("*") if p.is_file()}
    for page in [docs.parent / "README.md", *docs.glob("*.md")]:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL):
            words = shlex.split(block.replace("\\\n", " "), comments=True)
            for option, value in zip(words, words[1:]):
                if option in ("--plot", "--out", "--json-out"):
                    assert value not in shipped, (page.name, option, value)
