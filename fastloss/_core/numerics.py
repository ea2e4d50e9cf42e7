"""Scalar and row helpers shared by the loss kernels.

Numba compiles ``np.exp`` to a scalar call into libm: without Intel SVML (absent on
these machines, and llvmlite is not SVML-patched) a loop of ``np.exp`` never
vectorises. :func:`exp_fast` is an exp that LLVM can vectorise: Cody-Waite range
reduction ``x = n ln2 + r``, ``|r| <= ln2 / 2``, a polynomial for ``exp(r)``, and
``2**n`` built by writing ``n + bias`` into the exponent bits of a float.

* float32: the Cephes ``expf`` polynomial (degree 6 in r), maximum relative error
  8.1e-8 (measured on 2e6 points over [-88, 88] against ``np.exp`` in float64).
* float64: the Taylor series to degree 13; on ``|r| <= 0.347`` its truncation error
  is below 4e-18, so rounding dominates (max relative error about 3e-16).
* ``x <= -127 ln2`` (float32) or ``-1023 ln2`` (float64), ``-inf`` included, give
  exactly 0 (the exponent field is 0 and the fraction field is 0); NaN gives NaN;
  ``x`` above the float's range gives inf.

``n`` is read from the bits of ``x * log2(e) + 1.5 * 2**23`` (resp. ``2**52``) instead
of converting a float to an integer: a float-to-int conversion of NaN is undefined
behaviour for LLVM, integer arithmetic on bits is not.
"""
import numpy as np

from .jit import REDUCE, STRICT, jit, numba, overload_jit_options


def _exp_f32(x):
    # Below -127 ln2 the biased exponent n + 127 would be <= 0: clamp so that it is
    # exactly 0 and the result is exactly 0.0. `not (x < lo)` lets NaN through.
    x = x if not (x < np.float32(-88.02969193111305)) else np.float32(-88.02969193111305)
    x = x if not (x > np.float32(88.8)) else np.float32(88.8)  # 2**128 bits: inf
    shifted = x * np.float32(1.4426950408889634) + np.float32(12582912.0)  # 1.5 * 2**23
    n = _float_to_bits(shifted) - np.int32(0x4B400000)
    fn = shifted - np.float32(12582912.0)
    # Cody-Waite: ln2 = 0.693359375 - 2.12194440e-4, the first part exact in 9 bits.
    r = x - fn * np.float32(0.693359375)
    r = r - fn * np.float32(-2.12194440e-4)
    # Cephes expf.c coefficients.
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    y = p * r * r + r + np.float32(1.0)
    return y * _bits_to_float(np.int32((n + 127) << 23))


def _exp_f64(x):
    x = x if not (x < -709.0895657128241) else -709.0895657128241  # -1023 ln2
    x = x if not (x > 709.8) else 709.8
    shifted = x * 1.4426950408889634 + 6755399441055744.0  # 1.5 * 2**52
    n = _float_to_bits(shifted) - np.int64(0x4338000000000000)
    fn = shifted - 6755399441055744.0
    # Cephes exp.c Cody-Waite split of ln2.
    r = x - fn * 6.93145751953125e-1
    r = r - fn * 1.42860682030941723212e-6
    # Taylor coefficients 1/k!, k = 13 .. 2.
    p = 1.6059043836821613e-10
    p = p * r + 2.08767569878681e-09
    p = p * r + 2.505210838544172e-08
    p = p * r + 2.755731922398589e-07
    p = p * r + 2.7557319223985893e-06
    p = p * r + 2.48015873015873e-05
    p = p * r + 1.984126984126984e-04
    p = p * r + 1.388888888888889e-03
    p = p * r + 8.333333333333333e-03
    p = p * r + 4.1666666666666664e-02
    p = p * r + 1.6666666666666666e-01
    p = p * r + 0.5
    y = p * (r * r) + r + 1.0
    return y * _bits_to_float(np.int64((n + 1023) << 52))


def typed(value, like):
    """``value`` converted to the float type of ``like``.

    Numba types a Python number as int64 or float64, and int64 or float64 mixed with
    float32 promotes to float64; kernels use this to keep float32 code in float32.
    """
    return value


def exp_fast(x):
    """Vectorisable exp for float32 and float64 (see the module docstring)."""
    return np.exp(x)


def c_layout(array):
    """Whether ``array`` is C-contiguous: in a kernel, whether its Numba type is (a constant
    of the compiled code, so that two arrays of one type share every loop's code)."""
    return array.flags.c_contiguous


