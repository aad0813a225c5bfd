"""Every Python snippet in README.md runs as shown, each as a new user would run it: pasted into
a file and run with ``python`` in an empty folder.

Snippets that call OpenAI run against a local fake of its chat-completions API
(tests/llamaindex/fake_openai.py), reached through the ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``
environment variables that the OpenAI clients read; the snippet text is not changed.

A snippet that cannot run here is fenced as ```` ```python no-run: REASON ````; the reason is
required, and the snippet must still compile. Keep such exceptions to what needs a server the
README starts in a shell block (e.g. ``routellm serve``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
NO_RUN = re.compile(r"^\s+no-run:\s*(\S.*)$")


def snippets() -> list[tuple[str, str, str]]:
    """``(id, info string after "python", code)`` of each ```` ```python ```` block, the id
    naming the section it is in."""
    text = README.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        headings = re.findall(r"^#+ (.+)$", text[: match.start()], re.MULTILINE)
        section = re.sub(r"\W+", "-", headings[-1] if headings else "top").strip("-").lower()
        found.append((f"{len(found) + 1}-{section}", match.group(1), match.group(2)))
    return found


SNIPPETS = snippets()


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[Any]:
    path = Path(__file__).resolve().parent / "llamaindex" / "fake_openai.py"
    spec = importlib.util.spec_from_file_location("readme_tests_fake_openai", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with module.FakeOpenAI() as server:
        yield server


def test_the_readme_has_python_snippets_and_few_exceptions() -> None:
    assert len(SNIPPETS) >= 6
    skipped = [(name, info) for name, info, _ in SNIPPETS if info.strip()]
    for name, info in skipped:
        assert NO_RUN.match(info), f"{name}: fence '```python{info}' is not 'no-run: REASON'"
    assert len(skipped) <= 1, skipped


@pytest.mark.parametrize(("info", "code"), [s[1:] for s in SNIPPETS], ids=[s[0] for s in SNIPPETS])
def test_a_readme_snippet_runs_as_shown(
    info: str, code: str, fake_openai: Any, tmp_path: Path
) -> None:
    compile(code, "README snippet", "exec")
    if NO_RUN.match(info):
        return  # only compiled: the fence says why it cannot run here
    env = {
        **os.environ,
        "OPENAI_BASE_URL": fake_openai.url,
        "OPENAI_API_BASE": fake_openai.url,
        "OPENAI_API_KEY": "sk-readme-test",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(README.parent), os.environ.get("PYTHONPATH")) if p
        ),
    }
    (tmp_path / "snippet.py").write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{code}\n--- stderr:\n{done.stderr[-4000:]}"


def test_the_operating_snippet_prints_what_its_comments_say(tmp_path: Path) -> None:
    """A ``# VALUE...`` comment under a ``print`` is what the print shows (it said 0.55... where
    the line printed 0.5470...)."""
    (code,) = [c for _, _, c in SNIPPETS if "share_window=200" in c]
    (tmp_path / "snippet.py").write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(README.parent), os.environ.get("PYTHONPATH")) if p
    )}  # fmt: skip
    done = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    printed = done.stdout.splitlines()
    comments = [
        line.split("#", 1)[1].strip()
        for line, before in zip(code.splitlines()[1:], code.splitlines())
        if line.startswith("# ") and before.startswith("print(")
    ]
    comments += [
        line.split("#", 1)[1].strip()
        for line in code.splitlines()
        if line.startswith("print(") and "  # " in line
    ]
    assert comments
    for comment in comments:
        head = comment.split("...", 1)[0]
        assert any(p.startswith(head) or head in p for p in printed), (comment, printed)


def test_the_readme_speed_figures_are_the_performance_pages() -> None:
    """The log overhead the README states has its figure and command in docs/performance.md,
    and the p50 decision time is the same number in both (it read 0.25 ms against 0.26 ms)."""
    readme = README.read_text(encoding="utf-8")
    performance = (README.parent / "docs" / "performance.md").read_text(encoding="utf-8")
    assert "performance.md#routing-log-overhead" in readme
    assert "## Routing log overhead" in performance
    assert "python benchmarks/log_overhead.py" in performance
    [summary] = re.findall(
        r"default router \(`task_experts`\).*?about ([\d.]+ ms) p50", performance
    )
    assert f"about {summary} p50" in readme
    assert "0.155 ms" not in performance  # a stale run's figure, not the table's
