"""The constant integer tables of irec_jax.exact.tables (a file-format specification)."""

import decimal
import hashlib
import math
from decimal import Decimal

import numpy as np
import pytest

from irec_jax.exact import decimal_fns
from irec_jax.exact import tables as T

# The shipped tables are part of the format: these digests must never change.
SHA256 = {
    "normal_quantiles": "ee46eda6f743ea9b2949c72134d6385025bcc7573bb0fba98b3bf40224779880",
    "sigmoid": "c7e2633b4e5cc02a08fed2c3cc508c7e181ddf699930ed480ca1a1038a4b3c84",
    "elu": "181847f9d226d9ae4225a0514092af6c96d417090a41ad7eeded0809fc133585",
}


def _le_sha256(arr):
    return hashlib.sha256(arr.astype(arr.dtype.newbyteorder("<")).tobytes()).hexdigest()


def test_constants():
    assert T.NORMAL_BITS == 16
    assert T.SIGMOID_INDEX_BITS == 10
    assert T.SIGMOID_RANGE == 32
    assert T.SIGMOID_BITS == 32
    assert T.ELU_BITS == 10
    assert T.POWER_LAW_EXPONENT == "0.7864636765648174"
    assert T.POWER_LAW_BITS == 30


def test_shipped_shapes_dtypes_readonly_digests():
    tables = T.load()
    assert set(tables) == {"normal_quantiles", "sigmoid", "elu"}
    assert T.load() is tables  # cached
    expected = {
        "normal_quantiles": (np.int32, (65536,)),
        "sigmoid": (np.int64, (65537,)),
        "elu": (np.int32, (8192,)),
    }
    for name, (dtype, shape) in expected.items():
        arr = tables[name]
        assert arr.dtype == dtype and arr.shape == shape, name
        assert not arr.flags.writeable, name
        with pytest.raises(ValueError):
            arr[0] = 1
        assert _le_sha256(arr) == SHA256[name], name
    assert T.normal_quantiles() is tables["normal_quantiles"]
    assert T.sigmoid_table() is tables["sigmoid"]
    assert T.elu_table() is tables["elu"]


def test_normal_quantiles_structure():
    q = T.normal_quantiles().astype(np.int64)
    np.testing.assert_array_equal(q[::-1], -q)
    assert np.all(np.diff(q) >= 0)
    assert q[-1] == q.max() == 283438  # about 4.325 * 2**16
    assert q[32767] == -1 and q[32768] == 1
    # Float64 ndtri agrees to within rounding (|Q - 2**16 ndtri(u)| <= 1/2).
    from scipy.special import ndtri

    i = np.arange(65536)
    assert np.abs(q - ndtri((i + 0.5) / 65536) * 65536).max() <= 0.5 + 1e-6


def test_normal_cdf_matches_float():
    from scipy.special import ndtr

    for x in ["-4.33", "-3", "-1.25", "-0.001", "0", "0.5", "2.75", "4.33"]:
        got = float(T.normal_cdf(x))
        assert math.isclose(got, float(ndtr(float(x))), rel_tol=1e-13), x
    assert T.normal_cdf(0) == Decimal("0.5")


def test_normal_quantiles_bracketing():
    q = T.normal_quantiles()
    rng = np.random.default_rng(20240611)
    idx = set(rng.integers(0, 65536, size=300).tolist()) | set(range(50))
    idx |= set(range(65536 - 50, 65536))
    with decimal.localcontext(decimal.Context(prec=60)):
        for i in sorted(idx):
            u = Decimal(2 * i + 1) / 2**17
            v = int(q[i])
            lo = T.normal_cdf(Decimal(2 * v - 1) / 2**17)
            hi = T.normal_cdf(Decimal(2 * v + 1) / 2**17)
            assert lo <= u < hi, (i, v)
    for i in [0, 1, 12345, 32767, 32768, 65535]:
        assert T.normal_quantile(i) == q[i]
    with pytest.raises(ValueError):
        T.normal_quantile(65536)


def test_sigmoid_regenerates_exactly():
    s = T.sigmoid_table()
    np.testing.assert_array_equal(T.generate_sigmoid(), s)
    assert s[32768] == 2**31 and s[0] == 0 and s[65536] == 2**32
    np.testing.assert_array_equal(s + s[::-1], np.full(65537, 2**32, np.int64))
    assert np.all(np.diff(s) >= 0)
    t = (np.arange(65537) - 32768) / 1024
    assert np.abs(s - 2**32 / (1 + np.exp(-t))).max() <= 0.5 + 1e-4


def test_elu_regenerates_exactly():
    e = T.elu_table()
    np.testing.assert_array_equal(T.generate_elu(), e)
    assert e[0] == 0 and e[8191] == 1024
    assert np.all(np.diff(e) >= 0)
    assert np.abs(e - 1024 * -np.expm1(-np.arange(8192) / 1024)).max() <= 0.5 + 1e-9


