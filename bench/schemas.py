"""One declared schema per input, checked before any work starts.

Every file and flag bench reads is validated here with pydantic (strict types: no string for a
number, no bool for an integer; no NaN or infinity; unknown keys refused with a did-you-mean
hint): sweep YAML and the ``bench run`` flags that override it, task files, model entries,
remote backend options, suites, baselines and run manifests. A failure is one ``InputError``
line naming the file and line (or the flag) and the offending value.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, Mapping, Sequence, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from bench.errors import InputError, did_you_mean
from bench.names import check_name
from bench.yamlio import LineDict

M = TypeVar("M", bound=BaseModel)


class Schema(BaseModel):
    """Strict, closed records: unknown keys and loose types are errors, not guesses."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _name(value: str) -> str:
    try:
        return check_name(value, "name")
    except InputError as exc:
        raise ValueError(str(exc).removeprefix("name ")) from None


def _text(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("holds an invalid Unicode character (a lone surrogate)") from None
    return value


def _unique(items: list) -> list:
    seen, duplicates = set(), []
    for item in items:
        key = repr(item)
        if key in seen:
            duplicates.append(item)
        seen.add(key)
    if duplicates:
        raise ValueError(f"has duplicates: {duplicates}")
    return items


def task_ref(value: str) -> str:
    """A declared task name, or ``mteb:<Task>[/<subset>][@<split>]`` with each part a name."""
    if not value.startswith("mteb:"):
        return _name(value)
    rest, at, split = value[5:].partition("@")
    task, slash, subset = rest.partition("/")
    for part, present in ((task, True), (subset, slash), (split, at)):
        if present:
            _name(part)
    return value


Name = Annotated[str, AfterValidator(_name)]
Text = Annotated[str, AfterValidator(_text)]
TaskRef = Annotated[str, AfterValidator(task_ref)]
Count = Annotated[int, Field(ge=1, le=10**9)]


def NonEmpty(item: Any) -> Any:  # noqa: N802 - reads like a type
    return Annotated[list[item], Field(min_length=1), AfterValidator(_unique)]


# --------------------------------------------------------------------------- the sweep


class SweepSchema(Schema):
    """A sweep YAML file (``tasks/sweeps/*.yaml``) with the ``bench run`` flags applied."""

    name: Text = "sweep"
    models: NonEmpty(Name)
    tasks: NonEmpty(TaskRef)
    backends: Annotated[list[Any], Field(min_length=1)] = ["torch"]  # names or mappings: parse_backend
    dims: NonEmpty(Annotated[int, Field(ge=1, le=1_000_000)])
    precisions: NonEmpty(Text)
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    top_k: Annotated[int, Field(ge=1, le=10_000_000)] = 1000
    rescore_multipliers: NonEmpty(Annotated[int, Field(ge=1, le=10_000)]) | None = None
    rescore_multiplier: Annotated[int, Field(ge=1, le=10_000)] | None = None  # the older single value
    calibration: Text | dict[str, Text | int] = "corpus"  # corpus | sample:N | file:PATH (bench.config)
    lexical: list[Text] = []  # lexical baselines (bench.lexical): bm25, bm25-stemmed
    context: NonEmpty(Text) = ["independent"]  # how chunks are embedded (bench.contexts)
    output_dir: Annotated[Text, Field(min_length=1)] = "results"
    cache_dir: Annotated[Text, Field(min_length=1)] | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    limit: Count | None = None
    measure: bool = True
    measure_documents: Count = 128
    measure_repeats: Annotated[int, Field(ge=1, le=1000)] = 3
    latency_queries: Count = 50
    search_latency_queries: Count = 20
    bootstrap_resamples: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    executor: Literal["local", "dask"] = "local"
    scheduler: Text = ""


# --------------------------------------------------------------------------- remote backends


def _env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", value):
        raise ValueError(f"{value!r} is not an environment variable name")
    return value


def _url(value: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    del port
    return _text(value)


class HttpBackendSchema(Schema):
    """A remote backend mapping (``kind: http``) in a sweep's ``backends`` list."""

    kind: Literal["http"]
    name: Name
    url: Annotated[str, AfterValidator(_url)]
    protocol: Literal["openai", "tei", "perplexity", "perplexity-context"] = "openai"
    model: Annotated[Text, Field(min_length=1, max_length=200)] | None = None
    api_key_env: Annotated[str, AfterValidator(_env_name)] | None = None
    encoding_format: Literal["float", "base64", "base64_int8", "base64_binary", "base64_ubinary"] | None = None
    dimensions: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    normalize: bool = False
    batch_size: Annotated[int, Field(ge=1, le=100_000)] | None = None
    concurrency: Annotated[int, Field(ge=1, le=256)] = 4
    timeout: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    max_retries: Annotated[int, Field(ge=0, le=100)] = 5
    backoff: Annotated[float, Field(ge=0, le=3600)] = 0.5
    max_backoff: Annotated[float, Field(ge=0, le=86_400)] = 30.0
    max_response_bytes: Annotated[int, Field(ge=1024, le=2**34)] = 256 * 2**20
    # What the server's vectors are: float (the default), or already quantized (pplx's int8 codes, or
    # +-1 signs), e.g. a TEI server running pplx-embed-v1 with its quantizer; Perplexity's
    # base64_int8 / base64_binary formats imply int8 / binary.
    output: Literal["float", "int8", "binary"] | None = None
    dtype: Literal["native"] = "native"
    # perplexity-context (POST /v1/contextualizedembeddings): the API's limits, which every request
    # is batched within, and how tokens are estimated before sending (UTF-8 bytes per token: 1 is an
    # upper bound for byte-level tokenizers, so no request exceeds a limit; larger values trade that
    # guarantee for fewer refused documents).
    max_documents: Annotated[int, Field(ge=1, le=100_000)] = 512
    max_chunks: Annotated[int, Field(ge=1, le=10_000_000)] = 16_000
    max_document_tokens: Annotated[int, Field(ge=1, le=100_000_000)] = 32_000
    max_request_tokens: Annotated[int, Field(ge=1, le=100_000_000)] = 120_000
    bytes_per_token: Annotated[float, Field(ge=1, le=16)] = 1.0


HTTP_FORMATS = {"openai": ("float", "base64"), "tei": ("float",), "perplexity": ("base64_int8", "base64_binary"),
                "perplexity-context": ("base64_int8", "base64_binary")}  # fmt: skip
CONTEXT_LIMIT_KEYS = ("max_documents", "max_chunks", "max_document_tokens", "max_request_tokens", "bytes_per_token")


FORMAT_OUTPUT = {"base64_int8": "int8", "base64_binary": "binary"}


def check_http_format(options: HttpBackendSchema) -> None:
    """The format fits the protocol, the output fits the format, and the API limits are set only
    for ``perplexity-context``."""
    limits = [k for k in CONTEXT_LIMIT_KEYS if k in options.model_fields_set]
    if limits and options.protocol != "perplexity-context":
        raise ValueError(f"{limits[0]} is a setting of protocol perplexity-context only")
    if options.encoding_format and options.encoding_format not in HTTP_FORMATS[options.protocol]:
        raise ValueError(f"encoding_format {options.encoding_format!r} does not fit protocol {options.protocol} "
                         f"(use {' or '.join(HTTP_FORMATS[options.protocol])})")  # fmt: skip
    implied = FORMAT_OUTPUT.get(http_format(options))
    if options.output and implied and options.output != implied:
        raise ValueError(f"output {options.output!r} contradicts encoding_format {http_format(options)!r} ({implied})")


def http_format(options: HttpBackendSchema) -> str:
    return options.encoding_format or {"perplexity": "base64_int8", "perplexity-context": "base64_int8"}.get(
        options.protocol, "float")  # fmt: skip


def http_output(options: HttpBackendSchema) -> str:
    """What a server's vectors are: float, int8 codes or +-1 signs."""
    return options.output or FORMAT_OUTPUT.get(http_format(options), "float")


# --------------------------------------------------------------------------- tasks and models


def _language(value: str) -> str:
    if not re.fullmatch(r"[a-z]{2,3}-[A-Z][a-z]{3}", value):
        raise ValueError(f"{value!r} is not a language-script code such as eng-Latn")
    return value


class TaskSchema(Schema):
    """A task file (``tasks/retrieval/*.yaml``)."""

    name: Name
    type: Literal["retrieval", "chunked-retrieval"] = "retrieval"  # chunked: documents are lists of chunks
    source: Text
    path: Text = "."
    split: Name | None = None  # None: the source's own (test for BEIR folders; MTEB's metadata)
    subset: Name | None = None
    main_score: Text | None = None
    ignore_identical_ids: bool | None = None  # unset: False, or MTEB's rule for an mteb task
    languages: list[Annotated[str, AfterValidator(_language)]] = []
    query_filter: Text = "mteb"
    revision: Text | int = ""
    license: Text = ""
    description: Text = ""
    reference: Text = ""
    chunk_words: Annotated[int, Field(ge=1, le=100_000)] | None = None  # squad-chunked: the word budget
    dataset: Annotated[Text, Field(min_length=1, max_length=300)] | None = None  # conteb: the hub dataset id


class RoleTexts(Schema):
    query: Text | None = None
    document: Text | None = None


class ModelSchema(Schema):
    """One entry of ``tasks/models.yaml``."""

    name: Annotated[Text, Field(min_length=1, max_length=300)]
    revision: Annotated[Text, Field(min_length=1, max_length=200)]
    dim: Annotated[int, Field(ge=1, le=1_000_000)]
    max_length: Annotated[int, Field(ge=1, le=10_000_000)] | None = None  # None: the checkpoint's own
    similarity: Literal["cosine"] = "cosine"
    weights_package: Annotated[str, AfterValidator(lambda v: _identifier(v))] = ""
    prompts: RoleTexts = RoleTexts()
    n_parameters: Annotated[int, Field(ge=0)] = 0
    license: Text = ""
    trust_remote_code: bool = False
    role_field: Text = ""
    role_values: RoleTexts = RoleTexts()
    path: Text = ""
    strip_modules: list[Text] = []
    mrl_dims: list[Annotated[int, Field(ge=1)]] = []
    architecture: dict[str, Any] = {}
    contextual: bool = False  # the model embeds a document as its list of chunks (context native)


def _identifier(value: str) -> str:
    if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", value):
        raise ValueError(f"{value!r} is not an importable module name")
    return value


class SuiteSchema(Schema):
    """A reproduction suite (``tasks/suites/*.yaml``)."""

    name: Text | None = None
    model: Name
    reference: Annotated[Text, Field(min_length=1)]
    reference_model: Annotated[Text, Field(min_length=1)]
    precision: Text
    backend: Any = "torch"
    tolerance: Annotated[float, Field(ge=0, le=1)] = 0.005
    tasks: list[Text] = []
    context: Text = "independent"  # how chunks are embedded (bench.contexts), for chunked tasks such as ConTEB's


class ProfileSchema(Schema):
    """The flags of ``bench profile``."""

    models: NonEmpty(Name)
    lengths: NonEmpty(Annotated[int, Field(ge=1, le=1_048_576)])
    task: list[TaskRef] = []
    task_sample: Annotated[int, Field(ge=1, le=100_000)] = 32
    dtypes: NonEmpty(Literal["float32", "bfloat16", "float16"])
    batch_sizes: NonEmpty(Annotated[int, Field(ge=1, le=65_536)])
    device: Literal["cpu", "cuda"] = "cpu"
    budget: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    repeats: Annotated[int, Field(ge=1, le=1000)] = 3


# --------------------------------------------------------------------------- result files


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Finite = Annotated[float, AfterValidator(_finite)]


class BaselineMetric(Schema):
    value: Finite
    ci_low: Finite | None = None
    ci_high: Finite | None = None


class BaselineCell(Schema):
    model: Text
    task: Text
    backend: Text
    dim: Annotated[int, Field(ge=0)]  # 0: a lexical baseline (no dimensions)
    precision: Text
    rescore_multiplier: Annotated[int, Field(ge=0)] = 0  # 0: a cell without a second stage
    context: Text = "independent"  # how chunks were embedded (bench.contexts); older baselines: independent
    main_score_name: Text | None = None  # baselines from before it was stored have none
    metrics: Annotated[dict[str, BaselineMetric], Field(min_length=1)]


class BaselinePerQueryRef(Schema):
    """Where a baseline's per-query main scores are: a Parquet file beside the JSON, by its digest."""

    file: Name  # a plain file name in the baseline's folder
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    metric: Literal["main_score"] = "main_score"
    rows: Annotated[int, Field(ge=1)]


class BaselineSchema(BaseModel):
    """A regression baseline (``bench baseline``); unknown extra keys are kept for newer writers."""

    model_config = ConfigDict(strict=True, frozen=True, allow_inf_nan=False, extra="allow")

    kind: Literal["bench-baseline"]
    schema_version: Annotated[int, Field(ge=1)]
    run_id: Text
    grid: dict[str, Any]
    grid_fingerprint: Text
    cells: Annotated[list[BaselineCell], Field(min_length=1)]
    task_digests: dict[str, Text] | None = None  # baselines from before per-query scores have none
    per_query: BaselinePerQueryRef | None = None


# The per-query file of a baseline: one row per (cell, query), the main score of that query.
BASELINE_PER_QUERY_COLUMNS = {"model": "text", "task": "text", "backend": "text", "dim": "integer",
                              "precision": "text", "rescore_multiplier": "integer", "context": "text",
                              "query_id": "text", "score": "number"}  # fmt: skip


def validated_per_query(frame: Any, source: str) -> Any:
    """A baseline's per-query frame checked against ``BASELINE_PER_QUERY_COLUMNS``: every column
    present with its type, scores finite and within [0, 1], each (cell, query) once."""
    from pandas.api import types

    checks = {"text": lambda c: types.is_string_dtype(c) and c.map(lambda v: isinstance(v, str)).all(),
              "integer": types.is_integer_dtype, "number": types.is_float_dtype}  # fmt: skip
    for column, kind in BASELINE_PER_QUERY_COLUMNS.items():
        if column not in frame.columns:
            raise InputError(f"{source}: missing column {column!r}")
        if not checks[kind](frame[column]):
            raise InputError(f"{source}: column {column!r} must hold {kind} values, got {frame[column].dtype}")
    scores = frame["score"].to_numpy()
    bad = ~((scores >= 0) & (scores <= 1))  # NaN fails both comparisons
    if bad.any():
        raise InputError(f"{source}: score of query {frame['query_id'][bad].iloc[0]!r} is {float(scores[bad][0])!r}, "
                         "not a finite number in [0, 1]")  # fmt: skip
    duplicated = frame.duplicated(list(BASELINE_PER_QUERY_COLUMNS)[:-1])
    if duplicated.any():
        raise InputError(f"{source}: query {frame['query_id'][duplicated].iloc[0]!r} appears twice for one cell")
    return frame


class ManifestSchema(BaseModel):
    """The fields of a run manifest that readers rely on."""

    model_config = ConfigDict(strict=True, frozen=True, allow_inf_nan=False, extra="allow")

    schema_version: Annotated[int, Field(ge=1)]
    run_id: Text
    status: Literal["running", "finished"]
    config: dict[str, Any]


# --------------------------------------------------------------------------- errors


def _field(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _where(raw: Any, loc: Sequence[Any], source: str, labels: Mapping[str, str]) -> str:
    """``file:line`` of the deepest mapping key on the path, or the flag that set a top-level key."""
    if loc and isinstance(loc[0], str) and loc[0] in labels:
        return labels[loc[0]]
    where, node = source, raw
    for part in loc:
        if isinstance(node, LineDict):
            where = node.where(part) if part in node.key_lines else node.where()
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    return where


def _problem(error: dict, choices: Sequence[str]) -> str:
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx") or {}
    key = loc[-1] if loc else ""
    shown = repr(error.get("input"))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    if kind == "extra_forbidden":
        return f"unknown key {key!r}{did_you_mean(str(key), choices)}"
    if kind == "missing":
        return f"missing required key {key!r}"
    field = _field(loc)
    if kind == "value_error":
        return f"{field}: {ctx.get('error', error['msg'])}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": f"at least {ctx.get('ge')}", "greater_than": f"above {ctx.get('gt')}",
                 "less_than_equal": f"at most {ctx.get('le')}", "less_than": f"below {ctx.get('lt')}"}[kind]  # fmt: skip
        return f"{field} must be {bound}, got {shown}"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return f"{field} must not be empty"
    if kind == "finite_number":
        return f"{field} must be a finite number, got {shown}"
    return f"{field}: {error['msg'][0].lower() + error['msg'][1:]}, got {shown}"


def _first_error(exc: ValidationError) -> dict:
    """The most useful error: union branches report one error each; prefer the first real one."""
    errors = exc.errors(include_url=False)
    for error in errors:
        loc = [p for p in error["loc"] if not (isinstance(p, str) and ("[" in p or p in ("str", "int", "float")))]
        error["loc"] = tuple(loc)
    return errors[0]


def validated(schema: type[M], raw: Any, source: str, labels: Mapping[str, str] | None = None) -> M:
    """``raw`` checked against ``schema``; the first problem as one ``InputError`` line."""
    if not isinstance(raw, Mapping):
        raise InputError(f"{source}: expected a mapping, got {type(raw).__name__}")
    try:
        return schema.model_validate(dict(raw))
    except ValidationError as exc:
        error = _first_error(exc)
        where = _where(raw, error["loc"], source, labels or {})
        raise InputError(f"{where}: {_problem(error, list(schema.model_fields))}") from None
