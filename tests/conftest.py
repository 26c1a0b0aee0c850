"""Shared fixtures: a tiny tasks folder with a weightless model, the bundled SciFact, and MiniLM with
sentence-transformers' own vectors of a test module's ``TEXTS``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench.testing import write_beir_task, write_models  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

TOY_CORPUS = {
    "d1": ("Cats", "cats purr and sleep all day"),
    "d2": ("Dogs", "dogs bark at the mail carrier"),
    "d3": ("Birds", "birds sing at dawn in spring"),
    "d4": ("Fish", "fish swim in cold rivers"),
    "d5": ("Cats and dogs", "cats and dogs can live together"),
    "d6": ("Spring", "spring rain brings flowers"),
}
TOY_QUERIES = {"q1": "why do cats purr", "q2": "dogs bark", "q3": "birds in spring", "q4": "unjudged"}
TOY_QRELS = {"q1": {"d1": 1, "d5": 1}, "q2": {"d2": 2, "d5": 1}, "q3": {"d3": 1, "d6": 0}}
TOY_MODEL = {"name": "test/toy-hashing", "revision": "v1", "dim": 32, "max_length": 64}


@pytest.fixture
def toy_tasks_dir(tmp_path: Path) -> Path:
    """A tasks folder with the task ``Toy`` and the model ``toy`` (32 dims)."""
    root = tmp_path / "tasks"
    write_beir_task(root, "Toy", TOY_CORPUS, TOY_QUERIES, TOY_QRELS)
    write_models(root, {"toy": TOY_MODEL})
    return root


@pytest.fixture
def toy_sweep(tmp_path: Path, toy_tasks_dir: Path) -> Path:
    """A sweep YAML over the toy task with the ``hashing`` backend."""
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "name: toy\nmodels: [toy]\ntasks: [Toy]\nbackends: [hashing]\n"
        "dims: [32, 16, 8]\nprecisions: [float32, float16, int8, int8-tanh, binary, binary-rescore]\n"
        f"top_k: 10\noutput_dir: {tmp_path / 'results'}\ncache_dir: {tmp_path / 'cache'}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def scifact():
    """The bundled SciFact task spec and data."""
    from bench.tasks import load_task, task_registry

    spec = task_registry(REPO / "tasks").get("SciFact")
    return spec, load_task(spec)


def cosines(a, b):
    """Row-wise cosine similarity of two matrices."""
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def minilm():
    """all-MiniLM-L6-v2 from the repository's model registry."""
    from bench.models import model_registry

    return model_registry(REPO / "tasks").get("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def reference(minilm, request):
    """sentence-transformers' ``encode`` of the requesting module's ``TEXTS`` (the raw texts)."""
    from sentence_transformers import SentenceTransformer

    from bench.weights import weights_location

    st = SentenceTransformer(weights_location(minilm), device="cpu")
    return st.encode(request.module.TEXTS, convert_to_numpy=True)
