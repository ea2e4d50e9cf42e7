"""Bad input: every loss either computes or raises ValueError or TypeError naming the
argument; no other exception type escapes (the API contract's Errors section).

Each call starts from the loss's valid small call in ``loss_cases`` (random data, with
or without ``grad=True``, on either backend where the loss has a Cython kernel) and
changes one thing:

* an option (anything but the data and the gradient plumbing) or ``grad`` /
  ``grad_output`` / ``grad_out`` takes each value of a fixed list of wrong kinds
  (strings, arrays, None, huge and negative integers, NaN, complex, objects), every
  value in turn;
* a data argument gets, at random (hypothesis), another shape (an axis dropped, added,
  resized or emptied, or 0-d), another dtype (integer, bool, complex, object, string,
  float16), or a hostile value at a random position (NaN, inf, huge, negative, an
  out-of-range class index).

Where the input is certainly wrong (``grad`` or a flag not a bool, a string, complex
or object where a number belongs, an integer beyond int64 or a real beyond float64),
the call must raise. Values such as NaN or an out-of-range class index may be accepted
(NaN propagates) or refused; what is checked is how a refusal happens. Examples are
drawn with a fixed seed, so that a run reproduces; ``FASTLOSS_TEST_SEED`` (see
conftest.py) draws others.
"""
import inspect
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings, strategies as st

from conftest import SEED_OFFSET
from fastloss._core import backends as _backend
from fastloss._core.table import PLUMBING
from loss_cases import LOSSES, data

# Replacement values of an option, and which of them no option accepts.
WRONG_KIND = ("x", "", 1 + 1j, np.complex64(1), object(), {"a": 1}, 10 ** 400, -(10 ** 400),
              np.array(["a"]), np.array([1, 2], object))
OPTION_VALUES = WRONG_KIND + (
    None, True, False, np.True_, 0, 1, -1, 2, 3, -100, 2 ** 31, 2 ** 63, 2 ** 70, -(2 ** 70), np.uint64(2 ** 63),
    np.int8(-3), 0.5, -0.5, 2.0, 1e300, -1e300, float("nan"), float("inf"), float("-inf"), np.array(1.0),
    np.array([1.0, 2.0]), np.zeros((2, 2)), np.array([True, False]), np.array([], float), [1.0, 2.0], (1,),
    "numba", "cython", "none", "mean", "sum", "batchmean", "mean_nonzero",
)
BEYOND_INT64 = (2 ** 63, 2 ** 70, -(2 ** 70), np.uint64(2 ** 63))
# grad: none of these is a bool.
GRAD_VALUES = ("yes", "", None, 0, 1, 1.0, np.array([1, 0]), np.array(True), np.array([True]), [True], np.nan)
GRAD_OUTPUT_VALUES = WRONG_KIND + (
    np.array([1 + 1j]), np.array("x"), [1.0, 2.0], [[1.0], [1.0, 2.0]], np.zeros((7, 7)), np.zeros(0),
    np.array([True]), np.array(2), np.nan, np.inf, 1e308, np.float16(2), [[1.0]],
)

# Values put at one position of a float or an integer data argument.
FLOAT_VALUES = (np.nan, np.inf, -np.inf, 1e308, -1e308, -3.0, 0.0, 1e-320)
INT_VALUES = (-1, -2, 3, 5, 1000, 2 ** 31, 2 ** 62, -(2 ** 63), 2 ** 63 - 1)
DTYPES = (np.int64, np.int8, np.uint64, np.bool_, np.complex128, np.object_, np.str_, np.float16, np.float32)

def _settings(max_examples):
    """Reproducible draws (see the module docstring). Kernels compile once per new type
    signature (a dtype or rank a mutation introduces); after that a call costs microseconds."""
    return settings(max_examples=max_examples, deadline=None, database=None, derandomize=SEED_OFFSET == 0,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(autouse=True, scope="module")
def _one_kernel_thread():
    """The calls are tiny: starting a parallel region (waking the other threads) would
    cost more than the call, many times more on a loaded machine."""
    numba = _backend.numba
    before = numba.get_num_threads() if numba else None
    if numba:
        numba.set_num_threads(1)
    yield
    if numba:
        numba.set_num_threads(before)


def _base_call(draw, name):
    """The loss and a valid call of it: random data, ``grad`` True or not, a backend."""
    fn, call, _ = data(name, np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))))
    if draw(st.booleans()):
        call["grad"] = True
    if name in _backend.CYTHON_LOSSES and _backend.cython_built() and draw(st.booleans()):
        call["backend"] = "cython"
    return fn, call


def _names(message, names):
    return any(re.search(rf"\b{re.escape(n)}\b", message) for n in names)


def _check(fn, call, names, must_raise=False):
    """Call ``fn``: it returns, or raises ValueError/TypeError whose message names one
    of ``names``; with ``must_raise``, it raises."""
    what = f"{fn.__name__}({', '.join(f'{k}={_short(v)}' for k, v in call.items())})"
    try:
        with warnings.catch_warnings():
            # A complex value cast to real silently loses its imaginary part: that is a defect too.
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow in a hostile value's arithmetic
            fn(**call)
    except (ValueError, TypeError) as error:
        assert _names(str(error), names), f"{what}: {type(error).__name__} names none of {names}: {error}"
        return
    except Exception as error:
        raise AssertionError(f"{what} raised {type(error).__name__}: {error}") from error
    assert not must_raise, f"{what} returned; it must raise"


