"""What the backends that run an exported graph (``onnx``, ``openvino``) share.

At export time the model's sentence-transformers chain is read once: its tokenizer file, token
limit, prompts per role, pooling mode and normalization go into the export folder beside the
graph (``tokenizer.json``, ``config.json``). At encode time texts get the prompt for their role,
are tokenized with that tokenizer file, batched by token length, run through the graph (any
``forward(feeds) -> last_hidden_state``), then pooled and normalized in NumPy as the checkpoint
says. Export folders are created atomically: built in a temporary folder, then renamed, with a
SHA-256 of every file in ``checksums.json``, verified each time the folder is used: a damaged
export (a flipped weight changes vectors by a little, and they would be cached as right) is
removed and built again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from bench.cache import atomic_write_bytes, new_dir_mode
from bench.encoders import prompted
from bench.encoders.batching import mean_pool, pad, sorted_batches
from bench.errors import InputError
from bench.types import ModelSpec, Role

log = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def pooling(st, who: str) -> dict:
    """The checkpoint's pooling (mean or cls) and whether it normalizes; anything the NumPy
    pooling cannot reproduce exactly is refused in one line."""
    from sentence_transformers.models import Normalize, Pooling, Transformer

    modules = list(st)
    if not (isinstance(modules[0], Transformer) and len(modules) > 1 and isinstance(modules[1], Pooling)):
        raise InputError(f"{who} backend: the model must be a Transformer followed by Pooling")
    if any(not isinstance(m, Normalize) for m in modules[2:]):
        raise InputError(f"{who} backend: only a Normalize module may follow Pooling")
    config = modules[1].get_config_dict()
    mode = config["pooling_mode"]
    if mode not in ("mean", "cls"):
        raise InputError(f"{who} backend: pooling mode {mode!r} is not supported (mean or cls)")
    if config.get("include_prompt", True) is False:
        raise InputError(f"{who} backend: pooling that leaves the prompt out (include_prompt: false) is not "
                         "supported; use the torch backend for this model")  # fmt: skip
    return {"mode": mode, "normalize": len(modules) > 2}


def checkpoint_prompts(st) -> dict[str, str]:
    """The prompt per role sentence-transformers' encode_query / encode_document would use."""
    prompts, default = dict(st.prompts or {}), st.default_prompt_name
    out = {}
    for role, names in (("query", ["query"]), ("document", ["document", "passage", "corpus"])):
        name = next((n for n in names if n in prompts), default)
        out[role] = prompts.get(name, "") if name else ""
    return out


def input_names(st, who: str) -> list[str]:
    """The graph's inputs: the tokenizer's, in the order ``forward`` takes them."""
    names = [n for n in INPUT_NAMES if n in st.tokenizer.model_input_names]
    if names[:2] != ["input_ids", "attention_mask"]:
        raise InputError(f"{who} backend: the tokenizer must give input_ids and attention_mask, got {names}")
    return names


# How the export folder describes tokenization: 2 adds a token limit per role and the side cut.
TOKENIZATION = 2


def reader_versions() -> dict[str, str]:
    """The libraries that read the checkpoint for an export (its prompts, limits, tokenizer file
    and module chain): part of every export's identity."""
    from bench.environment import package_version

    return {name: package_version(name) for name in ("sentence-transformers", "transformers", "tokenizers")}


_LIMIT_KEYS = {"max_length"}  # the processing settings the exported tokenization reproduces


def token_limits(st, who: str | None = None) -> dict[str, object]:
    """The token limit per role and the side cut, as sentence-transformers' ``preprocess`` applies
    them: the checkpoint's ``processing_kwargs`` ``max_length`` (text, else common), else its
    ``query_length`` / ``document_length``, else ``max_seq_length``; the tokenizer's
    ``truncation_side``. With ``who`` (an exporting backend), other processing settings, which
    the exported tokenization would not reproduce, are refused in one line."""
    module = st[0]
    kwargs = getattr(module, "processing_kwargs", None) or {}
    text, common = dict(kwargs.get("text") or {}), dict(kwargs.get("common") or {})
    odd = sorted((set(text) | set(common)) - _LIMIT_KEYS)
    if who and odd:
        raise InputError(f"{who} backend: the checkpoint's processing_kwargs set {odd}, which the exported "
                         "tokenization does not reproduce; use the torch backend for this model")  # fmt: skip
    fixed = text.get("max_length", common.get("max_length"))
    limits = {}
    for role in ("query", "document"):
        limit = fixed or getattr(module, f"{role}_length", None) or st.max_seq_length
        limits[role] = int(limit) if limit else None  # None: the checkpoint sets no limit
    return {**limits, "side": getattr(st.tokenizer, "truncation_side", "right") or "right"}


