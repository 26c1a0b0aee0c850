"""Benchmark: every CPU backend for MiniLM, timed side by side, with its quality on SciFact.

Speed: each backend encodes the same seeded sample of SciFact abstracts at each batch size,
(backend, batch size) pairs taking turns (round-robin, the order rotated every round, a short
pause between passes so one runtime's spinning threads do not slow the next). docs/s is the median
over rounds; a ratio to torch float32 is the median of the per-round ratios (the same round, so
drift of the machine cancels); the spread is the slowest and fastest round. Each backend is judged
at its own fastest batch size against torch float32 at *its* fastest: a batch size that slows
torch (on long texts torch ran a fifth slower at 64 than at 8) must not inflate another backend's
ratio. The ratio at the same batch size is shown beside it. GFLOP/s counts the model's forward
FLOPs for the sample's real tokens (``bench.flops``); the fraction is of this machine's measured
matrix-multiply peak in the dtype the backend multiplies in (``bench.measure.matmul_peak_gflops``,
budgeted, the best of a measurement before and after the rounds). A rate above that peak is
reported as such, never as a utilization above 100%.

Quality: nDCG@10 on all of SciFact at float32 and full dimension, from one ``bench run`` over the
same backends (``runner.run``); its vectors live in the embedding cache, so only the first run of
this script encodes the corpus, and the timed passes never do. Retention is against torch float32.

    python benchmarks/cpu_backends.py [--sample 256] [--rounds 5] [--batch-sizes 4,8,16,32,64] [--backends ...]

The output is the markdown that README's cost section shows, for this machine's CPU class.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
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
from bench.measure import alternating_seconds, matmul_peak_gflops
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
        "--rounds", type=int, default=5, help="interleaved rounds (each backend at each batch size once per round)"
    )
    parser.add_argument("--batch-sizes", type=batch_sizes, default=(4, 8, 16, 32, 64),
                        help="comma-separated; every backend is timed at each")  # fmt: skip
    parser.add_argument("--backends", default=",".join(DEFAULT_BACKENDS),
                        help="comma-separated; torch float32 (the reference) is always included")  # fmt: skip
    parser.add_argument(
        "--peak-budget", type=float, default=10.0, help="seconds per matmul peak measurement"
    )
    parser.add_argument("--settle", type=float, default=0.5, help="pause (s) between timed passes")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    return parser.parse_args()


def batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError(f"--batch-sizes: distinct positive integers, comma-separated; got {text!r}")
    return sizes


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


def timed_encoders(model, specs, sizes, cache_dir: Path) -> dict:
    """An encoder per (backend, batch size); a backend that runs a fixed number of texts at a time
    whatever it is given (onnx int8: one) is timed once, at that number."""
    encoders = {}
    for spec in specs:
        for size in sizes:
            encoder = make_encoder(model, spec, EncoderOptions(size, cache_dir))
            fixed = getattr(encoder, "fixed_batch_size", None)
            encoders[(spec.id, fixed or size)] = encoder
            if fixed:
                break
    return encoders


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
    """Seconds per pass for each encoder (a backend at a batch size) over ``rounds`` rounds (order
    rotated each round), and the 1-minute load average at the end of each round."""
    loads: list[float] = []
    passes = {key: (lambda enc=enc: enc.encode(texts, Role.DOCUMENT)) for key, enc in encoders.items()}
    seconds = alternating_seconds(passes, rounds, settle=settle, rotate=True,
                                  after_round=lambda: loads.append(os.getloadavg()[0]))  # fmt: skip
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


def per_round_ratio(reference: list[float], runs: list[float]) -> float:
    """Median over rounds of reference seconds / backend seconds, each pair from one round."""
    return statistics.median(r / x for r, x in zip(reference, runs))


def fastest(seconds: dict[tuple[str, int], list[float]], backend: str) -> tuple[str, int]:
    """The (backend, batch size) pass with the lowest median seconds."""
    return min((key for key in seconds if key[0] == backend), key=lambda key: statistics.median(seconds[key]))


def ratios(seconds: dict[tuple[str, int], list[float]]) -> dict[tuple[str, int], tuple[float, float]]:
    """Per (backend, batch size): its speed over torch float32 at the same batch size, and over
    torch float32 at torch's fastest batch size."""
    best_reference = seconds[fastest(seconds, REFERENCE)]
    return {key: (per_round_ratio(seconds[(REFERENCE, key[1])], runs) if (REFERENCE, key[1]) in seconds else None,
                  per_round_ratio(best_reference, runs)) for key, runs in seconds.items()}  # fmt: skip


def table(specs, seconds, flops, peak, cosines, scores, n_texts) -> list[str]:
    """Every backend at every batch size; its fastest batch size in bold."""
    reference_size = fastest(seconds, REFERENCE)[1]
    lines = [(f"| backend | batch size | docs/s (median) | slowest-fastest round | x torch float32 (same batch size) "
              f"| x torch float32 at its fastest (batch size {reference_size}) | GFLOP/s | fraction of peak "
              "| min cos to torch (sample) | nDCG@10 | retention |"),
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]  # fmt: skip
    ratio = ratios(seconds)
    for spec in specs:
        best = fastest(seconds, spec.id)
        for key in sorted(k for k in seconds if k[0] == spec.id):
            runs, median = seconds[key], statistics.median(seconds[key])
            gflops = flops / median / 1e9
            ndcg, retention = scores[spec.id]
            size = f"**{key[1]}**" if key == best else str(key[1])
            same = "–" if ratio[key][0] is None else f"{ratio[key][0]:.2f}x"  # torch not timed at that size
            lines.append(f"| {spec.id} | {size} | {n_texts / median:.1f} | {n_texts / max(runs):.1f}-"
                         f"{n_texts / min(runs):.1f} | {same} | {ratio[key][1]:.2f}x | {gflops:.0f} | "
                         f"{fraction(gflops, spec.dtype, peak)} | {cosines[spec.id]:.4f} | {ndcg:.4f} | "
                         f"{100 * retention:.1f}% |")  # fmt: skip
    return lines


