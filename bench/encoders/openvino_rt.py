"""The ``openvino`` backend: OpenVINO on CPU, float32, or int8 weights and activations from nncf's
post-training quantization with a seeded calibration sample.

The model's transformer is converted once from torch (``openvino.convert_model``) and saved as
OpenVINO IR under ``cache_dir/openvino/``. ``openvino-cpu-int8`` quantizes that IR with
``nncf.quantize`` (transformer preset: the activations of every matrix multiply in int8, with
ranges fitted on the calibration sample) and saves it in a folder of its own, keyed by the
quantization settings, nncf's version and the sample. The calibration sample is a seeded sample
of English abstracts (the bundled SciFact corpus: the only text shipped with bench), prompted as
the model's documents are. Tokenization, pooling and normalization are shared with the onnx
backend (``bench.encoders.exported``).

Both dtypes run with OpenVINO's inference precision pinned to f32: its default on a CPU with
AVX512_BF16 or AMX is bf16, which changes the vectors (and, without AMX, runs slower).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import random
import shutil
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from bench.encoders import EncoderOptions
from bench.encoders.batching import sorted_batches
from bench.encoders.exported import (TOKENIZATION, TokenizedGraph, build_atomically, hidden_states_module,
                                     reader_versions, write_meta)
from bench.errors import InputError, Unavailable
from bench.paths import default_tasks_dir
from bench.types import BackendSpec, ModelSpec, Role
from bench.weights import file_digest, weights_identity

log = logging.getLogger(__name__)

CONVERSION = {"converter": "openvino.convert_model", "source": "torch", "compress_to_fp16": False}
# nncf's full post-training int8 (weights per output channel, activations per tensor), with the
# transformer preset's exclusions; 128 documents in batches of 16 fit the activation ranges.
QUANTIZATION = {"method": "nncf.quantize", "model_type": "transformer", "preset": "mixed",
                "fast_bias_correction": True, "batch_size": 16}  # fmt: skip
CALIBRATION = {"corpus": "data/scifact/corpus.jsonl.gz", "texts": 128, "seed": 0, "role": "document"}
# Inference settings that change the vectors (precision) or only the speed: OpenVINO's throughput
# hint runs several streams (two on a 2-core CPU, one core each), and each batch of bench's is
# split into one share per stream, run concurrently. On the 2-core CPU of README's table this ran
# 1.04-1.26x the latency hint (one stream, both cores on one batch).
RUNTIME = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT"}


def _version(package: str) -> str:
    from bench.environment import package_version

    return package_version(package)


def calibration_corpus() -> Path:
    return default_tasks_dir() / CALIBRATION["corpus"]


@functools.lru_cache(maxsize=4)
def _sample(path: Path, size: int, mtime: float, n: int, seed: int) -> tuple[tuple[str, ...], str, str]:
    from bench.calibration import read_texts

    texts = list(read_texts(path).values())
    if len(texts) < n:
        raise InputError(f"{path}: the openvino int8 calibration needs {n} texts, found {len(texts)}")
    sample = tuple(random.Random(seed).sample(texts, n))
    digest = hashlib.sha256(json.dumps(sample).encode()).hexdigest()
    return sample, file_digest(path), digest


def calibration_sample() -> tuple[tuple[str, ...], dict]:
    """The calibration texts (before the prompt) and their identity: the corpus's content digest,
    the sample's size and seed, and the digest of the texts drawn."""
    path = calibration_corpus()
    if not path.is_file():
        raise Unavailable(f"openvino int8: the calibration corpus {path} is missing")
    stat = path.stat()
    texts, corpus_digest, sample_digest = _sample(path, stat.st_size, stat.st_mtime, CALIBRATION["texts"],
                                                  CALIBRATION["seed"])  # fmt: skip
    return texts, {**CALIBRATION, "corpus_sha256": corpus_digest, "sample_sha256": sample_digest}


def export_identity(model: ModelSpec, dtype: str, cache_dir: Path) -> dict:
    """What an export depends on: the weights' content, the module chain, the token limit, the
    converter (openvino, torch); for int8 also nncf, the quantization settings, the calibration
    sample and the prompt its texts get."""
    identity = {"weights": weights_identity(model, cache_dir), "strip_modules": list(model.strip_modules),
                "max_length": model.max_length or "<checkpoint>", "conversion": CONVERSION,
                "openvino": _version("openvino"), "torch": _version("torch"), "tokenization": TOKENIZATION,
                "readers": reader_versions()}  # fmt: skip
    if dtype == "int8":
        identity.update(nncf=_version("nncf"), quantization=QUANTIZATION, calibration=calibration_sample()[1],
                        calibration_prompt=model.prompts.get(CALIBRATION["role"], "<checkpoint>"))  # fmt: skip
    return identity


def export_dir(model: ModelSpec, dtype: str, cache_dir: Path) -> Path:
    key = json.dumps(export_identity(model, dtype, cache_dir), sort_keys=True)
    return Path(cache_dir) / "openvino" / hashlib.sha256(key.encode()).hexdigest()[:24]


def fingerprint(model: ModelSpec, backend: BackendSpec, role: Role, cache_root) -> dict:
    """The export's identity, the inference settings, the dtype, the device class and the prompt."""
    return {**export_identity(model, backend.dtype, cache_root), "runtime": RUNTIME, "dtype": backend.dtype,
            "device": backend.device, "prompt": model.prompts.get(role.value, "<checkpoint>")}  # fmt: skip


def _import(package: str, who: str):
    """Import openvino or nncf, or say in one line that this machine lacks it. Their usage
    telemetry (sent unless a consent file in the home folder says no) is switched off: bench
    sends nothing anywhere; both fall back to their built-in stubs when it cannot be imported."""
    sys.modules.setdefault("openvino_telemetry", None)
    try:
        return __import__(package)
    except ImportError:
        raise Unavailable(f"backend {who}: the {package} package is not installed (pip install {package})") from None


