"""What a Dagster step process pays before its asset runs: loading the code location.

Each step of a run is a fresh process (``dagster api execute_step``) that imports
``recpie_assets.definitions`` and rebuilds the job (``full_job``) before it calls the asset.
This times that in fresh interpreters, next to ``import dagster`` alone, and says whether the
LLM stack (torch, transformers, peft) came along. Median of ``--repeat`` runs; wall seconds,
CPU seconds (user + sys, less sensitive to other work on the machine) and peak RSS.

    .venv/bin/python bench/step_overhead.py --repeat 5
    .venv/bin/python bench/step_overhead.py --tree /tmp/other_checkout   # another copy of the code
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PROBE = """
import json, resource, sys
{body}
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"cpu_s": use.ru_utime + use.ru_stime, "rss_mb": use.ru_maxrss / 1024,
                  "llm_stack": sorted(m for m in ("torch", "transformers", "peft") if m in sys.modules)}}))
"""
CASES = {
    "python": "pass",
    "import dagster": "import dagster",
    "code location (full_job)": "import recpie_assets.definitions as d; d.full_job('demo', sys.argv[1], '')",
}


def probe(body: str, home: str, tree: str | None) -> dict:
    """One fresh interpreter; ``tree`` first on its path (``-c`` puts the working folder there)."""
    env = {**os.environ, "PYTHONPATH": tree} if tree else None
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE.format(body=body), home], env=env, cwd=tree, check=True,
                         capture_output=True, text=True).stdout
    return {"wall_s": time.perf_counter() - start, **json.loads(out.splitlines()[-1])}


def measure(repeat: int, tree: str | None) -> dict[str, dict]:
    results = {}
    with tempfile.TemporaryDirectory() as home:
        for name, body in CASES.items():
            runs = [probe(body, home, tree) for _ in range(repeat)]
            results[name] = {key: statistics.median(r[key] for r in runs) for key in ("wall_s", "cpu_s", "rss_mb")}
            results[name]["llm_stack"] = runs[0]["llm_stack"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tree", help="import the code from this folder instead (PYTHONPATH)")
    args = parser.parse_args()
    print("| process | wall s | CPU s | peak RSS MB | LLM stack loaded |\n|---|---:|---:|---:|---|")
    for name, r in measure(args.repeat, args.tree).items():
        stack = ", ".join(r["llm_stack"]) or "no"
        print(f"| {name} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['rss_mb']:.0f} | {stack} |")


if __name__ == "__main__":
    main()