def summary(specs, seconds, flops, peak, scores, n_texts) -> list[str]:
    """Each backend at its fastest batch size, against torch float32 at its fastest."""
    lines = ["| backend (at its fastest batch size) | docs/s | x torch float32 | fraction of peak | retention |",
             "|---|---:|---:|---|---:|"]  # fmt: skip
    ratio = ratios(seconds)
    for spec in specs:
        key = fastest(seconds, spec.id)
        gflops = flops / statistics.median(seconds[key]) / 1e9
        lines.append(f"| {spec.id} ({key[1]}) | {n_texts / statistics.median(seconds[key]):.1f} | "
                     f"{ratio[key][1]:.2f}x | {fraction(gflops, spec.dtype, peak)} | "
                     f"{100 * scores[spec.id][1]:.1f}% |")  # fmt: skip
    return lines


def verdict(specs, seconds, scores) -> str:
    """Which goal applies to this CPU class and whether the fastest backend keeping 99.5%, at its
    fastest batch size, meets it against torch float32 at torch's fastest; then that backend's
    best ratio at one batch size for both, and how fast torch runs at that size."""
    ratio = ratios(seconds)
    best_of = {s.id: ratio[fastest(seconds, s.id)][1] for s in specs}
    keeping = [s.id for s in specs if scores[s.id][1] >= MIN_RETENTION]
    best = max(keeping, key=best_of.get)
    target = TARGETS.get(cpu_class())
    goal = f"goal for this class: >= {target}x" if target else "no goal is stated for this class"
    met = "" if not target else (" -> met" if best_of[best] >= target else " -> NOT met")
    line = (f"fastest backend keeping >= {100 * MIN_RETENTION:.1f}% nDCG@10: {best} at batch size "
            f"{fastest(seconds, best)[1]}, {best_of[best]:.2f}x torch float32 at batch size "
            f"{fastest(seconds, REFERENCE)[1]} ({goal}{met})")  # fmt: skip
    shared = [k for k in seconds if k[0] == best and ratio[k][0] is not None]
    if not shared:
        return line + "; torch float32 was not timed at its batch size"
    same = max(shared, key=lambda k: ratio[k][0])
    return (f"{line}; at one batch size for both, its best ratio is {ratio[same][0]:.2f}x (batch size {same[1]}, "
            f"where torch float32 runs at {ratio[(REFERENCE, same[1])][1]:.2f}x its fastest)")  # fmt: skip


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
        f"sample: {args.sample} seeded {TASK} abstracts, batch sizes {','.join(map(str, args.batch_sizes))}, "
        f"{args.rounds} interleaved rounds",
    ]


def main() -> None:
    args = parse_args()
    specs, notes = chosen_backends(args.backends)
    scores = quality(specs, args.cache_dir, max(args.batch_sizes))
    model, texts = model_registry().get(MODEL), sample_texts(args.sample)
    encoders = timed_encoders(model, specs, args.batch_sizes, args.cache_dir)
    vectors = {key: enc.encode(texts, Role.DOCUMENT) for key, enc in encoders.items()}  # warm-up
    reference = vectors[(REFERENCE, args.batch_sizes[0])]
    cosines = {spec.id: min(min_cosine(v, vectors.get((REFERENCE, key[1]), reference)) for key, v in vectors.items()
                            if key[0] == spec.id) for spec in specs}  # fmt: skip
    loads_start = os.getloadavg()[0]
    dtypes = {spec.dtype for spec in specs}
    before = peaks(dtypes, args.peak_budget)
    seconds, loads = interleaved(encoders, texts, args.rounds, args.settle)
    after = peaks(dtypes, args.peak_budget)
    peak = {dt: max(before[dt], after[dt]) for dt in before}
    flops, tokens = sample_flops(encoders[(REFERENCE, args.batch_sizes[0])], texts)
    lines = header(args, specs, peak, loads_start)
    lines += [(f"sample tokens: {tokens} ({tokens / len(texts):.0f} per abstract); load average (1 min) after each "
              f"round: {', '.join(f'{x:.1f}' for x in loads)}"), ""]  # fmt: skip
    lines += summary(specs, seconds, flops, peak, scores, len(texts)) + [""]
    lines += table(specs, seconds, flops, peak, cosines, scores, len(texts)) + [""]
    lines += [verdict(specs, seconds, scores)] + notes
    extra = f" --backends {args.backends}" if args.backends != ",".join(DEFAULT_BACKENDS) else ""
    lines.append(f"reproduce: python benchmarks/cpu_backends.py --sample {args.sample} --rounds {args.rounds} "
                 f"--batch-sizes {','.join(map(str, args.batch_sizes))}{extra}")  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
