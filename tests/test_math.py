"""The vectorisable scalar helpers of fastloss._core.numerics against NumPy.

Where the expected numbers come from: ``np.log``, ``np.log1p`` and ``np.exp`` evaluated
in float64 (for float32 inputs) or in x87 extended precision, ``np.longdouble`` (for
float64 inputs), on the same points; the float32 log1p polynomial's coefficients from
NumPy's Chebyshev interpolation, computed here again.
"""
import numpy as np
import pytest
from numpy.polynomial import Chebyshev, Polynomial

from fastloss._core.jit import jit
from fastloss._core.numerics import LOG1P_UNIT_F32, log1p_exp, log1p_unit, log_fast, sigmoid

DTYPES = [np.float32, np.float64]


def _reference_dtype(dtype):
    """A float type wider than ``dtype`` for the expected values."""
    return np.float64 if dtype == np.float32 else np.longdouble


@jit()
def _apply_log_fast(x, out):
    for i in range(x.shape[0]):
        out[i] = log_fast(x[i])


@jit()
def _apply_log1p_unit(x, out):
    for i in range(x.shape[0]):
        out[i] = log1p_unit(x[i])


@jit()
def _apply_softplus_sigmoid(x, softplus, sig):
    for i in range(x.shape[0]):
        softplus[i] = log1p_exp(x[i])
        sig[i] = sigmoid(x[i])


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_fast_against_numpy(rng, dtype):
    """log_fast (the log of the kernels' 3-way log-sum-exp) against np.log in float64:
    within 2 ulp of the float's epsilon times max(1, |log x|), special values exact."""
    x = np.concatenate([np.linspace(1, 3, 10001), np.exp(rng.uniform(-80, 80, 10000)),
                        [np.finfo(dtype).tiny, np.finfo(dtype).max]]).astype(dtype)
    out = np.empty_like(x)
    _apply_log_fast(x, out)
    expected = np.log(x.astype(np.float64))
    error = np.abs(out - expected) / np.maximum(np.abs(expected), 1)
    assert error.max() <= 2 * np.finfo(dtype).eps
    special = np.array([0.0, -1.0, np.inf, np.nan], dtype)
    _apply_log_fast(special, out[:4])
    np.testing.assert_array_equal(out[:4], [-np.inf, np.nan, np.inf, np.nan])


def test_log1p_unit_f32_coefficients():
    """LOG1P_UNIT_F32 is the Chebyshev interpolant of log1p(e) / e at the 10 Chebyshev
    nodes of [0, 1] in monomial form, to within one float32 rounding."""

    def log1p_over_e(e):
        safe = np.where(e > 0, e, 1.0)
        return np.where(e > 0, np.log1p(safe) / safe, 1.0)

    monomial = Chebyshev.interpolate(log1p_over_e, 9, domain=[0, 1]).convert(kind=Polynomial, domain=[0, 1],
                                                                               window=[0, 1])
    np.testing.assert_allclose(np.float32(LOG1P_UNIT_F32), monomial.coef.astype(np.float32),
                               rtol=np.finfo(np.float32).eps, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_log1p_unit_against_numpy(rng, dtype):
    """log1p_unit on [0, 1] (every e = exp(-|x|) of a softplus): relative error within
    2 float epsilons of log1p in a wider float, 0 and NaN exact."""
    e = np.concatenate([np.linspace(0, 1, 100001), rng.random(100000), np.exp(rng.uniform(-100, 0, 10000)),
                        [np.finfo(dtype).tiny, np.finfo(dtype).smallest_subnormal, 1.0]]).astype(dtype)
    out = np.empty_like(e)
    _apply_log1p_unit(e, out)
    wide = _reference_dtype(dtype)
    expected = np.log1p(e.astype(wide))
    error = np.abs(out.astype(wide) - expected) / np.where(expected > 0, expected, 1)
    assert error.max() <= 2 * np.finfo(dtype).eps
    special = np.array([0.0, np.nan], dtype)
    _apply_log1p_unit(special, out[:2])
    np.testing.assert_array_equal(out[:2], [0.0, np.nan])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_and_sigmoid_against_numpy(rng, dtype):
    """log1p_exp (softplus) and sigmoid over the float's range: relative error within 2
    epsilons of the wider float's logaddexp(0, x) and 1 / (1 + exp(-x)); infinities and NaN
    as torch's softplus and sigmoid give them."""
    x = np.concatenate([rng.uniform(-30, 30, 100000), rng.standard_normal(10000),
                        [0.0, -0.0, 80.0, -80.0, 700.0, -700.0]]).astype(dtype)
    if dtype == np.float32:
        x = x[np.abs(x) < 88]
    softplus, sig = np.empty_like(x), np.empty_like(x)
    _apply_softplus_sigmoid(x, softplus, sig)
    wide = x.astype(_reference_dtype(dtype))
    expected_softplus = np.logaddexp(0, wide)
    expected_sigmoid = 1 / (1 + np.exp(-wide))
    eps = np.finfo(dtype).eps
    tiny = np.finfo(dtype).tiny
    assert (np.abs(softplus - expected_softplus) / np.maximum(expected_softplus, tiny)).max() <= 2 * eps
    assert (np.abs(sig - expected_sigmoid) / np.maximum(expected_sigmoid, tiny)).max() <= 2 * eps
    special = np.array([np.inf, -np.inf, np.nan], dtype)
    _apply_softplus_sigmoid(special, softplus[:3], sig[:3])
    np.testing.assert_array_equal(softplus[:3], [np.inf, 0.0, np.nan])
    np.testing.assert_array_equal(sig[:3], [1.0, 0.0, np.nan])
