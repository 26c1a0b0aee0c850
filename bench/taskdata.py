"""Rules on loaded task data shared by every loader: which queries are evaluated, smoke subsets."""

from __future__ import annotations

from bench.errors import InputError
from bench.types import TaskData, TaskSpec


def judged(spec: TaskSpec, corpus: dict, queries: dict, qrels: dict) -> TaskData:
    """Keep the queries with at least one positive judgement, as MTEB evaluates them."""
    qrels = {q: rel for q, rel in qrels.items() if any(s > 0 for s in rel.values())}
    if not qrels:
        raise InputError(f"task {spec.name}: split {spec.split!r} has no judged queries")
    return TaskData(corpus=corpus, queries={q: queries[q] for q in sorted(qrels)}, qrels=qrels,
                    ignore_identical_ids=spec.ignore_identical_ids)  # fmt: skip


def subset(data: TaskData, limit: int) -> TaskData:
    """A smoke-test subset: the first ``limit`` judged queries (by id), their judged documents,
    and the first ``10 * limit`` other documents of the corpus."""
    if limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    qids = sorted(data.queries)[:limit]
    keep = {d for q in qids for d in data.qrels[q]}
    target = len(keep) + 10 * limit
    for doc_id in data.corpus:
        if len(keep) >= target:
            break
        keep.add(doc_id)
    corpus = {d: t for d, t in data.corpus.items() if d in keep}
    return TaskData(corpus, {q: data.queries[q] for q in qids}, {q: data.qrels[q] for q in qids},
                    data.ignore_identical_ids)  # fmt: skip


