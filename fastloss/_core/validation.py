"""Input checks shared by every loss: run before any kernel, so that a kernel never
sees an index it could read out of bounds (Numba does not bounds-check).

Every error names the argument and the offending value or shapes.
"""
import numbers

import numpy as np

from .backends import numba
from .jit import jit, prange
from .table import LOSSES, REAL

_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


def compute_dtype(array):
    """float64 stays float64; every other float (float32, float16, ...) computes in float32."""
    return _NATIVE[1] if array.dtype == _NATIVE[1] else _NATIVE[0]


def as_float_array(value, name, dtype=None):
    """``value`` as a floating-point ndarray in ``dtype`` (default: its compute dtype).

    No copy when it already has that dtype: strides, read-only flags and memmaps are
    kept. Integers and booleans are not accepted for differentiable inputs.
    """
    array = value if type(value) is np.ndarray else np.asarray(value)
    if dtype is None and array.dtype in _NATIVE:  # the common case, checked first
        return array
    if array.dtype.kind != "f":
        raise TypeError(
            f"{name} must be a floating-point array, got dtype {array.dtype}; "
            f"cast it with {name}.astype(np.float32) or np.float64"
        )
    target = compute_dtype(array) if dtype is None else np.dtype(dtype)
    return array if array.dtype == target else array.astype(target)


def as_target_array(value, name, dtype) -> np.ndarray:
    """A real-valued target (probabilities, labels in {-1, 1}, regression targets) in ``dtype``.

    Integers and booleans are accepted and converted; strings, objects and complex are not.
    """
    array = np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    return array if array.dtype == dtype else array.astype(dtype)


def as_index_array(value, name):
    """Integer class indices as an intp array (any integer dtype in)."""
    array = value if type(value) is np.ndarray else np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    return array if array.dtype == np.intp else array.astype(np.intp)


@jit()
def scan_class_indices(target, n_classes, has_ignore, ignore_index, weight, weighted):
    """Check (N, K) class indices before a kernel uses them to index.

    Returns (flat position of the first index outside [0, n_classes) that is not
    ignored, or -1; the sum of ``weight[t]`` over the targets kept, or their count
    if not ``weighted``: torch's denominator of a mean). Kernels that take class
    indices call it first and write nothing when it finds a bad one.
    """
    kept = 0.0
    n_pos = target.shape[1]
    for n in range(target.shape[0]):
        for k in range(n_pos):
            t = target[n, k]
            if has_ignore and t == ignore_index:
                continue
            if t < 0 or t >= n_classes:
                return n * n_pos + k, kept
            kept += weight[t] if weighted else 1.0
    return -1, kept


_NO_WEIGHT = np.zeros(1)


def class_index_error(target, position, n_classes, name, ignore_index=None):
    """The ValueError for the bad class index at flat ``position`` of ``target``."""
    allowed = f"[0, {n_classes})"
    if ignore_index is not None:
        allowed += f" or ignore_index={ignore_index}"
    return ValueError(f"{name} holds class index {int(target.reshape(-1)[position])}; valid indices are {allowed}")


def check_class_indices(target, n_classes, name, ignore_index=None, weight=None):
    """ValueError unless every entry is in [0, n_classes) or equals ``ignore_index``.

    Returns the sum of ``weight[t]`` over the targets that are not ignored (their
    count when ``weight`` is None): torch's denominator of a weighted mean. One pass.
    """
    weighted = weight is not None
    # Without numba (the Cython backend alone: linear_cross_entropy checks its targets
    # before its GEMMs) the same scan runs as Python.
    scan = scan_class_indices if numba is not None else scan_class_indices.py_func
    bad, kept = scan(target.reshape(-1, 1), n_classes, ignore_index is not None,
                     0 if ignore_index is None else ignore_index, weight if weighted else _NO_WEIGHT, weighted)
    if bad >= 0:
        raise class_index_error(target, bad, n_classes, name, ignore_index)
    return kept


@jit(parallel=True)
def _count_others(values, a, b):
    """How many entries of the 1-D ``values`` are neither ``a`` nor ``b`` (NaN counts)."""
    others = 0
    for i in prange(values.shape[0]):
        v = values[i]
        others += 0 if v == a or v == b else 1
    return others


def check_two_values(values, a, b, name):
    """ValueError unless every entry of ``values`` is ``a`` or ``b``: one parallel pass,
    the culprit found only for the error (the losses that call it are Numba's alone)."""
    flat = values.reshape(-1)
    if _count_others(flat, flat.dtype.type(a), flat.dtype.type(b)):
        raise ValueError(f"{name} must hold only {a} and {b}; found {flat[(flat != a) & (flat != b)][0]}")


