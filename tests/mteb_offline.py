"""Offline MTEB retrieval tasks for oracle tests: mteb sees the RAW task, bench loads the same one.

``offline_task(...)`` builds an ``AbsTaskRetrieval`` subclass over small in-memory data: any
number of subsets and splits, judgements exactly as given (queries judged only with 0, empty
judgement lists, judgements of ids that are no query, judged documents missing from the corpus),
optional instruction columns and ``top_ranked`` candidates, any main score. ``register`` puts it
into mteb's task registry (for one test, through ``monkeypatch``), so that bench's ``mteb:<Name>``
loads it through mteb's own ``get_task`` and ``load_data`` exactly as it would a hub task;
``mteb_evaluate`` runs ``mteb.evaluate`` on it, unfiltered.

Both sides embed with ``bench.testing.KeywordEncoder`` (keyword counts) from the text each side
builds on its own, so a difference in how a document or query text is assembled changes the
vectors. Tests pick keyword counts whose cosine scores are exact in float32 (one keyword per
query; documents with Pythagorean counts such as (3, 4)), so ties are bit-identical in torch and
in bench's search and the tie rules, not rounding, decide the order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench import runner
from bench.config import SweepConfig
from bench.encoders import parse_backend
from bench.results import read_run
from bench.testing import KeywordEncoder, write_models
from bench.types import Role


@dataclass(frozen=True)
class SplitData:
    """One (subset, split) of an offline task, raw: nothing filtered."""

    corpus: Mapping[str, tuple[str, str]]  # id -> (title, text)
    queries: Mapping[str, str]
    qrels: Mapping[str, Mapping[str, int]]
    instructions: Mapping[str, str | None] | None = None  # None: no instruction column at all
    top_ranked: Mapping[str, Sequence[str]] | None = None


@dataclass(frozen=True)
class OfflineSpec:
    name: str
    data: Mapping[str, Mapping[str, SplitData]]  # subset -> split -> data
    main_score: str = "ndcg_at_10"
    eval_langs: Any = field(default_factory=lambda: ["eng-Latn"])  # a list: one subset "default"
    task_type: str = "Retrieval"
    ignore_identical_ids: bool = False
    k_values: tuple[int, ...] | None = None
    revision: str = "rev-offline-1"


def offline_task(spec: OfflineSpec) -> type:
    """An ``AbsTaskRetrieval`` subclass whose ``load_data`` builds ``spec.data`` unfiltered."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata

    splits = sorted({split for by_split in spec.data.values() for split in by_split})

    def split_data(d: SplitData):
        queries = [{"id": q, "text": t} for q, t in d.queries.items()]
        if d.instructions is not None:
            queries = [{**row, "instruction": d.instructions[row["id"]]} for row in queries]
        return RetrievalSplitData(
            corpus=Dataset.from_list([{"id": i, "title": t, "text": x} for i, (t, x) in d.corpus.items()]),
            queries=Dataset.from_list(queries),
            relevant_docs={q: dict(r) for q, r in d.qrels.items()},
            top_ranked={q: list(c) for q, c in d.top_ranked.items()} if d.top_ranked is not None else None,
        )

    class OfflineTask(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name=spec.name, description="offline test task", reference=None,
            dataset={"path": f"offline/{spec.name}", "revision": spec.revision},
            type=spec.task_type, category="t2t", modalities=["text"], eval_splits=splits,
            eval_langs=spec.eval_langs, main_score=spec.main_score, date=None, domains=None,
            task_subtypes=None, license=None, annotations_creators=None, dialect=None,
            sample_creation=None, bibtex_citation="",
        )  # fmt: skip
        ignore_identical_ids = spec.ignore_identical_ids
        if spec.k_values is not None:
            k_values = spec.k_values

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            self.dataset = {s: {sp: split_data(d) for sp, d in by.items()} for s, by in spec.data.items()}
            self.data_loaded = True

    OfflineTask.__name__ = spec.name
    return OfflineTask


def register(monkeypatch, task_class: type) -> None:
    """Make ``mteb.get_task(<name>)`` (and so bench's ``mteb:<name>``) return this task."""
    import importlib

    registry = importlib.import_module("mteb.get_tasks")._TASKS_REGISTRY  # the module, not mteb.get_tasks()
    monkeypatch.setitem(registry, task_class.metadata.name, task_class)


class KeywordMtebEncoder:
    """mteb's EncoderProtocol over ``KeywordEncoder``: embeds the text mteb hands over."""

    def __init__(self, keywords: Sequence[str]) -> None:
        from mteb.models.model_meta import ModelMeta

        self.inner = KeywordEncoder(keywords)
        meta = {"name": "test/keywords", "revision": "0", "similarity_fn_name": "cosine", "modalities": ["text"]}
        self.mteb_model_meta = ModelMeta.create_empty(overwrites=meta)
        self.seen: dict[str, list[str]] = {"query": [], "document": []}

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs) -> np.ndarray:
        from mteb.types import PromptType

        texts = [t for batch in inputs for t in batch["text"]]
        role = Role.QUERY if prompt_type == PromptType.query else Role.DOCUMENT
        self.seen["query" if role is Role.QUERY else "document"].extend(texts)
        return self.inner.encode(texts, role)

    def similarity(self, a, b):
        from mteb.similarity_functions import cos_sim

        return cos_sim(a, b)

    def similarity_pairwise(self, a, b):
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(a, b)


