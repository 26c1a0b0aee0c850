"""Benchmark: bench's torch float32 encode against sentence-transformers' own ``encode``.

Same model object, same texts (a seeded sample of SciFact abstracts), same batch size; the two
are timed alternately after a warm-up, and the median of the repeats is compared. bench batches
by token length (texts are tokenized once) and runs under ``torch.inference_mode``.

    python benchmarks/encode_vs_sentence_transformers.py [--docs 512] [--batch-size 64] [--repeats 5]
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.encoders import EncoderOptions, make_encoder, parse_backend
from bench.environment import machine_line
from bench.measure import alternating_medians
from bench.models import model_registry
from bench.tasks import load_task, task_registry
from bench.types import Role


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    corpus = list(load_task(task_registry().get("SciFact")).corpus.values())
    rng = np.random.default_rng(0)
    texts = [corpus[i] for i in rng.choice(len(corpus), args.docs, replace=False)]
    model = model_registry().get("all-MiniLM-L6-v2")
    ours = make_encoder(model, parse_backend("torch"), EncoderOptions(args.batch_size))
    st = ours.model  # the very same SentenceTransformer instance

    def theirs() -> np.ndarray:
        return st.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)

    def bench() -> np.ndarray:
        return ours.encode(texts, Role.DOCUMENT)

    np.testing.assert_allclose(bench(), theirs(), atol=1e-5)  # warm-up, and the same vectors
    med = alternating_medians({"sentence-transformers": theirs, "bench": bench}, args.repeats)
    tokens = ours.count_tokens(texts)
    for name, seconds in med.items():
        print(f"{name:22s} {args.docs / seconds:7.1f} docs/s  {tokens / seconds:8.0f} tokens/s  "
              f"(median of {args.repeats}: {seconds:.2f} s)")  # fmt: skip
    print(f"ratio bench / sentence-transformers throughput: {med['sentence-transformers'] / med['bench']:.3f} "
          f"(target >= 1.0); {args.docs} docs, {tokens} tokens, batch size {args.batch_size}")  # fmt: skip


if __name__ == "__main__":
    main()