def minnum(a, b):
    """The smaller of a and b, the other one if either is NaN (LLVM's ``minnum``): unlike
    a compare-and-select, a reduction of it vectorises without fast-math flags."""
    return b if np.isnan(a) else a if np.isnan(b) else min(a, b)


def maxnum(a, b):
    """The larger of a and b, the other one if either is NaN (LLVM's ``maxnum``), as :func:`minnum`."""
    return b if np.isnan(a) else a if np.isnan(b) else max(a, b)


# torch.nn.functional.normalize's eps: x / max(||x||, eps) (CosFace's normalisation, and the cosine
# distance of the triplet losses as pytorch-metric-learning's CosineSimilarity normalises).
NORMALIZE_EPS = 1e-12


@jit(fastmath=STRICT)
def row_max(row):
    """Maximum of a non-empty 1-D array, vectorised.

    NaN entries are skipped here; a NaN still makes the row's log-sum-exp NaN, since
    ``exp(NaN - max)`` is NaN.
    """
    m = row[0]
    for i in range(1, row.shape[0]):
        m = _maxnum(m, row[i])
    return m


@jit(fastmath=STRICT)
def row_max_at(x, n, k):
    """:func:`row_max` of ``x[n, k]`` (x of rank 3), read by index: a view would cost a
    reference count (two atomic operations) a row."""
    m = x[n, k, 0]
    for i in range(1, x.shape[2]):
        m = _maxnum(m, x[n, k, i])
    return m


@jit(fastmath=REDUCE)
def sum_exp_shifted(row, shift):
    """sum_c exp(row[c] - shift), vectorised."""
    s = typed(0, shift)
    for c in range(row.shape[0]):
        s += exp_fast(row[c] - shift)
    return s


@jit(fastmath=REDUCE)
def weighted_nll_sum(row, weight, top, log_total):
    """sum_c weight[c] * (-log p_c), with -log p_c = log_total - (row[c] - top) (torch's
    log_softmax, negated): an infinite weight gives an infinite sum, never inf * 0."""
    s = typed(0, top)
    for c in range(row.shape[0]):
        s += weight[c] * (log_total - (row[c] - top))
    return s


@jit(fastmath=REDUCE)
def weighted_target_sums(row, target, weight, keep, spread, top, log_total):
    """For smoothed soft targets q = keep * target + spread: (sum_c w_c q_c, sum_c w_c q_c (-log p_c)),
    -log p_c as in :func:`weighted_nll_sum`."""
    total = typed(0, top)
    loss = typed(0, top)
    for c in range(row.shape[0]):
        wq = weight[c] * (keep * target[c] + spread)
        total += wq
        loss += wq * (log_total - (row[c] - top))
    return total, loss


@jit(fastmath=REDUCE)
def sum_float64(values):
    """Sum of a 1-D array, accumulated in float64."""
    s = 0.0
    for i in range(values.shape[0]):
        s += values[i]
    return s


def _log_f32(x):
    # Subnormals: scale into the normal range first (2**23), undone in the exponent.
    tiny = x < np.float32(1.1754943508222875e-38)
    y = x * np.float32(8388608.0) if tiny else x
    bits = _float_to_bits(y)
    k = ((bits >> np.int32(23)) & np.int32(0xFF)) - np.int32(127) - (np.int32(23) if tiny else np.int32(0))
    m = _bits_to_float(np.int32((bits & np.int32(0x7FFFFF)) | np.int32(0x3F800000)))  # [1, 2)
    big = m > np.float32(1.4142135623730951)
    m = m * np.float32(0.5) if big else m
    k = k + np.int32(1) if big else k
    f = m - np.float32(1.0)
    s = f / (np.float32(2.0) + f)  # log m = 2 atanh(s), |s| <= 0.1716
    z = s * s
    p = np.float32(1.0 / 11.0)
    p = p * z + np.float32(1.0 / 9.0)
    p = p * z + np.float32(1.0 / 7.0)
    p = p * z + np.float32(1.0 / 5.0)
    p = p * z + np.float32(1.0 / 3.0)
    fk = np.float32(k)
    r = fk * np.float32(0.693359375) + (fk * np.float32(-2.12194440e-4) + (f - s * (f - np.float32(2.0) * z * p)))
    # Specials: log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN passes.
    r = r if x != np.float32(np.inf) else x
    r = r if x > np.float32(0.0) else (np.float32(-np.inf) if x == np.float32(0.0) else np.float32(np.nan))
    return r


