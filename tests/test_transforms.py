import numpy as np
import pytest

from bench import precisions
from bench import transforms as tf
from bench.errors import InputError


def test_truncate_then_normalize_gives_unit_rows_of_the_first_dims():
    x = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    y = tf.normalize(tf.truncate(x, 5))
    assert y.shape == (50, 5)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(y * np.linalg.norm(x[:, :5], axis=1, keepdims=True), x[:, :5], rtol=1e-5)


@pytest.mark.parametrize("dim", [0, 17, -1])
def test_truncate_rejects_dimensions_out_of_range(dim):
    with pytest.raises(InputError, match=str(dim)):
        tf.truncate(np.zeros((2, 16), np.float32), dim)


def test_int8_ranges_come_from_the_corpus_and_apply_unchanged_to_queries():
    corpus = np.array([[0.0, -1.0], [1.0, 1.0], [0.5, 0.0]], np.float32)
    ranges = tf.fit_ranges(corpus)
    np.testing.assert_array_equal(ranges.low, [0.0, -1.0])
    np.testing.assert_array_equal(ranges.high, [1.0, 1.0])
    q = tf.quantize_int8(corpus, ranges)
    assert q.dtype == np.int8
    # floor, as sentence-transformers: the float32 step (1/255) puts the maximum at 254.99998,
    # one level below 127, and the midpoint at level 127 (127.49), code -1
    np.testing.assert_array_equal(q, [[-128, -128], [126, 126], [-1, -1]])
    # queries outside the corpus range clip instead of wrapping around
    outside = tf.quantize_int8(np.array([[2.0, -3.0]], np.float32), ranges)
    np.testing.assert_array_equal(outside, [[127, -128]])


def test_int8_tanh_rounds_instead_of_truncating():
    x = np.array([[0.5, -0.5, 10.0, 0.0, 0.004]], np.float32)
    got = tf.int8_tanh(x)
    expected = np.rint(127 * np.tanh(x)).astype(np.int8)
    np.testing.assert_array_equal(got, expected)
    assert got[0, 0] == 59  # 127 * tanh(0.5) = 58.7: truncation would give 58
    assert got[0, 2] == 127


def test_int8_tanh_rounds_the_float32_steps_of_an_exact_tanh_at_the_half_boundaries():
    """pplx's quantizer runs tanh, * 127 and round in float32. With tanh correctly rounded to
    float32 (Python's double tanh, then float32), each step is pinned down; NumPy's own float32
    tanh is one unit in the last place off for some inputs (1.0147426 gives 98, not 97)."""
    import math

    k = np.arange(-127, 127) + 0.5
    centre = np.arctanh(k / 127).astype(np.float32)
    x = np.concatenate([centre + np.float32(step) * np.spacing(centre) for step in range(-3, 4)])
    x = np.concatenate([x, [1.0147426, -1.0147426, 0.0, -0.0, 40.0, -40.0]]).astype(np.float32)

    def exact(v: np.float32) -> int:
        product = np.float32(127) * np.float32(math.tanh(float(v)))
        return int(np.clip(np.rint(product), -128, 127))

    expected = np.array([[exact(v) for v in x]], np.int8)
    np.testing.assert_array_equal(tf.int8_tanh(x[None]), expected)
    assert tf.int8_tanh(np.array([[1.0147426]], np.float32))[0, 0] == 97  # 127 tanh = 97.4999990


def test_binarize_packs_sign_bits_with_zero_counted_as_positive():
    x = np.array([[1.0, -1.0, 0.0, -0.1, 2.0, -3.0, 0.5, -0.5, 1.0]], np.float32)
    packed = tf.binarize(x)
    assert packed.shape == (1, 2)
    assert packed[0, 0] == 0b10101010 and packed[0, 1] == 0b10000000
    np.testing.assert_array_equal(tf.unpack_signs(packed, 9), np.where(x >= 0, 1.0, -1.0))


@pytest.mark.parametrize("dim,expected", [
    (384, {"float32": 1536, "float16": 768, "bfloat16": 768, "float8-e4m3fn": 384, "float8-e5m2": 384,
           "int8": 384, "uint8": 384, "int4": 192, "uint4": 192, "int8-tanh": 384, "binary": 48}),
    (100, {"float32": 400, "int8": 100, "int4": 50, "binary": 13}),  # ceil(100 / 8) = 13, not 12.5
    (7, {"int4": 4, "uint4": 4, "binary": 1, "binary-asym": 1, "int8-asym": 7, "int8-rescore": 7}),
])  # fmt: skip
def test_bytes_per_vector_is_an_integer_and_rounds_partial_bytes_up(dim, expected):
    for name, size in expected.items():
        got = precisions.get(name).bytes_per_vector(dim)
        assert isinstance(got, int) and got == size, name


def test_nibbles_round_trip_with_an_odd_width():
    levels = np.random.default_rng(0).integers(0, 16, size=(5, 7)).astype(np.uint8)
    packed = tf.pack_nibbles(levels)
    assert packed.shape == (5, 4) and packed[0, 0] == (levels[0, 0] << 4 | levels[0, 1])
    np.testing.assert_array_equal(tf.unpack_nibbles(packed, 7), levels)
