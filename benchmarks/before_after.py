"""Run one benchmark script against the library at an earlier git revision and at the working
tree, alternately, and print their tables one above the other with the revision on each row.

    python benchmarks/before_after.py 9bcd4f4 benchmarks/integration_overhead.py --calls 300
    python benchmarks/before_after.py 9bcd4f4 benchmarks/decision_latency.py --n 300

The benchmark script is the working tree's for both runs (so both measure the same thing); only
the three packages it imports differ: ``git archive REV`` unpacked into a temporary folder and
put first on ``PYTHONPATH``, or this checkout. ``--rounds`` alternates before/after runs so
that machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("routellm_base", "langchain_routellm", "llamaindex_routellm")


def export(revision: str, into: Path) -> None:
    """The library's packages as they were at ``revision``, unpacked under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, *PACKAGES],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def run(script: str, args: list[str], source: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    out = subprocess.run(
        [sys.executable, script, *args], cwd=REPO, env=env, check=True, capture_output=True
    )
    return out.stdout.decode().splitlines()


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option with help text; a test checks it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the earlier git revision (e.g. a commit before a change)")
    parser.add_argument("script", help="the benchmark script, run from the repository root")
    parser.add_argument("--rounds", type=int, default=2, help="before/after pairs (default 2)")
    return parser


def main() -> None:
    args, script_args = build_parser().parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        export(args.revision, Path(tmp))
        sources = {args.revision[:10]: Path(tmp), "working tree": REPO}
        width = max(map(len, sources))
        for round_ in range(1, args.rounds + 1):
            print(f"-- round {round_} of {args.rounds}: {args.script} {' '.join(script_args)}")
            for label, source in sources.items():
                for line in run(args.script, script_args, source):
                    print(f"{label:<{width}} | {line}")


if __name__ == "__main__":
    main()
