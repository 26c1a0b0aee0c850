"""The ``torch`` backend: a sentence-transformers model on CPU or CUDA, float32/bfloat16/float16.

The checkpoint's own configuration rules, exactly as ``SentenceTransformer.encode_query`` and
``encode_document`` apply it: its module chain (transformer, pooling, normalization), its
``prompts`` and ``default_prompt_name``, pooling that excludes the prompt (``include_prompt:
false``) and its ``max_seq_length``. The registry may override the prompts (``prompts:``) and the
token limit (``max_length:``); rows then say so. The harness only batches: texts are grouped by
token length (less padding) and each group goes through sentence-transformers' encode.

Chunks in their document (``bench.contexts``):

- ``late``: for a Transformer -> mean Pooling (-> Normalize) chain, the document's tokens run
  through the transformer module once per window and each chunk is the mean of its own tokens'
  states (``bench.encoders.late`` states the rule).
- ``native``: for a ``contextual`` checkpoint (pplx-embed-context-v1: ``trust_remote_code`` at a
  pinned commit), the checkpoint's own chain embeds a document given as its list of chunks:
  ``encode(documents, output_value=None)`` returns, per document, a ``sentence_embedding`` with
  one row per chunk (after ``chunk_mask`` where the chain pads documents to a common number of
  chunks). A single text (a query, or a chunk embedded ``independent``) is a document of one
  chunk. A document longer than the checkpoint's token limit is refused: it has no windows.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from bench.encoders import EncoderOptions, cuda_available
from bench.encoders import late as late_chunking
from bench.encoders.batching import by_chunks, pad, sorted_batches
from bench.encoders.exported import token_limits
from bench.errors import EncoderError, InputError, Unavailable
from bench.types import BackendSpec, ModelSpec, Role
from bench.weights import check_remote_code, local_folder, weights_identity, weights_location

log = logging.getLogger(__name__)


def load_sentence_transformer(model: ModelSpec, device: str = "cpu", dtype: str = "float32"):
    """Load the model's sentence-transformers chain (local package weights or the pinned hub revision)."""
    import torch
    from sentence_transformers import SentenceTransformer

    check_remote_code(model)  # also for specs built in code, not read from models.yaml
    location = weights_location(model)
    quiet_hub_progress()
    log.info("loading %s from %s on %s/%s", model.name, location, device, dtype)
    try:
        st = SentenceTransformer(
            location,
            device=device,
            revision=None if (model.weights_package or model.path) else model.revision,
            trust_remote_code=model.trust_remote_code,
            model_kwargs={"dtype": getattr(torch, dtype)},
        )
    except (OSError, ValueError) as exc:  # not on disk and no hub, or a broken checkpoint (a module path with ..)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        missing_hub = isinstance(exc, OSError) and local_folder(model) is None  # a hub id: the hub is what is missing
        raise (Unavailable if missing_hub else InputError)(f"model {model.key}: cannot load weights from {location}: "
                                                           f"{first}") from None  # fmt: skip
    if model.max_length:  # the registry overrides the checkpoint's own limits, each of them
        override_token_limit(st, model.max_length)
    while len(st) > 1 and type(st[len(st) - 1]).__name__ in model.strip_modules:
        log.info("%s: dropping %s, the harness quantizes itself", model.key, type(st[len(st) - 1]).__name__)
        del st[len(st) - 1]
    return st


def override_token_limit(st, limit: int) -> None:
    """One token limit for every role: ``max_seq_length``, and the per-role ``query_length`` /
    ``document_length`` and ``processing_kwargs`` ``max_length`` that sentence-transformers would
    otherwise apply instead of it."""
    st.max_seq_length = limit
    module = st[0]
    for name in ("query_length", "document_length"):
        if getattr(module, name, None) is not None:
            setattr(module, name, limit)
    for settings in (getattr(module, "processing_kwargs", None) or {}).values():
        if isinstance(settings, dict) and "max_length" in settings:
            settings["max_length"] = limit


def quiet_hub_progress() -> None:
    """No weight-loading bars in logs (bench prints its own progress lines there)."""
    from bench.progress import on_terminal

    if not on_terminal():
        import huggingface_hub.utils
        import transformers.utils.logging

        huggingface_hub.utils.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


def fingerprint(model: ModelSpec, backend: BackendSpec, role: Role, cache_root) -> dict:
    """Everything that changes this backend's vectors (weights' content, module chain, prompts,
    token limit, dtype, device class, library versions). Computed without loading the model."""
    return {
        "weights": weights_identity(model, cache_root), "strip_modules": list(model.strip_modules),
        "prompt": model.prompts.get(role.value, "<checkpoint>"), "max_length": model.max_length or "<checkpoint>",
        "dtype": backend.dtype, "device": backend.device, "trust_remote_code": model.trust_remote_code,
        "libraries": _versions("sentence-transformers", "transformers", "torch"),
    }  # fmt: skip