def _log1p_reduced_f64(f):
    """log(1 + f) for f in [sqrt(1/2) - 1, sqrt(2) - 1]: 2 atanh(s), s = f / (2 + f)."""
    s = f / (2.0 + f)
    z = s * s
    # 2 atanh(s) = 2 s (1 + z/3 + z^2/5 + ...), z <= 0.0295: terms to z^11 (1/23) leave < 1e-18.
    p = 1.0 / 23.0
    p = p * z + 1.0 / 21.0
    p = p * z + 1.0 / 19.0
    p = p * z + 1.0 / 17.0
    p = p * z + 1.0 / 15.0
    p = p * z + 1.0 / 13.0
    p = p * z + 1.0 / 11.0
    p = p * z + 1.0 / 9.0
    p = p * z + 1.0 / 7.0
    p = p * z + 1.0 / 5.0
    p = p * z + 1.0 / 3.0
    # f - s (f - 2 z p) = 2 s (1 + z p) rearranged so the leading term is exact (f = 2s + s f).
    return f - s * (f - 2.0 * z * p)


def _log_f64(x):
    tiny = x < 2.2250738585072014e-308
    y = x * 4503599627370496.0 if tiny else x  # 2**52
    bits = _float_to_bits(y)
    k = ((bits >> np.int64(52)) & np.int64(0x7FF)) - np.int64(1023) - (np.int64(52) if tiny else np.int64(0))
    m = _bits_to_float((bits & np.int64(0xFFFFFFFFFFFFF)) | np.int64(0x3FF0000000000000))
    big = m > 1.4142135623730951
    m = m * 0.5 if big else m
    k = k + np.int64(1) if big else k
    fk = np.float64(k)
    r = fk * 6.93147180369123816490e-01 + (fk * 1.90821492927058770002e-10 + _log1p_reduced_f64(m - 1.0))
    r = r if x != np.inf else x
    r = r if x > 0.0 else (-np.inf if x == 0.0 else np.nan)
    return r


def log_fast(x):
    """Vectorisable natural log for float32 and float64 (a few ulp; specials as np.log)."""
    return np.log(x)


# log(1 + e) on [0, 1], float32: e P(e), P the Chebyshev interpolant of log1p(e) / e at
# the 10 Chebyshev nodes of [0, 1], in monomial form, rounded to float32 (made by
# tests/test_math.py's _log1p_unit_f32_coefficients, which checks these against it).
# Maximum error 1.9 ulp, measured on 2e6 points against np.log1p in float64.
LOG1P_UNIT_F32 = (1.0, -0.49999892711639404, 0.33329710364341736, -0.24951615929603577, 0.1966327428817749,
                  -0.1526966691017151, 0.10543623566627502, -0.056373611092567444, 0.019542526453733444,
                  -0.0031760570127516985)


def _log1p_unit_f32(x):
    c = LOG1P_UNIT_F32
    p = np.float32(c[9])
    p = p * x + np.float32(c[8])
    p = p * x + np.float32(c[7])
    p = p * x + np.float32(c[6])
    p = p * x + np.float32(c[5])
    p = p * x + np.float32(c[4])
    p = p * x + np.float32(c[3])
    p = p * x + np.float32(c[2])
    p = p * x + np.float32(c[1])
    p = p * x + np.float32(c[0])
    return x * p


def _log1p_unit_f64(x):
    # 1 + x = 2**k (1 + f), k = 0 or 1, with f computed from x without rounding 1 + x.
    big = x > 0.41421356237309503  # sqrt(2) - 1
    f = (x - 1.0) * 0.5 if big else x
    r = _log1p_reduced_f64(f)
    return 6.93147180369123816490e-01 + (1.90821492927058770002e-10 + r) if big else r


def log1p_unit(x):
    """log(1 + x) for x in [0, 1] (the softplus's log1p(exp(-|v|))), vectorisable, NaN passes.

    No range reduction and no Goldberg division, unlike :func:`log1p_fast`: a
    polynomial in float32 (:data:`LOG1P_UNIT_F32`), and in float64 the atanh series
    of :func:`log_fast` on ``1 + x = 2**k (1 + f)``, ``f`` taken from ``x`` exactly.
    """
    return np.log1p(x)


@jit(fastmath=STRICT, inline="always")
def log1p_fast(x):
    """log(1 + x) for x > -1 via :func:`log_fast`, accurate for small |x| (Goldberg: log(u) x / (u - 1), u = 1 + x)."""
    one = typed(1, x)
    u = one + x
    if u == one:
        return x
    return log_fast(u) * x / (u - one) if u < np.inf else u


