"""Benchmark: every CPU backend for MiniLM, timed side by side, with its quality on SciFact.

Speed: each backend encodes the same seeded sample of SciFact abstracts, backends taking turns
(round-robin, the order rotated every round, a short pause between passes so one runtime's
spinning threads do not slow the next). docs/s is the median over rounds; the ratio to torch
float32 is the median of the per-round ratios (the same round, so drift of the machine cancels);
the spread is the slowest and fastest round. GFLOP/s counts the model's forward FLOPs for the
sample's real tokens (``bench.flops``); the fraction is of this machine's measured matrix-multiply
peak in the dtype the backend multiplies in (``bench.measure.matmul_peak_gflops``, budgeted, the
best of a measurement before and after the rounds). A rate above that peak is reported as such,
never as a utilization above 100%.

Quality: nDCG@10 on all of SciFact at float32 and full dimension, from one ``bench run`` over the
same backends (``runner.run``); its vectors live in the embedding cache, so only the first run of
this script encodes the corpus, and the timed passes never do. Retention is against torch float32.

    python benchmarks/cpu_backends.py [--sample 256] [--rounds 5] [--batch-size 64] [--backends ...]

The output is the markdown that README's cost section shows, for this machine's CPU class.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import runner
from bench.config import default_cache_dir, load_config, with_overrides
from bench.encoders import EncoderOptions, make_encoder, parse_backend
from bench.environment import (
    cpu_capabilities,
    cpu_class,
    cpu_model,
    cpu_signature,
    native_cpu_dtype,
    package_versions,
)
from bench.flops import flops_per_token
from bench.measure import matmul_peak_gflops
from bench.models import model_registry
from bench.profile import utilization
from bench.results import read_run
from bench.tasks import load_task, task_registry
from bench.types import Role
from bench.weights import weights_location

MODEL, TASK, REFERENCE = "all-MiniLM-L6-v2", "SciFact", "torch-cpu-float32"
DEFAULT_BACKENDS = (
    "torch",
    "torch-cpu-bfloat16",
    "onnx",
    "onnx-cpu-int8",
    "openvino",
    "openvino-cpu-int8",
)
# Issue 20's goals: the best CPU backend's speed over torch float32 per CPU class, at >= 99.5% retention.
TARGETS = {"AVX2 only": 1.8, "AVX-512 VNNI, no AMX": 3.0, "AMX": 3.0}
MIN_RETENTION = 0.995


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sample", type=int, default=256, help="seeded SciFact abstracts timed per pass"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds (each backend once per round)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--backends", default=",".join(DEFAULT_BACKENDS),
                        help="comma-separated; torch float32 (the reference) is always included")  # fmt: skip
    parser.add_argument(
        "--peak-budget", type=float, default=10.0, help="seconds per matmul peak measurement"
    )
    parser.add_argument("--settle", type=float, default=0.5, help="pause (s) between timed passes")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    return parser.parse_args()


def chosen_backends(names: str) -> tuple[list, list[str]]:
    """The backends to time (torch float32 first) and notes on those left out: a dtype this CPU
    only emulates would take many minutes for a figure nobody should act on."""
    specs, notes = [parse_backend("torch")], []
    for name in filter(None, (n.strip() for n in names.split(","))):
        spec = parse_backend(name)
        if spec.id == REFERENCE or spec in specs:
            continue
        if not native_cpu_dtype(spec.dtype) and name in DEFAULT_BACKENDS:
            notes.append(
                f"{spec.id} left out: this CPU only emulates {spec.dtype} (name it in --backends to time it)"
            )
            continue
        specs.append(spec)
    return specs, notes


def sample_texts(n: int, seed: int = 0) -> list[str]:
    corpus = list(load_task(task_registry().get(TASK)).corpus.values())
    return [corpus[i] for i in np.random.default_rng(seed).choice(len(corpus), n, replace=False)]


def quality(specs: list, cache_dir: Path, batch_size: int) -> dict[str, tuple[float, float]]:
    """nDCG@10 and retention against torch float32 per backend: one bench run over all of SciFact
    at float32 / full dimension, no timing (its vectors come from the embedding cache when there)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = with_overrides(
            load_config(None), name="cpu-backends-quality", models=(MODEL,), tasks=(TASK,), backends=tuple(specs),
            dims=(model_registry().get(MODEL).dim,), precisions=("float32",), lexical=(), measure=False,
            batch_size=batch_size, cache_dir=cache_dir, output_dir=Path(tmp),
        )  # fmt: skip
        _, rows = read_run(runner.run(config))
    return {
        r.backend: (float(r.ndcg_at_10), float(r.retention_vs_torch_float32))
        for _, r in rows.iterrows()
    }


def interleaved(
    encoders: dict, texts: list[str], rounds: int, settle: float
) -> tuple[dict, list[float]]:
    """Seconds per pass for each backend over ``rounds`` rounds (order rotated each round), and
    the 1-minute load average at the end of each round."""
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    loads, names = [], list(encoders)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            time.sleep(settle)
            started = time.perf_counter()
            encoders[name].encode(texts, Role.DOCUMENT)
            seconds[name].append(time.perf_counter() - started)
        loads.append(os.getloadavg()[0])
    return seconds, loads


def peaks(dtypes: set[str], budget: float) -> dict[str, float]:
    return {dt: matmul_peak_gflops(dt, 2048, budget=budget) for dt in sorted(dtypes)}


