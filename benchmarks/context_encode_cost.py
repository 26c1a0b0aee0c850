"""Benchmark: what late chunking costs against embedding each chunk alone, on the bundled COVID-QA.

The same loaded MiniLM encoder embeds the same seeded sample of whole COVID-QA documents both
ways, timed alternately (so drift in a shared machine's load falls on both alike) after a
warm-up; the medians of the repeats are compared. ``independent`` runs sentence-transformers'
encode over the chunks (sorted by length, batch size 64); ``late`` runs each document's windows
through the transformer (the same batch size) and pools per chunk.

    python benchmarks/context_encode_cost.py [--docs 20] [--repeats 3]
"""

from __future__ import annotations

import argparse

from bench.costs import document_sample
from bench.encoders import EncoderOptions, make_encoder, parse_backend
from bench.environment import machine_line
from bench.measure import alternating_medians
from bench.models import model_registry
from bench.tasks import load_task, task_registry
from bench.types import Role


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    data = load_task(task_registry().get("COVID-QA"))
    documents = document_sample(data, 10**9, 0)[: args.docs]
    chunks = [c for d in documents for c in d]
    encoder = make_encoder(model_registry().get("all-MiniLM-L6-v2"), parse_backend("torch"),
                           EncoderOptions(args.batch_size))  # fmt: skip
    modes = {"independent": lambda: encoder.encode(chunks, Role.DOCUMENT),
             "late": lambda: encoder.encode_documents(documents, "late")}  # fmt: skip
    for fn in modes.values():  # warm-up
        fn()
    med = alternating_medians(modes, args.repeats)
    tokens = encoder.count_tokens(chunks)
    for name, seconds in med.items():
        print(f"{name:12s} {len(chunks) / seconds:7.1f} chunks/s  {tokens / seconds:8.0f} tokens/s  "
              f"(median of {args.repeats}: {seconds:.2f} s)")  # fmt: skip
    print(f"late / independent time: {med['late'] / med['independent']:.3f}; {len(documents)} documents, "
          f"{len(chunks)} chunks, {tokens} tokens (each chunk alone, truncated at the model's limit), "
          f"batch size {args.batch_size}")  # fmt: skip


if __name__ == "__main__":
    main()
