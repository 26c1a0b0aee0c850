"""Fake encoders and tiny tasks for tests and for users who test their own code.

- ``HashingEncoder``: deterministic signed feature hashing of lower-cased words (plus a small,
  fixed text-dependent offset so vectors are not sparse). No weights, meaningful retrieval.
  Registered as the ``hashing`` backend, so any model spec can be run without weights.
- ``KeywordEncoder``: one dimension per keyword, counts of each; metrics can be worked out by hand.
- ``write_beir_task``: writes a BEIR folder and its task YAML, for tests of the loaders and the CLI.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bench.encoders import BACKENDS, BackendKind, EncoderOptions
from bench.types import BackendSpec, ModelSpec, Role

_WORD = re.compile(r"\w+")


def _bucket(word: str, dim: int) -> tuple[int, float]:
    h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return h % dim, 1.0 if (h >> 32) & 1 else -1.0


class HashingEncoder:
    """Signed feature hashing: each word adds +-1 to one of ``dim`` buckets."""

    n_parameters = 0

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.calls: list[tuple[Role, int]] = []  # (role, batch size) of every encode call

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        self.calls.append((role, len(texts)))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                col, sign = _bucket(word, self.dim)
                out[row, col] += sign
            out[row] += 0.01 * np.sin(np.arange(self.dim) + len(text))
        return out

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(_WORD.findall(t)) for t in texts)


class KeywordEncoder:
    """Counts of given keywords: dimension ``i`` is how often ``keywords[i]`` occurs."""

    n_parameters = 0

    def __init__(self, keywords: Sequence[str]) -> None:
        self.keywords = [k.lower() for k in keywords]

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(_WORD.findall(t)) for t in texts)

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        out = np.zeros((len(texts), len(self.keywords)), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            out[row] = [words.count(k) for k in self.keywords]
        return out


def _hashing_factory(model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> HashingEncoder:
    return HashingEncoder(model.dim)


BACKENDS.add("hashing", BackendKind(_hashing_factory, ("cpu",), ("float32",)))


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
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, rels in qrels.items():
            for doc_id, score in rels.items():
                f.write(f"{qid}\t{doc_id}\t{score}\n")
    (root / "retrieval").mkdir(parents=True, exist_ok=True)
    lines = [f"name: {name}", "source: beir", f"path: ../data/{name}", f"split: {split}"]
    lines += [f"{k}: {json.dumps(v)}" for k, v in spec.items()]
    path = root / "retrieval" / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_models(root: Path, models: Mapping[str, Mapping[str, object]]) -> Path:
    """Write ``root/models.yaml`` from plain mappings."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "models.yaml"
    path.write_text(json.dumps({"models": models}, indent=1), encoding="utf-8")  # JSON is YAML
    return path