def _convert(model: ModelSpec, target: Path, who: str) -> None:
    from bench.encoders.torch_st import load_sentence_transformer

    ov = _import("openvino", who)
    st = load_sentence_transformer(model)
    n_parameters = int(sum(p.numel() for p in st[0].auto_model.parameters()))
    names = write_meta(st, target, "openvino", n_parameters=n_parameters)["inputs"]  # refuses what it cannot pool
    example = st.tokenizer(["an example input", "another"], padding=True, return_tensors="pt")
    shapes = [(n, ov.PartialShape([-1, -1]), ov.Type.i64) for n in names]
    with warnings.catch_warnings():  # the tracer's notes on Python-level branches it froze
        warnings.simplefilter("ignore")
        converted = ov.convert_model(hidden_states_module(st), example_input={n: example[n] for n in names},
                                     input=shapes)  # fmt: skip
    ov.save_model(converted, str(target / "model.xml"), compress_to_fp16=False)


def calibration_batches(model: ModelSpec, folder: Path) -> list[dict[str, np.ndarray]]:
    """The calibration sample as the graph's inputs: prompted, tokenized and batched as encode does."""
    graph = TokenizedGraph(folder, model, QUANTIZATION["batch_size"], forward=lambda feeds: None)
    encodings = graph.tokenize(calibration_sample()[0], Role(CALIBRATION["role"]))
    batches = sorted_batches([len(e.ids) for e in encodings], QUANTIZATION["batch_size"])
    return [graph.feeds([encodings[i].ids for i in batch]) for batch in batches]


def _quantize(model: ModelSpec, fp32: Path, target: Path, who: str) -> None:
    ov, nncf = _import("openvino", who), _import("nncf", who)
    batches = calibration_batches(model, fp32)
    log.info("%s: quantizing %s to int8 with nncf on %d calibration texts (once; the result is cached)",
             who, model.key, CALIBRATION["texts"])  # fmt: skip
    with quiet_nncf():
        quantized = nncf.quantize(
            ov.Core().read_model(str(fp32 / "model.xml")), nncf.Dataset(batches),
            model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset(QUANTIZATION["preset"]),
            subset_size=len(batches), fast_bias_correction=QUANTIZATION["fast_bias_correction"],
        )  # fmt: skip
    ov.save_model(quantized, str(target / "model.xml"), compress_to_fp16=False)
    shutil.copy(fp32 / "tokenizer.json", target / "tokenizer.json")
    shutil.copy(fp32 / "config.json", target / "config.json")


@contextlib.contextmanager
def quiet_nncf():
    """nncf draws progress bars on stdout and notes through its logger: neither belongs in bench's
    output (bench logs one line before quantizing); errors still propagate."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def ensure_export(model: ModelSpec, cache_dir: Path, dtype: str, who: str) -> Path:
    """The cached IR folder for ``dtype`` (int8 is made from the float32 one), each created
    atomically (temp folder, then rename) on first use and reused while its identity holds."""
    fp32 = build_atomically(export_dir(model, "float32", cache_dir), lambda tmp: _convert(model, tmp, who))
    if dtype == "float32":
        return fp32
    return build_atomically(export_dir(model, dtype, cache_dir), lambda tmp: _quantize(model, fp32, tmp, who))


class OpenVinoEncoder:
    """Runs the converted transformer in OpenVINO on the CPU, one request per stream; pooling and
    normalization in NumPy."""

    parallel_requests = 1
    chunk_size = 512

    def __init__(self, model: ModelSpec, backend: BackendSpec, options: EncoderOptions) -> None:
        ov = _import("openvino", backend.id)
        core = ov.Core()
        if "CPU" not in core.available_devices:
            raise Unavailable(f"backend {backend.id}: OpenVINO finds no CPU device here ({core.available_devices})")
        folder = ensure_export(model, options.cache_dir, backend.dtype, backend.id)
        compiled = core.compile_model(str(folder / "model.xml"), "CPU", RUNTIME)
        self.requests = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.queue = ov.AsyncInferQueue(compiled, self.requests)
        self.dim = compiled.output(0).get_partial_shape()[2].get_length()
        # each stream takes an equal share of a batch (bench's batch size is per batch, not per stream)
        share = -(-options.batch_size // self.requests)
        self.graph = TokenizedGraph(folder, model, share, forward=None)
        self.n_parameters = int(self.graph.config["n_parameters"])

    def count_tokens(self, texts: Sequence[str]) -> int:
        return self.graph.count_tokens(texts)

    def close(self) -> None:
        """Nothing runs between calls: every request has finished when ``encode`` returns."""

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        """Tokenize, submit the length-sorted batches to the streams, pool each result as it
        arrives (in the stream's callback) into its rows; the first error is raised once all
        requests are done."""
        encodings = self.graph.tokenize(texts, role)
        out = np.zeros((len(texts), self.dim), np.float32)
        errors: list[BaseException] = []

        def finished(request, job) -> None:
            rows, mask = job
            try:
                out[rows] = self.graph.pool(request.get_output_tensor(0).data, mask)
            except BaseException as exc:  # raised in OpenVINO's thread: carried to the caller
                errors.append(exc)

        self.queue.set_callback(finished)
        try:
            for rows in sorted_batches([len(e.ids) for e in encodings], self.graph.batch_size):
                if errors:
                    break
                feeds = self.graph.feeds([encodings[i].ids for i in rows])
                self.queue.start_async(feeds, (rows, feeds["attention_mask"]))
        finally:
            self.queue.wait_all()
        if errors:
            raise errors[0]
        return out
