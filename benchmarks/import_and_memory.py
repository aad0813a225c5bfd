"""Import time and resident memory of the base install with the default router loaded.

    python benchmarks/import_and_memory.py [--repeats 5]

Each measurement runs in a fresh interpreter: time to `import routellm_base`, time to
`load_router("mf")` and route one prompt, peak resident memory (ru_maxrss) against a bare
interpreter, and whether torch/transformers were imported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import routellm_base
t1 = time.perf_counter()
router = routellm_base.load_router("mf")
engine = routellm_base.RoutingEngine(router, strong_share=0.3)
engine.decide("What is the capital of France?")
t2 = time.perf_counter()
print(json.dumps({
    "import_s": t1 - t0,
    "load_and_first_decision_s": t2 - t1,
    "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "heavy_modules": sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules),
}))
"""

BASELINE = r"""
import json, resource
print(json.dumps({"maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option with help text; a test checks it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="fresh interpreters measured; medians are reported (default %(default)s)",
    )
    return parser


def main() -> None:
    args = build_parser().parse_args()
    runs = [run(PROBE) for _ in range(args.repeats)]
    bare = statistics.median(run(BASELINE)["maxrss_mib"] for _ in range(args.repeats))
    med = {
        k: statistics.median(r[k] for r in runs)
        for k in ("import_s", "load_and_first_decision_s", "maxrss_mib")
    }
    print(f"runs: {args.repeats} fresh interpreters, medians")
    print(f"import routellm_base                 {med['import_s'] * 1000:8.1f} ms")
    print(f"load_router('mf') + first decision   {med['load_and_first_decision_s'] * 1000:8.1f} ms")
    print(
        f"peak RSS with the default loaded     {med['maxrss_mib']:8.1f} MiB (bare interpreter {bare:.1f} MiB, +{med['maxrss_mib'] - bare:.1f})"
    )
    print(f"heavy modules imported               {runs[0]['heavy_modules'] or 'none'}")


if __name__ == "__main__":
    main()