def sample_flops(encoder, texts: list[str]) -> tuple[float, int]:
    """Forward FLOPs for the sample's real tokens (each document at its own length), and tokens."""
    config = json.loads(
        (Path(weights_location(model_registry().get(MODEL))) / "config.json").read_text()
    )
    lengths = [encoder.count_tokens([t]) for t in texts]
    return sum(n * flops_per_token(config, n) for n in lengths), sum(lengths)


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def fraction(gflops: float, dtype: str, peak: dict[str, float]) -> str:
    share = utilization(gflops, peak[dtype])["flop_utilization"]
    if share is None:
        return f"above the measured {dtype} peak ({peak[dtype]:.0f})"
    return f"{100 * share:.0f}% of {dtype}"


def table(specs, seconds, flops, peak, cosines, scores, n_texts) -> list[str]:
    lines = [("| backend | docs/s (median) | slowest-fastest round | x torch float32 | GFLOP/s | fraction of peak "
             "| min cos to torch (sample) | nDCG@10 | retention |"), "|---|---:|---:|---:|---:|---|---:|---:|---:|"]  # fmt: skip
    ref = seconds[REFERENCE]
    for spec in specs:
        runs = seconds[spec.id]
        ratio = statistics.median(r / s for r, s in zip(ref, runs))
        median = statistics.median(runs)
        gflops = flops / median / 1e9
        ndcg, retention = scores[spec.id]
        lines.append(f"| {spec.id} | {n_texts / median:.1f} | {n_texts / max(runs):.1f}-{n_texts / min(runs):.1f} | "
                     f"{ratio:.2f}x | {gflops:.0f} | {fraction(gflops, spec.dtype, peak)} | {cosines[spec.id]:.4f} | "
                     f"{ndcg:.4f} | {100 * retention:.1f}% |")  # fmt: skip
    return lines


def verdict(specs, seconds, scores) -> str:
    """Which goal applies to this CPU class and whether the fastest backend keeping 99.5% meets it."""
    ref = seconds[REFERENCE]
    ratios = {s.id: statistics.median(r / x for r, x in zip(ref, seconds[s.id])) for s in specs}
    keeping = [s.id for s in specs if scores[s.id][1] >= MIN_RETENTION]
    best = max(keeping, key=ratios.get)
    target = TARGETS.get(cpu_class())
    goal = f"goal for this class: >= {target}x" if target else "no goal is stated for this class"
    met = "" if not target else (" -> met" if ratios[best] >= target else " -> NOT met")
    return (f"fastest backend keeping >= {100 * MIN_RETENTION:.1f}% nDCG@10: {best}, {ratios[best]:.2f}x torch float32 "
            f"({goal}{met})")  # fmt: skip


def header(args, specs, peak, loads_start) -> list[str]:
    caps = cpu_capabilities()
    have = " ".join(k for k, v in caps.items() if v) or "none"
    lack = " ".join(k for k, v in caps.items() if not v) or "none"
    versions = package_versions()
    libs = ", ".join(
        f"{p} {versions[p]}" for p in ("torch", "onnxruntime", "openvino", "nncf") if p in versions
    )
    return [
        f"CPU: {cpu_model()} ({cpu_signature()}), {os.cpu_count()} logical CPUs; class: {cpu_class()}",
        f"capabilities: {have}; absent: {lack}",
        "matmul peak (torch, best of before/after the rounds): "
        + ", ".join(
            f"{dt} {v:.0f} G{'OP' if dt == 'int8' else 'FLOP'}/s" for dt, v in peak.items()
        ),
        f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {libs}; load average before: {loads_start:.2f}",
        f"sample: {args.sample} seeded {TASK} abstracts, batch size {args.batch_size}, {args.rounds} interleaved rounds",
    ]


def main() -> None:
    args = parse_args()
    specs, notes = chosen_backends(args.backends)
    scores = quality(specs, args.cache_dir, args.batch_size)
    model, texts = model_registry().get(MODEL), sample_texts(args.sample)
    options = EncoderOptions(args.batch_size, args.cache_dir)
    encoders = {spec.id: make_encoder(model, spec, options) for spec in specs}
    vectors = {name: enc.encode(texts, Role.DOCUMENT) for name, enc in encoders.items()}  # warm-up
    cosines = {name: min_cosine(v, vectors[REFERENCE]) for name, v in vectors.items()}
    loads_start = os.getloadavg()[0]
    dtypes = {spec.dtype for spec in specs}
    before = peaks(dtypes, args.peak_budget)
    seconds, loads = interleaved(encoders, texts, args.rounds, args.settle)
    after = peaks(dtypes, args.peak_budget)
    peak = {dt: max(before[dt], after[dt]) for dt in before}
    flops, tokens = sample_flops(encoders[REFERENCE], texts)
    lines = header(args, specs, peak, loads_start)
    lines += [(f"sample tokens: {tokens} ({tokens / len(texts):.0f} per abstract); load average (1 min) after each "
              f"round: {', '.join(f'{x:.1f}' for x in loads)}"), ""]  # fmt: skip
    lines += table(specs, seconds, flops, peak, cosines, scores, len(texts)) + [""]
    lines += [verdict(specs, seconds, scores)] + notes
    extra = f" --backends {args.backends}" if args.backends != ",".join(DEFAULT_BACKENDS) else ""
    lines.append(f"reproduce: python benchmarks/cpu_backends.py --sample {args.sample} --rounds {args.rounds} "
                 f"--batch-size {args.batch_size}{extra}")  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