def mteb_evaluate(task_class: type, keywords: Sequence[str]):
    """``mteb.evaluate`` on a fresh instance of the raw task; its ``TaskResult``."""
    import mteb

    result = mteb.evaluate(
        KeywordMtebEncoder(keywords), task_class(), cache=None, overwrite_strategy="always", co2_tracker=False,
        show_progress_bar=False, encode_kwargs={"batch_size": 8, "show_progress_bar": False},
    )  # fmt: skip
    (task_result,) = result.task_results
    return task_result


def mteb_entry(task_result, split: str, subset: str) -> dict:
    (entry,) = [e for e in task_result.scores[split] if e["hf_subset"] == subset]
    return entry


# --------------------------------------------------------------------------- shared test data

KEYWORDS = ["alpha", "beta", "gamma", "delta", "omega"]
# Keyword counts of document texts: each normalises exactly in float32 (norms 1, 5, 13), and a
# query holds one keyword, so every cosine score is one exactly rounded component.
DIRECTIONS = [{"alpha": 3, "beta": 4}, {"alpha": 4, "beta": 3}, {"alpha": 1}, {"beta": 1},
              {"gamma": 5, "delta": 12}, {"gamma": 12, "delta": 5}, {"gamma": 1}, {"omega": 1}]  # fmt: skip
DOC_IDS = [f"d{i}" for i in range(12)] + ["10", "9", "a", "B", "b", "Z"]  # string order != number order


def _document(rng: np.random.Generator, i: int) -> tuple[str, str]:
    """(title, text) with one of DIRECTIONS' keyword counts, split between title and text."""
    words = [w for w, n in DIRECTIONS[rng.integers(len(DIRECTIONS))].items() for _ in range(n)]
    cut = 1 if i % 3 == 0 else 0  # every third document carries a keyword in its title
    return " ".join(words[:cut]), f"  doc {i} " + " ".join(words[cut:]) + " "


def keyword_split(seed: int, instructions: bool) -> SplitData:
    """A raw split with every kind of query MTEB treats specially (see the comments)."""
    rng = np.random.default_rng(seed)
    corpus = {d: _document(rng, i) for i, d in enumerate(DOC_IDS)}
    pick = lambda: str(rng.choice(DOC_IDS))
    keys = [KEYWORDS[int(k)] for k in rng.integers(0, len(KEYWORDS), size=7)]
    if instructions:  # the keyword is in the instruction: without it the query vector is zero
        queries = {f"q{j}": f"find items {j}" for j in range(7)}
        instr = {f"q{j}": f"Prefer {keys[j]}." for j in range(7)}
        instr["q2"] = ""  # an empty instruction: a trailing space, nothing else
    else:
        queries, instr = {f"q{j}": f"look for {keys[j]}" for j in range(7)}, None
    qrels = {
        "q0": {pick(): 2, pick(): 1},
        "q1": {pick(): 1},
        "q2": {pick(): 0, pick(): 0},  # judged only with 0: kept, scores 0
        "q3": {pick(): 1, "ghost": 1},  # a judged document not in the corpus still counts
        "q4": {pick(): 1, pick(): 0},
        "q6": {},  # an empty judgement list: dropped
        "qX": {pick(): 1},  # not a query: ignored
    }  # q5: no judgements at all: dropped
    return SplitData(corpus, queries, qrels, instr)


SUBSETS = {"en": ["eng-Latn"], "de": ["deu-Latn"]}
MULTI = OfflineSpec(
    name="OfflineMultiSubset", main_score="ndcg_at_1", eval_langs=SUBSETS,
    data={s: {sp: keyword_split(10 * i + j, instructions=(s == "en")) for j, sp in enumerate(("dev", "test"))}
          for i, s in enumerate(SUBSETS)},
)  # fmt: skip


def _tasks_dir(tmp_path, yaml_tasks: dict[str, str] | None = None):
    """A tasks folder with the keyword model ``kw`` and the given task YAML files."""
    root = tmp_path / "tasks"
    write_models(root, {"kw": {"name": "test/keywords", "revision": "0", "dim": len(KEYWORDS), "max_length": 64}})
    (root / "retrieval").mkdir(exist_ok=True)
    for name, text in (yaml_tasks or {}).items():
        (root / "retrieval" / f"{name}.yaml").write_text(text, encoding="utf-8")
    return root


def bench_rows(tmp_path, tasks: tuple[str, ...], top_k: int = 1000, yaml_tasks=None, run_id="r",
               precisions: tuple[str, ...] = ("float32",)):  # fmt: skip
    """Run bench on ``tasks`` with KeywordEncoder vectors at full width; (run folder, rows)."""
    config = SweepConfig(models=("kw",), tasks=tasks, backends=(parse_backend("hashing"),), dims=(len(KEYWORDS),),
                         precisions=precisions, top_k=top_k, output_dir=tmp_path / "results",
                         cache_dir=tmp_path / "cache", measure=False, bootstrap_resamples=50)  # fmt: skip
    run_dir = runner.run(config, _tasks_dir(tmp_path, yaml_tasks), run_id=run_id,
                         encoder_factory=lambda *_: KeywordEncoder(KEYWORDS))  # fmt: skip
    return run_dir, read_run(run_dir)[1]
