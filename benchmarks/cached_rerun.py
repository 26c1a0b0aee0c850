"""A fully cached rerun: ``bench run --limit 20`` after an identical first run.

Prints the wall time of each of several reruns (after one run that fills the caches) and the
median, next to the target of 3 s. Every rerun is its own ``bench`` process with a new run id, as
a user would start it: vectors, cells and plots come from the cache, nothing is encoded,
searched or drawn again.

    python benchmarks/cached_rerun.py [--reruns 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.environment import machine_line


def bench(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench.cli", *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reruns", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        env.setdefault("BENCH_CACHE_DIR", str(Path(tmp) / "cache"))
        command = ["run", "--limit", "20", "--output-dir", str(Path(tmp) / "results")]
        first = bench(command, env)
        times = [bench(command, env) for _ in range(args.reruns)]
    median = statistics.median(times)
    print(machine_line())
    print(f"first run (fills the caches): {first:.1f} s")
    print("reruns: " + ", ".join(f"{t:.2f} s" for t in times))
    print(f"median rerun {median:.2f} s (target <= 3 s) -> {'PASS' if median <= 3.0 else 'FAIL'}")


if __name__ == "__main__":
    main()