def check_shape(actual, expected, name, what="input"):
    """ValueError naming both shapes unless ``actual == expected``."""
    if tuple(actual) != tuple(expected):
        raise ValueError(f"{name} has shape {tuple(actual)}; expected {tuple(expected)} to match {what}")


def common_shape(named_shapes):
    """The shape ``(name, shape)`` pairs broadcast to, as torch broadcasts its operands;
    ValueError naming the first argument whose shape does not broadcast with those before it."""
    shape, names = None, []
    for name, s in named_shapes:
        s = tuple(s)
        if shape is None or s == shape:  # the first, and the common case, without broadcast_shapes's cost
            shape = s
            names.append(name)
            continue
        try:
            shape = np.broadcast_shapes(shape, s)
        except ValueError:
            raise ValueError(f"{name} has shape {tuple(s)}, which does not broadcast with {' and '.join(names)} "
                             f"(together of shape {shape})") from None
        names.append(name)
    return () if shape is None else shape


def check_broadcast(shape, target_shape, name):
    """ValueError unless an array of ``shape`` broadcasts to ``target_shape``."""
    if shape == target_shape:  # the common case, without broadcast_shapes's cost
        return
    try:
        if np.broadcast_shapes(shape, target_shape) == tuple(target_shape):
            return
    except ValueError:
        pass
    raise ValueError(f"{name} of shape {tuple(shape)} does not broadcast to the input's shape {tuple(target_shape)}")


_CONSTANTS: dict = {}


def class_constant(value, n_classes, dtype):
    """A vector of ``n_classes`` copies of ``value`` in ``dtype`` (the input's np.dtype),
    made once per shape and shared: kernels never write their weights."""
    key = (value, n_classes, dtype)
    array = _CONSTANTS.get(key)
    if array is None:
        array = np.full(n_classes, value, dtype)
        if n_classes <= 1 << 16:
            _CONSTANTS[key] = array
    return array


def as_class_weight(weight, n_classes, dtype, name="weight"):
    """A per-class weight vector of length ``n_classes`` (shared ones when None)."""
    if weight is None:
        return class_constant(1.0, n_classes, dtype)
    array = as_target_array(weight, name, dtype)
    if array.ndim != 1 or array.shape[0] != n_classes:
        raise ValueError(f"{name} must have shape ({n_classes},) (one entry per class), got {array.shape}")
    return np.ascontiguousarray(array)


def describe(value):
    """A short account of a bad option's value for an error message (an array by its
    shape and dtype, not its contents)."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def check_real(value, name, domain=REAL):
    """A real scalar option inside ``domain`` (an :class:`~fastloss._core.table.Interval`;
    any finite real by default): TypeError for a value that is not a real number,
    ValueError naming the option outside the domain."""
    if type(value) is not float and (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    try:
        value = float(value)
    except OverflowError:  # an integer beyond float's range
        raise ValueError(f"{name} must be finite, got an integer of {int(value).bit_length()} bits") from None
    if value not in domain:
        raise ValueError(f"{name} must be {domain}, got {value}")
    return value


def check_option(loss, name, value):
    """A real option ``name`` of ``loss``, inside its domain in the table of losses."""
    return check_real(value, name, LOSSES[loss].domains.get(name, REAL))


def check_integer(value, name):
    """An integer scalar option (ignore_index, blank, ...) that fits in int64, the
    kernels' integer type (torch refuses one beyond it too)."""
    if type(value) is not int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {describe(value)}")
        value = int(value)
    if not -9223372036854775808 <= value <= 9223372036854775807:  # [-2**63, 2**63)
        raise ValueError(f"{name} = {value} does not fit in int64 (in [-2**63, 2**63))")
    return value


def check_bool(value, name):
    """A flag (grad, log_target, full, swap, zero_infinity, ...): a Python or NumPy
    bool. Not 0 or 1, which torch's flags refuse too."""
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {describe(value)}")


def as_grad_output(value, dtype):
    """``grad_output`` as an array of real numbers in ``dtype`` (TypeError for complex,
    strings and objects: a complex incoming gradient has no meaning for a real loss)."""
    try:
        array = np.asarray(value)
    except ValueError as error:  # a ragged nested list
        raise ValueError(f"grad_output is not an array of numbers: {error}") from None
    if array.dtype.kind not in "fiub":
        raise TypeError(f"grad_output must hold real numbers, got {describe(value)}")
    return array.astype(dtype, copy=False)


def check_choice(value, name, choices):
    """ValueError unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got "
                         f"{repr(value) if isinstance(value, str) else describe(value)}")
    return value
