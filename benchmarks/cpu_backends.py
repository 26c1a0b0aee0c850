"""Benchmark: every CPU backend for MiniLM on SciFact, side by side in one run.

For torch float32 (the reference), torch bfloat16, ONNX Runtime float32 and ONNX Runtime int8:
encode throughput (median of repeats after warm-up, on a seeded sample of abstracts), achieved
GFLOP/s (FLOPs per token from the model's configuration) next to this machine's measured torch
matrix-multiply peak in float32 and bfloat16, and nDCG@10 on full SciFact with its retention
against torch float32. Embeddings and timings come from (and go to) the embedding cache, so a
second run with the same --cache-dir only reprints; point it at an empty one to measure afresh.

    python benchmarks/cpu_backends.py [--sample 512] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench import runner
from bench.config import default_cache_dir, load_config, with_overrides
from bench.encoders import parse_backend
from bench.flops import flops_per_token
from bench.measure import matmul_peak_gflops
from bench.models import model_registry
from bench.weights import weights_location
from bench.results import read_run

BACKENDS = ("torch", "torch-cpu-bfloat16", "onnx", "onnx-cpu-int8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=512, help="documents timed per backend")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = parser.parse_args()
    peaks = {dt: matmul_peak_gflops(dt, 2048) for dt in ("float32", "bfloat16")}
    with tempfile.TemporaryDirectory() as tmp:
        config = with_overrides(
            load_config(None), backends=tuple(parse_backend(b) for b in BACKENDS), dims=(384,),
            precisions=("float32",), measure_documents=args.sample, cache_dir=args.cache_dir,
            output_dir=Path(tmp),
        )  # fmt: skip
        _, rows = read_run(runner.run(config))
    model = model_registry().get("all-MiniLM-L6-v2")
    hf_config = json.loads((Path(weights_location(model)) / "config.json").read_text())
    print(f"matmul peak (torch, 2048^3): float32 {peaks['float32']:.0f} GFLOP/s, bfloat16 {peaks['bfloat16']:.0f} GFLOP/s")
    print("| backend | docs/s | tokens/s | GFLOP/s | % fp32 peak | % bf16 peak | nDCG@10 | retention | speedup |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ref = rows[rows.backend == "torch-cpu-float32"].iloc[0]
    for _, r in rows.iterrows():
        gflops = r.tokens_per_second * flops_per_token(hf_config, r.mean_tokens_per_document) / 1e9
        print(f"| {r.backend} | {r.documents_per_second:.1f} | {r.tokens_per_second:.0f} | {gflops:.0f} | "
              f"{100 * gflops / peaks['float32']:.0f}% | {100 * gflops / peaks['bfloat16']:.0f}% | "
              f"{r.ndcg_at_10:.4f} | {100 * r.retention_vs_torch_float32:.1f}% | "
              f"{r.documents_per_second / ref.documents_per_second:.2f}x |")  # fmt: skip
    fastest = rows.loc[rows.documents_per_second.idxmax()]
    print(f"fastest CPU backend: {fastest.backend}, {fastest.documents_per_second / ref.documents_per_second:.2f}x "
          f"torch float32, nDCG@10 retention {100 * fastest.retention_vs_torch_float32:.1f}%")  # fmt: skip


if __name__ == "__main__":
    main()
