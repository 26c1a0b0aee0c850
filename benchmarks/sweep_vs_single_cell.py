"""Benchmark: the whole default sweep against one float32 full-dimension cell.

Both runs start from a cold (empty, temporary) embedding cache and run as separate `bench run`
processes, so each pays for imports, model loading and one full encode. Because every cell of
the sweep reuses that one encode, the sweep should cost at most 1.15x the single cell.

    python benchmarks/sweep_vs_single_cell.py            # full SciFact (several minutes)
    python benchmarks/sweep_vs_single_cell.py --limit 50 # a quick look
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.environment import machine_line

TARGET = 1.15


def timed_run(extra: list[str], workdir: Path, name: str) -> tuple[float, pd.DataFrame]:
    cmd = [sys.executable, "-m", "bench.cli", "run", "--cache-dir", str(workdir / f"cache-{name}"),
           "--output-dir", str(workdir / "results"), "--run-id", name, *extra]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, pd.read_parquet(workdir / "results" / name / "rows.parquet")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="only the first N judged queries (quick look)")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    limit = ["--limit", str(args.limit)] if args.limit else []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        single_s, single = timed_run(["--dims", "384", "--precisions", "float32", *limit], work, "single")
        sweep_s, sweep = timed_run(limit, work, "sweep")
    ratio = sweep_s / single_s
    print(f"documents: {int(sweep.n_documents.iloc[0])}, queries: {int(sweep.n_queries.iloc[0])}; "
          f"both runs add the default lexical baselines ({int((sweep.dim == 0).sum())} rows)")  # fmt: skip
    for name, seconds, rows in (("single cell (384, float32)", single_s, single), ("whole sweep", sweep_s, sweep)):
        dense = rows[rows.dim > 0]
        encode = float(dense.encode_seconds_documents.iloc[0] + dense.encode_seconds_queries.iloc[0])
        print(f"{name + f' ({len(dense)} dense cells)':38s} {seconds:7.1f} s  (encode {encode:.1f} s, everything "
              f"else {seconds - encode:.1f} s, of which cells evaluated {float(rows.eval_seconds.sum()):.1f} s)")  # fmt: skip
    print(f"ratio sweep / single: {ratio:.3f} (target <= {TARGET}) -> {'PASS' if ratio <= TARGET else 'FAIL'}")
    same = single.ndcg_at_10.iloc[0] == sweep[(sweep.dim == 384) & (sweep.precision == "float32")].ndcg_at_10.iloc[0]
    print(f"float32@384 nDCG@10 identical in both runs: {same}")
    return 0 if ratio <= TARGET and same else 1


if __name__ == "__main__":
    sys.exit(main())