def test_independent_of_global_decimal_context():
    with decimal.localcontext(decimal.Context(prec=5, rounding=decimal.ROUND_DOWN)):
        assert T.normal_quantile(3) == T.normal_quantiles()[3]
        assert decimal_fns._power_law_ratio.__wrapped__(7, T.POWER_LAW_EXPONENT) == round(2**30 * 7**-0.7864636765648174)
        assert T.generate_elu()[1000] == T.elu_table()[1000]
        s = T.softplus_scale(0, "0", "1")
        assert len(s.as_tuple().digits) >= 45
    assert abs(s - 1) < Decimal("1e-45")


def test_power_law_ratio():
    assert T.power_law_ratio(1) == 2**30
    vals = [T.power_law_ratio(j) for j in range(1, 201)]
    assert all(a > b for a, b in zip(vals, vals[1:]))
    for j in [2, 3, 10, 255, 1000, 4097, 65536]:
        estimate = 2**30 * j ** -0.7864636765648174
        assert abs(T.power_law_ratio(j) - estimate) <= 1, j
    assert T.power_law_ratio(np.int64(5)) == T.power_law_ratio(5)
    for bad in (0, -1, 65537):
        with pytest.raises(ValueError):
            T.power_law_ratio(bad)


def test_softplus_scale():
    s = T.softplus_scale(0, "0.001", "1")
    assert abs(s - Decimal("1.001")) < Decimal("1e-45")
    # Far below: floor + init * exp(raw) * (e - 1), accurately.
    tiny = T.softplus_scale(-200, "0", "1")
    assert math.isclose(float(tiny), math.exp(-200) * (math.e - 1), rel_tol=1e-13)
    assert math.isclose(float(T.softplus_scale("2.5", "0.11", "0.5")),
                        0.11 + 0.5 * math.log1p(math.exp(2.5) * (math.e - 1)), rel_tol=1e-14)


@pytest.mark.parametrize("floor,init,raw_min,count,step_bits", [
    ("0.001", "1", -4096, 4096, 8),
    ("0.11", "0.5", -2048, 4096, 6),
    ("0", "3", -300, 700, 2),
])
def test_scale_table(floor, init, raw_min, count, step_bits):
    mant, exp, inv = T.scale_table(floor, init, raw_min, count, step_bits)
    for a in (mant, exp, inv):
        assert a.dtype == np.int32 and a.shape == (count,)
    assert np.all((mant >= 2**14) & (mant < 2**15))
    raw = (raw_min + np.arange(count)) / 2**step_bits
    ref = float(floor) + float(init) * np.log1p(np.exp(raw) * (math.e - 1))
    approx = mant * np.exp2(-exp.astype(np.float64))
    assert np.all(np.abs(approx / ref - 1) <= 2.0**-14)
    want_inv = np.minimum(2**16 / ref, 2**31 - 1)
    assert np.all(np.abs(inv - want_inv) <= 0.5 + 1e-6 * want_inv)
    assert np.all(np.diff(approx) >= 0) and np.all(np.diff(inv.astype(np.int64)) <= 0)


def test_scale_table_raw_zero_entry():
    mant, exp, inv = T.scale_table("0.001", "1", -10, 20, 8)
    i = 10  # raw = 0
    assert mant[i] * 2.0 ** -exp[i] == pytest.approx(1.001, rel=2**-14)
    assert (mant[i], exp[i], inv[i]) == (round(1.001 * 2**14), 14, round(2**16 / 1.001))


def test_scale_table_mantissa_carry_and_speed():
    import time

    t0 = time.perf_counter()
    T.scale_table("0.001", "1", -2048, 4096, 8)
    assert time.perf_counter() - t0 < 1.0
    # s = 2**15 - 1/4 rounds up to 2**15 at exp 0: must become mant 2**14, exp -1.
    mant, exp, _ = T.scale_table("32767.75", "0", 0, 1, 0)
    assert (mant[0], exp[0]) == (2**14, -1)


def test_model_tables_of_coupled_mixtures():
    """The tanh (coupling coefficients) and exp (mixture weights) tables a
    coupled model stores: exact roundings of their definitions."""
    import math

    from irec_jax.exact import tables as T
    coef = T.tanh_table(-1280, 2560, 6, 14)
    assert coef[1280] == 0 and coef[0] == -(1 << 14) and coef[-1] == 1 << 14
    assert np.array_equal(coef[1:1280], -coef[1281:][::-1])  # tanh is odd: entries i and 2560 - i
    assert np.all(np.diff(coef) >= 0)
    assert coef[1280 + 64] == round(16384 * math.tanh(1.0))
    w = T.exp_neg_table(1024, 6, 16)
    assert w[0] == 1 << 16 and w[-1] == 0 and np.all(np.diff(w) <= 0)
    assert w[64] == round(65536 * math.exp(-1.0))
    with pytest.raises(ValueError, match="bits"):
        T.exp_neg_table(4, 6, 40)