def write_meta(st, target: Path, who: str, **extra) -> dict:
    """Write the tokenizer file and ``config.json`` (inputs, padding id, token limits per role and
    the side cut, prompts, pooling, and ``extra`` fields) into an export folder; return the config."""
    (target / "tokenizer.json").write_text(st.tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
    meta = {"inputs": input_names(st, who), "pad_id": st.tokenizer.pad_token_id, "max_length": st.max_seq_length,
            "limits": token_limits(st, who), "prompts": checkpoint_prompts(st), **pooling(st, who),
            "tokenization": TOKENIZATION, **extra}  # fmt: skip
    (target / "config.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta


def hidden_states_module(st, attention: str | None = None):
    """The checkpoint's transformer as a torch module ``(input_ids, attention_mask[, token_type_ids])
    -> last_hidden_state``, for exporters that trace it; ``attention`` names the attention
    implementation to trace (``eager``: the plain MatMul/Softmax/MatMul graph), else the
    checkpoint's default (``sdpa`` in current transformers). The math is the same either way; what
    differs is the graph a runtime optimizes. A model that cannot switch is traced as it is."""
    import torch

    auto = st[0].auto_model.eval()
    if attention is not None:
        try:
            auto.set_attn_implementation(attention)
        except (AttributeError, ValueError, NotImplementedError) as exc:
            log.info("tracing the checkpoint's own attention: %s attention is not available (%s)", attention, exc)

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = auto

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    return HiddenStates()


CHECKSUMS = "checksums.json"


def checksums(folder: Path) -> dict[str, str] | None:
    """File name -> SHA-256 from an export folder's ``checksums.json`` (None: absent or unreadable)."""
    try:
        return json.loads((folder / CHECKSUMS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def record_checksums(folder: Path, names: Sequence[str]) -> None:
    """Add the SHA-256 of ``folder/name`` for each name to the folder's ``checksums.json``."""
    from bench.weights import file_digest

    sums = {**(checksums(folder) or {}), **{name: file_digest(folder / name) for name in names}}
    atomic_write_bytes(folder / CHECKSUMS, json.dumps(sums, indent=1, sort_keys=True).encode("utf-8"))


def damage(folder: Path) -> str | None:
    """What is wrong with an export folder's files against its ``checksums.json`` (None: intact)."""
    from bench.weights import file_digest

    sums = checksums(folder)
    if sums is None:
        return f"no readable {CHECKSUMS}"
    for name, digest in sorted(sums.items()):
        if not (folder / name).is_file():
            return f"{name} is missing"
        if file_digest(folder / name) != digest:
            return f"{name} does not match its checksum"
    return None


_BUILDS = threading.local()


def building(build: Callable[..., None], *args) -> None:
    """Run a one-time build step (an export, a conversion, a quantization), adding its seconds to
    this thread's ``build_seconds``: the time to load a model excludes them."""
    t0 = time.perf_counter()
    try:
        build(*args)
    finally:
        _BUILDS.seconds = build_seconds() + time.perf_counter() - t0


def build_seconds() -> float:
    """Seconds this thread has spent in ``building`` so far."""
    return getattr(_BUILDS, "seconds", 0.0)


def build_atomically(folder: Path, build: Callable[[Path], None]) -> Path:
    """``folder``, built by ``build(tmp)`` in a temporary sibling (with every file's checksum) and
    renamed into place, unless it already holds an intact build (its ``config.json``, the last
    file every build writes, and files matching their checksums); a damaged one is removed first."""
    if (folder / "config.json").is_file():
        problem = damage(folder)
        if problem is None:
            return folder
        log.warning("%s: %s; removing the export and building it again", folder, problem)
        shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".export-"))
    tmp.chmod(new_dir_mode())  # mkdtemp makes 0700; the export is a folder like any other
    try:
        building(build, tmp)
        record_checksums(tmp, sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()))
        os.replace(tmp, folder) if not folder.exists() else shutil.rmtree(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


class TokenizedGraph:
    """Tokenize, batch by length, run ``forward`` per batch, pool and normalize: the encode loop of
    a backend that runs an exported graph (see ``bench.encoders.Encoder``)."""

    def __init__(self, folder: Path, model: ModelSpec, batch_size: int, forward: Callable[[dict], np.ndarray]) -> None:
        from tokenizers import Tokenizer

        self.config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        limits = self.config["limits"]  # the registry's max_length is in them (set before export)
        self.tokenizers = {}
        for role in Role:  # one per role: its own limit, cut on the checkpoint's side
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            tokenizer.no_padding()
            if limits[role.value]:
                tokenizer.enable_truncation(limits[role.value], direction=limits["side"])
            else:
                tokenizer.no_truncation()
            self.tokenizers[role] = tokenizer
        self.prompts = {**self.config.get("prompts", {}), **model.prompts}  # the registry's win
        self.batch_size, self.forward = batch_size, forward

    def tokenize(self, texts: Sequence[str], role: Role = Role.DOCUMENT):
        return self.tokenizers[role].encode_batch(prompted(texts, self.prompts, role))

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(e.ids) for e in self.tokenize(texts))

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        encodings = self.tokenize(texts, role)
        out: np.ndarray | None = None
        for batch in sorted_batches([len(e.ids) for e in encodings], self.batch_size):
            vectors = self.pool(*self.run([encodings[i].ids for i in batch]))
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), np.float32)
            out[batch] = vectors
        return out if out is not None else np.zeros((0, 0), np.float32)

    def feeds(self, rows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """The graph's inputs for token id rows (right-padded; one segment)."""
        ids, mask = pad(rows, self.config["pad_id"])
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {n: feeds[n] for n in self.config["inputs"]}

    def run(self, rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        feeds = self.feeds(rows)
        return self.forward(feeds), feeds["attention_mask"]

    def pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        vectors = mean_pool(hidden, mask) if self.config["mode"] == "mean" else hidden[:, 0]
        if self.config["normalize"]:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors.astype(np.float32)