NATIVE_RULE = {"version": 1, "input": "a document as its list of chunks; a single text as a one-chunk document",
               "output": "sentence_embedding per document, one row per chunk (chunk_mask applied)"}  # fmt: skip


def context_fingerprint(model: ModelSpec, backend: BackendSpec, context: str) -> dict:
    """This backend's rule for embedding chunks in ``context`` (late or native), for the vector key."""
    return {"late": late_chunking.rule()} if context == "late" else {"native": NATIVE_RULE}


def _versions(*packages: str) -> dict[str, str]:
    """Major.minor of each package: numerics may change between minor releases."""
    import importlib.metadata

    out = {}
    for name in packages:
        try:
            out[name] = ".".join(importlib.metadata.version(name).split(".")[:2])
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


class SentenceTransformerEncoder:
    """Runs a sentence-transformers model in torch, as its own encode_query/encode_document do."""

    parallel_requests = 1
    chunk_size = 512

    def __init__(self, model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> None:
        if backend.device == "cuda" and not cuda_available():
            raise Unavailable(f"backend {backend.id}: CUDA is not available on this machine")
        import torch

        torch.manual_seed(options.seed)
        self.model = load_sentence_transformer(model, backend.device, backend.dtype)
        self.model.eval()
        self.dim, self.prompts = model.dim, dict(model.prompts)
        self.batch_size = options.batch_size
        self.n_parameters = int(sum(p.numel() for p in self.model.parameters()))
        self.limits = token_limits(self.model)
        self.torch_cuda_memory = backend.device == "cuda"  # its CUDA memory is torch's to measure
        self.key, self.contextual = model.key, model.contextual

    def prompt(self, role: Role) -> str:
        """The prompt sentence-transformers prepends for ``role`` (the registry's, else the checkpoint's)."""
        if role.value in self.prompts:
            return self.prompts[role.value]
        names = ["query"] if role is Role.QUERY else ["document", "passage", "corpus"]
        name = next((n for n in names if n in self.model.prompts), self.model.default_prompt_name)
        return self.model.prompts.get(name, "") if name else ""

    def _lengths(self, texts: Sequence[str], role: Role) -> list[int]:
        """Tokens per text as encoded: the role's prompt and token limit (``token_limits``)."""
        prompt = self.prompt(role)
        tokens = self.model.tokenizer([prompt + t for t in texts], truncation=True,
                                      max_length=self.limits[role.value], padding=False)  # fmt: skip
        return [len(ids) for ids in tokens["input_ids"]]

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(self._lengths(texts, Role.DOCUMENT))

    def close(self) -> None:
        """Nothing runs in the background."""

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        if self.contextual:  # a single text is a document of one chunk
            return np.concatenate(self._native([[t] for t in texts]))
        encode = self.model.encode_query if role is Role.QUERY else self.model.encode_document
        prompt = self.prompts.get(role.value)  # None: the checkpoint's prompts decide
        out = np.zeros((len(texts), self.dim), np.float32)
        for batch in sorted_batches(self._lengths(texts, role), self.batch_size):
            vectors = encode([texts[i] for i in batch], prompt=prompt, batch_size=len(batch), convert_to_numpy=True,
                             show_progress_bar=False)  # fmt: skip
            out[batch] = np.asarray(vectors, dtype=np.float32)
        return out

    def document_batches(self, documents: Sequence[Sequence[str]]) -> list[list[int]]:
        """About ``chunk_size`` chunks per call, whole documents only."""
        return by_chunks(documents, self.chunk_size)

    def encode_documents(self, documents: Sequence[Sequence[str]], context: str) -> list[np.ndarray]:
        """One (chunks, width) array per document: late chunking, or the checkpoint's own (native)."""
        return self._late(documents) if context == "late" else self._native(documents)

    # ------------------------------------------------------------------ native (contextual checkpoints)

    def _native(self, documents: Sequence[Sequence[str]]) -> list[np.ndarray]:
        # The sequence the model's own first module makes of each chunk list, special tokens and
        # separators included; one that reaches the window may have been cut there, so is refused.
        limit = self.model.max_seq_length
        features = self.model.preprocess([list(c) for c in documents])
        for chunks, tokens in zip(documents, features["attention_mask"].sum(dim=1).tolist()):
            if tokens >= limit:
                raise InputError(f"model {self.key}: a document of {len(chunks)} chunks is {tokens} tokens with the "
                                 f"model's special tokens, reaching its {limit}-token window (context native has "
                                 "no windows); cut it into smaller documents")  # fmt: skip
        items = self.model.encode([list(c) for c in documents], output_value=None, batch_size=self.batch_size,
                                  show_progress_bar=False)  # fmt: skip
        return [self._chunk_vectors(item, len(chunks)) for item, chunks in zip(items, documents)]

    def _chunk_vectors(self, item: dict, n_chunks: int) -> np.ndarray:
        vectors = item["sentence_embedding"]
        if item.get("chunk_mask") is not None:
            vectors = vectors[item["chunk_mask"].bool()]
        import torch

        array = vectors.float().cpu().numpy() if isinstance(vectors, torch.Tensor) else np.asarray(vectors, np.float32)
        if array.ndim != 2 or array.shape[0] != n_chunks:
            raise EncoderError(f"model {self.key}: returned an embedding of shape {tuple(array.shape)} for a document "
                               f"of {n_chunks} chunks; context native needs one vector per chunk")  # fmt: skip
        return array.astype(np.float32)

    # ------------------------------------------------------------------ late chunking

    def _late_chain(self):
        """The transformer module and whether a Normalize follows mean pooling; else one line why not."""
        from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

        modules = list(self.model)
        pooling = modules[1] if len(modules) > 1 else None
        if not isinstance(modules[0], Transformer) or not isinstance(pooling, Pooling):
            raise InputError(f"model {self.key}: context late needs a Transformer -> Pooling chain")
        if pooling.get_config_dict()["pooling_mode"] != "mean":
            raise InputError(f"model {self.key}: context late needs mean pooling, the model pools by "
                             f"{pooling.get_config_dict()['pooling_mode']}")  # fmt: skip
        if any(not isinstance(m, Normalize) for m in modules[2:]):
            raise InputError(f"model {self.key}: context late allows only Normalize after mean pooling")
        return modules[0], len(modules) > 2

    def _frame(self) -> tuple[list[int], list[int], int]:
        """Tokens before and after the content of every window (specials, document prompt), and the
        content capacity of a window."""
        tokenizer = self.model.tokenizer
        bare = tokenizer("late chunking", add_special_tokens=False)["input_ids"]
        wrapped = tokenizer("late chunking", add_special_tokens=True)["input_ids"]
        at = next((i for i in range(len(wrapped) - len(bare) + 1) if wrapped[i : i + len(bare)] == bare), None)
        if at is None:
            raise InputError(f"model {self.key}: cannot tell its special tokens apart from the text")
        prompt = self.prompt(Role.DOCUMENT)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        head, tail = wrapped[:at] + list(prompt_ids), wrapped[at + len(bare) :]
        capacity = self.model.max_seq_length - len(head) - len(tail)
        if capacity < 2:
            raise InputError(f"model {self.key}: its {self.model.max_seq_length}-token limit leaves no room for "
                             "late-chunking windows after its special tokens and prompt")  # fmt: skip
        return head, tail, capacity

    def _late(self, documents: Sequence[Sequence[str]]) -> list[np.ndarray]:
        transformer, normalize = self._late_chain()
        head, tail, capacity = self._frame()
        tokens, lengths, passes = [], [], []  # per document: token ids, chunk lengths; all windows
        for d, chunks in enumerate(documents):
            ids = self.model.tokenizer(list(chunks), add_special_tokens=False)["input_ids"]
            empty = [i for i, row in enumerate(ids) if not row]
            if empty:
                raise InputError(f"model {self.key}: chunk {empty[0]} of a document ({chunks[empty[0]][:40]!r}) has "
                                 "no tokens; it cannot be pooled")  # fmt: skip
            tokens.append([t for row in ids for t in row])
            lengths.append([len(row) for row in ids])
            passes += [(d, w) for w in late_chunking.windows(len(tokens[-1]), capacity)]
        states = [np.zeros((len(t), self.dim), np.float32) for t in tokens]
        inputs = [head + tokens[d][w.start : w.own_end] + tail for d, w in passes]
        for batch in sorted_batches([len(x) for x in inputs], self.batch_size):
            hidden = self._token_states(transformer, [inputs[i] for i in batch])
            for row, i in enumerate(batch):
                d, w = passes[i]
                first = len(head) + (w.own_start - w.start)
                states[d][w.own_start : w.own_end] = hidden[row, first : first + w.own_end - w.own_start]
        vectors = [late_chunking.chunk_means(s, n) for s, n in zip(states, lengths)]
        if normalize:
            vectors = [v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12) for v in vectors]
        return vectors

    def _token_states(self, transformer, rows: list[list[int]]) -> np.ndarray:
        """The transformer module's output states for token-id rows: (rows, longest, width) float32."""
        import torch

        tokenizer = self.model.tokenizer
        ids, mask = pad(rows, tokenizer.pad_token_id or 0)
        device = self.model.device
        features = {"input_ids": torch.from_numpy(ids).to(device), "attention_mask": torch.from_numpy(mask).to(device)}
        if "token_type_ids" in tokenizer.model_input_names:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        with torch.inference_mode():
            out = transformer(features)["token_embeddings"]
        return out.float().cpu().numpy()
