"""Forward-pass FLOPs of transformer encoders, from their configuration alone.

Counts the matrix multiplies (2 FLOPs per multiply-add): attention projections (with grouped
key/value heads), the attention itself (scores and weighted sum over ``seq_len`` positions), and
the MLP (two matrices, or three for gated SwiGLU MLPs as in Qwen and Llama). Embedding lookups,
norms and activations are ignored: they are a rounding error next to these.
"""

from __future__ import annotations

from typing import Mapping

# Families whose MLP has a gate beside its up projection (three matrices: SwiGLU or GeGLU).
GATED_MLP = {"qwen2", "qwen3", "llama", "mistral", "gemma", "gemma2", "gemma3", "gemma3_text", "olmo", "olmo2",
             "granite", "cohere", "cohere2", "nomic_bert", "phi3", "modernbert"}  # fmt: skip


def flops_per_token(config: Mapping[str, object], seq_len: float) -> float:
    """FLOPs to encode one token of a sequence of ``seq_len`` tokens."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    inter = int(config["intermediate_size"])
    q_width, kv_width = heads * head_dim, kv_heads * head_dim
    projections = 2 * hidden * (q_width + 2 * kv_width) + 2 * q_width * hidden
    attention = 2 * 2 * seq_len * q_width
    mlp = (3 if config.get("model_type") in GATED_MLP else 2) * 2 * hidden * inter
    return float(int(config["num_hidden_layers"]) * (projections + attention + mlp))


def mean_flops_per_token(config: Mapping[str, object], lengths: list[int]) -> float:
    """Average over a set of sequence lengths, weighted by tokens (each token sees its own length)."""
    total = sum(n * flops_per_token(config, n) for n in lengths)
    return total / max(1, sum(lengths))
