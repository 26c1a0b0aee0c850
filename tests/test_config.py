import pytest

from bench.config import config_from_mapping, load_config, validate
from bench.errors import InputError
from bench.types import CalibrationSpec
from bench.yamlio import load_yaml
from tests.conftest import REPO


def _config(tmp_path, text):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return load_config(path)


BASE = "models: [all-MiniLM-L6-v2]\ntasks: [SciFact]\ndims: [384]\nprecisions: [float32]\n"


def test_the_default_sweep_is_minilm_on_scifact_with_rescoring_asymmetric_cells_and_bm25():
    from bench.models import model_registry
    from bench.planning import grid

    config = load_config(None)
    validate(config, REPO / "tasks")
    assert config.models == ("all-MiniLM-L6-v2",) and config.tasks == ("SciFact",)
    assert config.dims == (384, 256, 128, 64)
    assert {"int8-rescore", "int8-asym", "binary-asym", "binary-rescore"} <= set(config.precisions)
    assert config.rescore_multipliers == (4,) and config.top_k == 1000
    assert config.lexical == ("bm25", "bm25-stemmed") and config.calibration == CalibrationSpec()
    cells = grid(config, model_registry(REPO / "tasks").get("all-MiniLM-L6-v2"), config.backends[0])
    assert len(cells) == 4 * 9  # one cell per (dim, precision, multiplier)
    assert (384, "binary-rescore", 4) in cells and (384, "int8", 0) in cells


def test_the_old_scalar_rescore_multiplier_still_works_and_both_forms_together_do_not(tmp_path):
    assert _config(tmp_path, BASE + "rescore_multiplier: 3\n").rescore_multipliers == (3,)
    assert _config(tmp_path, BASE + "rescore_multipliers: [1, 10]\n").rescore_multipliers == (1, 10)
    with pytest.raises(InputError, match=r"give rescore_multipliers \(a list\) or the older rescore_multiplier"):
        _config(tmp_path, BASE + "rescore_multiplier: 3\nrescore_multipliers: [1]\n")
    with pytest.raises(InputError, match=r"rescore_multipliers\[1\] must be at least 1, got 0"):
        _config(tmp_path, BASE + "rescore_multipliers: [4, 0]\n")


@pytest.mark.parametrize("value,expected", [
    ("corpus", CalibrationSpec()), ("sample:500", CalibrationSpec("sample", size=500)),
    ("{sample: 64}", CalibrationSpec("sample", size=64)),
])  # fmt: skip
def test_calibration_settings(tmp_path, value, expected):
    assert _config(tmp_path, BASE + f"calibration: {value}\n").calibration == expected


@pytest.mark.parametrize("value,pattern", [
    ("sample:1", r"calibration sample must be an integer of at least 2, got 1"),
    ("everything", r"calibration must be corpus, sample:N or file:PATH, got 'everything'"),
])  # fmt: skip
def test_bad_calibration_settings_are_one_line(tmp_path, value, pattern):
    with pytest.raises(InputError, match=pattern):
        _config(tmp_path, BASE + f"calibration: {value}\n")


def test_unknown_precision_suggests_the_nearest(tmp_path):
    with pytest.raises(InputError, match=r"unknown precision 'int8tanh' \(did you mean 'int8-tanh'"):
        _config(tmp_path, BASE.replace("[float32]", "[float32, int8tanh]"))


def test_key_typo_names_file_line_and_suggestion(tmp_path):
    with pytest.raises(InputError, match=r"sweep\.yaml:5: unknown key 'batchsize' \(did you mean 'batch_size'"):
        _config(tmp_path, BASE + "batchsize: 8\n")


def test_unknown_model_suggests_the_nearest(tmp_path):
    config = _config(tmp_path, BASE.replace("all-MiniLM-L6-v2", "all-MiniLM-L6"))
    with pytest.raises(InputError, match=r"unknown model 'all-MiniLM-L6' \(did you mean 'all-MiniLM-L6-v2'"):
        validate(config, REPO / "tasks")


def test_dimension_outside_the_model_is_rejected(tmp_path):
    config = _config(tmp_path, BASE.replace("[384]", "[385]"))
    with pytest.raises(InputError, match="dimension 385 is outside 1..384 for model all-MiniLM-L6-v2"):
        validate(config, REPO / "tasks")


@pytest.mark.parametrize("dim", [0, -4])
def test_dimension_below_one_is_rejected_by_the_schema(tmp_path, dim):
    with pytest.raises(InputError, match=rf"sweep\.yaml:3: dims\[0\] must be at least 1, got {dim}"):
        _config(tmp_path, BASE.replace("[384]", f"[{dim}]"))


@pytest.mark.parametrize("line,pattern", [
    ("batch_size: zero\n", r"sweep\.yaml:\d: batch_size: input should be a valid integer, got 'zero'"),
    ("top_k: 0\n", r"top_k must be at least 1"),
    ("dims: [64, x]\n", r"dims\[1\]: input should be a valid integer, got 'x'"),
])  # fmt: skip
def test_bad_values_are_named(tmp_path, line, pattern):
    text = BASE.replace("dims: [384]\n", "") + (line if line.startswith("dims") else "dims: [384]\n" + line)
    with pytest.raises(InputError, match=pattern):
        _config(tmp_path, text)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models: [a\ntasks: b\n")
    with pytest.raises(InputError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_yaml(path)


def test_mapping_without_source_still_validates():
    from bench.yamlio import require_mapping

    config = config_from_mapping(require_mapping({"models": "m", "tasks": "t", "dims": 8,
                                                  "precisions": "binary"}, "<dict>"))  # fmt: skip
    assert config.models == ("m",) and config.dims == (8,) and config.precisions == ("binary",)


def test_a_byte_order_mark_in_a_yaml_file_is_accepted_with_a_warning(toy_sweep, caplog):
    toy_sweep.write_bytes(b"\xef\xbb\xbf" + toy_sweep.read_bytes())
    with caplog.at_level("WARNING"):
        config = load_config(toy_sweep)
    assert config.name == "toy"
    assert f"{toy_sweep}: starts with a UTF-8 byte-order mark" in caplog.text