def _short(value):
    if isinstance(value, np.ndarray):
        return f"<{value.dtype} array {value.shape}>"
    text = repr(value)
    return text if len(text) < 30 else text[:27] + "..."


def _is_bool(value):
    return value is True or value is False or isinstance(value, np.bool_)


def _certainly_wrong(value, default):
    """Whether no loss could accept ``value`` for an option whose default is ``default``."""
    if isinstance(default, bool):
        return not _is_bool(value)
    if any(value is v for v in WRONG_KIND):
        return True
    return isinstance(default, int) and any(value is v for v in BEYOND_INT64)


@pytest.mark.parametrize("name", LOSSES)
def test_options_of_wrong_kind(name):
    @seed(SEED_OFFSET)
    @_settings(max_examples=8)  # each example tries every value on every option
    @given(st.data())
    def check(draws):
        fn, call = _base_call(draws.draw, name)
        parameters = inspect.signature(fn).parameters
        for option, parameter in parameters.items():
            if parameter.default is parameter.empty or option in PLUMBING or isinstance(call.get(option),
                                                                                        np.ndarray):
                continue
            for value in OPTION_VALUES:
                # A value of the right kind may make the data inconsistent (batch_first=True):
                # the message may then name the data.
                wrong = _certainly_wrong(value, parameter.default)
                _check(fn, {**call, option: value}, [option] if wrong else list(parameters), wrong)

    check()


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_plumbing_of_wrong_kind(name):
    @seed(SEED_OFFSET)
    @_settings(max_examples=8)
    @given(st.data())
    def check(draws):
        fn, call = _base_call(draws.draw, name)
        for value in GRAD_VALUES:
            _check(fn, {**call, "grad": value}, ["grad"], must_raise=True)
        call["grad"] = True
        for value in GRAD_OUTPUT_VALUES:
            _check(fn, {**call, "grad_output": value}, ["grad_output"],
                   must_raise=any(value is v for v in WRONG_KIND))
        first = call[next(iter(inspect.signature(fn).parameters))]
        for value in ("x", [0.0], np.zeros(first.shape, np.float16), np.zeros(first.shape[:-1] + (9,)),
                      np.zeros(first.shape, np.int64), np.zeros(first.shape, np.complex128), first[..., :0],
                      np.broadcast_to(np.zeros((), first.dtype), first.shape), np.zeros(())):
            _check(fn, {**call, "grad_out": value}, ["grad_out"], must_raise=True)

    check()


def _mutate_shape(draw, a):
    """``a`` with one axis dropped, added, resized or emptied, or as a 0-d array."""
    kind = draw(st.sampled_from(("drop", "add", "resize", "empty", "scalar")))
    if kind == "scalar" or (kind != "add" and a.ndim == 0):
        return a.reshape(-1)[:1].reshape(()) if a.size else np.zeros((), a.dtype)
    axis = draw(st.integers(0, a.ndim if kind == "add" else a.ndim - 1))
    if kind == "drop":
        return np.take(a, 0, axis=axis) if a.shape[axis] else np.take(a, np.arange(0), axis=axis).sum(axis=axis)
    if kind == "add":
        return np.expand_dims(a, axis)
    if kind == "empty":
        return np.take(a, np.arange(0), axis=axis)
    size = draw(st.integers(1, 7))
    return np.take(a, np.arange(size) % a.shape[axis], axis=axis) if a.shape[axis] else a


def _mutate_dtype(draw, a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NaN cast to int, complex to float: the values do not matter here
        return a.astype(draw(st.sampled_from(DTYPES)))


def _mutate_values(draw, a):
    """``a`` with one entry set to a hostile value of its kind (NaN, inf, huge, negative, out of range)."""
    if a.size == 0 or a.dtype.kind not in "fiu":
        return a
    out = a.copy()
    position = draw(st.integers(0, a.size - 1))
    if a.dtype.kind == "f":
        out.reshape(-1)[position] = draw(st.sampled_from(FLOAT_VALUES))
    else:
        info = np.iinfo(a.dtype)
        out.reshape(-1)[position] = min(max(draw(st.sampled_from(INT_VALUES)), info.min), info.max)
    return out


@pytest.mark.parametrize("name", LOSSES)
def test_data_of_wrong_shape_dtype_or_values(name):
    @seed(SEED_OFFSET)
    @_settings(max_examples=100)
    @given(st.data())
    def check(draws):
        fn, call = _base_call(draws.draw, name)
        arrays = [n for n, v in call.items() if isinstance(v, np.ndarray)]
        mutated = draws.draw(st.sampled_from(arrays))
        mutate = draws.draw(st.sampled_from((_mutate_shape, _mutate_dtype, _mutate_values)))
        call[mutated] = mutate(draws.draw, call[mutated])
        # Shapes and values are checked against each other's: any argument may be named.
        _check(fn, call, list(inspect.signature(fn).parameters))

    check()