@jit(fastmath=STRICT, inline="always")
def log1p_exp(x):
    """log(1 + exp(x)) without overflow (softplus), vectorisable."""
    return max(x, typed(0, x)) + log1p_unit(exp_fast(-abs(x)))


@jit(fastmath=STRICT, inline="always")
def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for either sign, vectorisable (the exp of
    -|x| is the one :func:`log1p_exp` takes: LLVM computes it once for both)."""
    e = exp_fast(-abs(x))
    one = typed(1, x)
    q = one / (one + e)  # one division for both signs
    return q if x >= 0 else e * q


# ------------------------------------------------------------------ Numba typing
# The intrinsics and the overloads that give exp_fast, log_fast and typed their
# compiled implementations. Resolved only when a kernel is compiled, so registered
# only when numba is in use (the Cython backend alone never imports numba).

if numba is not None:
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic, overload

    def _bitcast(mapping, doc):
        """An intrinsic reinterpreting the bits of a scalar as the type ``mapping`` gives (no conversion)."""

        def bitcast(typingctx, value):
            if value not in mapping:
                return None

            def codegen(context, builder, signature, args):
                return builder.bitcast(args[0], context.get_value_type(signature.return_type))

            return mapping[value](value), codegen

        bitcast.__doc__ = doc
        return intrinsic(bitcast)

    _bits_to_float = _bitcast({types.int32: types.float32, types.int64: types.float64}, "int32/64 bits as float32/64")
    _float_to_bits = _bitcast({types.float32: types.int32, types.float64: types.int64}, "float32/64 as int32/64 bits")

    @overload(typed, jit_options=overload_jit_options(STRICT))
    def _typed_overload(value, like):
        if like == types.float32:
            return lambda value, like: np.float32(value)
        if like == types.float64:
            return lambda value, like: np.float64(value)
        return None

    def _by_dtype(stub, f32, f64):
        """Give ``stub`` (exp_fast, log_fast, log1p_unit) the implementation ``f32`` or ``f64``
        for a float32 or float64 argument."""

        @overload(stub, jit_options=overload_jit_options(STRICT))
        def implementation(x):
            return {types.float32: f32, types.float64: f64}.get(x)

    _by_dtype(exp_fast, _exp_f32, _exp_f64)

    def _nan_skipping(name, doc):
        """An intrinsic calling LLVM's ``name`` (``llvm.maxnum`` or ``llvm.minnum``) on two floats."""

        def extremum(typingctx, a, b):
            if a not in (types.float32, types.float64) or a != b:
                return None

            def codegen(context, builder, signature, args):
                ty = context.get_value_type(signature.return_type)
                fn = builder.module.declare_intrinsic(name, [ty], ir.FunctionType(ty, [ty, ty]))
                return builder.call(fn, args)

            return a(a, b), codegen

        extremum.__doc__ = doc
        extremum.__name__ = extremum.__qualname__ = "_" + name.split(".")[1]
        return intrinsic(extremum)

    _maxnum = _nan_skipping("llvm.maxnum", """LLVM's ``maxnum``: the larger of a and b, the other one if
        either is NaN. Unlike a compare-and-select, LLVM vectorises a reduction of it without
        fast-math flags.""")
    _minnum = _nan_skipping("llvm.minnum", "LLVM's ``minnum``: as ``_maxnum``, the smaller.")

    @overload(c_layout, jit_options=overload_jit_options(STRICT))
    def _c_layout_overload(array):
        if isinstance(array, types.Array):
            answer = array.layout == "C"
            return lambda array: answer
        return None

    @overload(minnum, jit_options=overload_jit_options(STRICT))
    def _minnum_overload(a, b):
        if a in (types.float32, types.float64) and a == b:
            return lambda a, b: _minnum(a, b)
        return None

    @overload(maxnum, jit_options=overload_jit_options(STRICT))
    def _maxnum_overload(a, b):
        if a in (types.float32, types.float64) and a == b:
            return lambda a, b: _maxnum(a, b)
        return None

    _log1p_reduced_f64 = jit(fastmath=STRICT, inline="always")(_log1p_reduced_f64)

    _by_dtype(log1p_unit, _log1p_unit_f32, _log1p_unit_f64)

    _by_dtype(log_fast, _log_f32, _log_f64)
