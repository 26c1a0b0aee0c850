"""Reference retrieval scores computed by the real ``mteb`` (2.x) evaluation pipeline.

This module is a helper for parity tests, not a test file itself. ``mteb_retrieval_scores``
runs ``mteb.evaluate`` on an offline ``AbsTaskRetrieval`` whose data is the given in-memory
corpus / queries / qrels, with an encoder that returns *pre-computed* embeddings. Whatever
``bench`` computes from the same embeddings can then be compared with mteb's own numbers
(top-k retrieval, tie handling, pytrec_eval metrics, MRR, query filtering...).

Embeddings are looked up by the exact text mteb hands to the encoder: for documents that
is ``(title + " " + text).strip()`` when the title is non-empty, else ``text.strip()``
(``mteb/_create_dataloaders.py::_corpus_to_dict``); queries are passed through unchanged.
Similarity is cosine (``mteb.similarity_functions.cos_sim``, computed in float32).
Nothing is written to disk: ``cache=None`` and no prediction folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["mteb_retrieval_scores", "mteb_document_text"]


def mteb_document_text(doc: Mapping[str, str]) -> str:
    """The text mteb 2.x encodes for a corpus entry (mirrors ``_corpus_to_dict``)."""
    title = doc.get("title") or ""
    return (title + " " + doc["text"]).strip() if len(title) > 0 else doc["text"].strip()


def _lookup(table: Mapping[str, np.ndarray], texts: list[str], kind: str) -> np.ndarray:
    try:
        return np.stack([table[t] for t in texts])
    except KeyError as e:
        raise KeyError(f"mteb asked for a {kind} text with no pre-computed embedding: {e}") from None


def mteb_retrieval_scores(
    corpus: dict[str, dict],
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    doc_embeddings: dict[str, Any],
    query_embeddings: dict[str, Any],
    task_name: str = "BenchOfflineSciFact",
    ignore_identical_ids: bool = False,
) -> dict[str, float]:
    """Score pre-computed embeddings with mteb's retrieval evaluation.

    Args:
        corpus: doc id -> {"title": ..., "text": ...} (title optional).
        queries: query id -> query text. Like mteb's HF loader, only queries present in
            ``qrels`` are evaluated.
        qrels: query id -> {doc id: relevance}.
        doc_embeddings: doc id -> 1-D embedding.
        query_embeddings: query id -> 1-D embedding.
        task_name: name given to the ad-hoc mteb task.
        ignore_identical_ids: forwarded to ``AbsTaskRetrieval.ignore_identical_ids``.

    Returns:
        mteb's score dict for split "test", subset "default" (ndcg_at_10, map_at_10,
        recall_at_100, precision_at_1, mrr_at_10, hit_rate_at_k, nauc_*, main_score, ...).
    """
    import mteb
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.task_metadata import TaskMetadata
    from mteb.models.model_meta import ModelMeta
    from mteb.similarity_functions import cos_sim, pairwise_cos_sim
    from mteb.types import PromptType

    # text -> embedding tables, keyed exactly as mteb will present the inputs.
    doc_table: dict[str, np.ndarray] = {}
    for did, doc in corpus.items():
        key, emb = mteb_document_text(doc), np.asarray(doc_embeddings[did])
        if key in doc_table and not np.array_equal(doc_table[key], emb):
            raise ValueError(f"two documents share the text of {did!r} but not the embedding")
        doc_table[key] = emb
    query_table = {queries[qid]: np.asarray(query_embeddings[qid]) for qid in queries}

    # Same filtering as RetrievalDatasetLoader.load: keep only queries that have qrels.
    kept_qids = [qid for qid in queries if qid in qrels]
    split_data = RetrievalSplitData(
        corpus=Dataset.from_list(
            [
                {"id": did, "title": doc.get("title") or "", "text": doc["text"]}
                for did, doc in corpus.items()
            ]
        ),
        queries=Dataset.from_list([{"id": qid, "text": queries[qid]} for qid in kept_qids]),
        relevant_docs={qid: {d: int(s) for d, s in rels.items()} for qid, rels in qrels.items()},
        top_ranked=None,
    )

    class _OfflineRetrievalTask(AbsTaskRetrieval):
        metadata = TaskMetadata(
            name=task_name,
            description="Offline in-memory retrieval task used as a parity reference.",
            reference=None,
            dataset={"path": "offline/in-memory", "revision": "none"},
            type="Retrieval",
            category="t2t",
            modalities=["text"],
            eval_splits=["test"],
            eval_langs=["eng-Latn"],
            main_score="ndcg_at_10",
            date=None,
            domains=None,
            task_subtypes=None,
            license=None,
            annotations_creators=None,
            dialect=None,
            sample_creation=None,
            bibtex_citation="",
        )

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            self.dataset = {"default": {"test": split_data}}
            self.data_loaded = True

    _OfflineRetrievalTask.ignore_identical_ids = ignore_identical_ids

    class _PrecomputedEncoder:
        """mteb EncoderProtocol returning stored embeddings, looked up by input text."""

        mteb_model_meta = ModelMeta.create_empty(
            overwrites={
                "name": "bench/precomputed-embeddings",
                "revision": "0",
                "similarity_fn_name": "cosine",
                "modalities": ["text"],
            }
        )

        def __init__(self, model_name: str = "", revision: str | None = None, **kwargs: Any):
            pass

        def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs):
            texts = [t for batch in inputs for t in batch["text"]]
            if prompt_type == PromptType.query:
                return _lookup(query_table, texts, "query")
            return _lookup(doc_table, texts, "document")

        def similarity(self, embeddings1, embeddings2):
            return cos_sim(embeddings1, embeddings2)

        def similarity_pairwise(self, embeddings1, embeddings2):
            return pairwise_cos_sim(embeddings1, embeddings2)

    result = mteb.evaluate(
        _PrecomputedEncoder(),
        _OfflineRetrievalTask(),
        cache=None,
        overwrite_strategy="always",
        co2_tracker=False,
        show_progress_bar=False,
        encode_kwargs={"batch_size": 256, "show_progress_bar": False},
    )
    (task_result,) = result.task_results
    (scores,) = [s for s in task_result.scores["test"] if s["hf_subset"] == "default"]
    return dict(scores)
