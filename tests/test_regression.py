"""Regression losses against torch autograd (the oracle) on fresh random data.

Every expected value and gradient comes from torch 2.13 CPU run on the same arrays
(``torch_value_and_grad``).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from conftest import assert_close, check_against_torch, grad_output_for, torch_value_and_grad
from fastloss._core import backends as _backend
from hostile import SPECIALS, check_hostile, sprinkle

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]


def _check(fl_fn, torch_fn, inputs, dtype, reduction, rng, diff=(0,), fl_kwargs=None, torch_kwargs=None,
           loss_shape=None):
    """fastloss vs torch under ``reduction``, with a random incoming gradient."""
    fl_kwargs = dict(fl_kwargs or {}, reduction=reduction)
    torch_kwargs = None if torch_kwargs is None else dict(torch_kwargs, reduction=reduction)
    go = grad_output_for(rng, reduction, np.shape(inputs[0]) if loss_shape is None else loss_shape)
    return check_against_torch(fl_fn, torch_fn, inputs, dtype, diff, go, fl_kwargs, torch_kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name", ["l1_loss", "mse_loss"])
def test_l1_mse(rng, dtype, reduction, weighted, name):
    x = rng.standard_normal((6, 5)).astype(dtype)
    y = rng.standard_normal((6, 5)).astype(dtype)
    y[0, :2] = x[0, :2]  # d = 0: torch's sign gives gradient 0
    w = (rng.random((6, 5)) + 0.2).astype(dtype) if weighted else None
    _check(getattr(fl, name), getattr(F, name), [x, y], dtype, reduction, rng, fl_kwargs=dict(weight=w))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("beta", [0.0, 0.5, 2.0])
def test_smooth_l1(rng, dtype, reduction, beta):
    x = (rng.standard_normal((7, 4)) * 2).astype(dtype)
    y = rng.standard_normal((7, 4)).astype(dtype)
    _check(fl.smooth_l1_loss, F.smooth_l1_loss, [x, y], dtype, reduction, rng, fl_kwargs=dict(beta=beta))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("weighted", [False, True])
def test_huber(rng, dtype, reduction, delta, weighted):
    x = (rng.standard_normal((3, 4, 5)) * 2).astype(dtype)
    y = rng.standard_normal((3, 4, 5)).astype(dtype)
    w = (rng.random((3, 4, 5)) + 0.2).astype(dtype) if weighted else None
    _check(fl.huber_loss, F.huber_loss, [x, y], dtype, reduction, rng, fl_kwargs=dict(delta=delta, weight=w))


def test_target_broadcasts(rng):
    x = rng.standard_normal((5, 3))
    y = rng.standard_normal(3)
    expected, expected_grad = torch_value_and_grad(F.mse_loss, [x, y])  # torch warns and broadcasts
    value, grad = fl.mse_loss(x, y, grad=True)
    assert_close(value, expected, np.float64)
    assert_close(grad, expected_grad, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input", [True, False])
@pytest.mark.parametrize("full", [False, True])
def test_poisson_nll(rng, dtype, reduction, log_input, full):
    x = rng.standard_normal((6, 5)).astype(dtype)
    if not log_input:
        x = np.abs(x) + dtype(0.1)
    y = rng.poisson(2.0, (6, 5)).astype(dtype)  # 0, 1 and > 1: Stirling's mask exercised
    kwargs = dict(log_input=log_input, full=full, eps=1e-6)
    _check(fl.poisson_nll_loss, F.poisson_nll_loss, [x, y], dtype, reduction, rng, fl_kwargs=kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("var_shape", [(6, 4), (6,), (6, 1), (1, 4)], ids=["full", "row", "row1", "col1"])
@pytest.mark.parametrize("full", [False, True])
def test_gaussian_nll(rng, dtype, reduction, var_shape, full):
    x = rng.standard_normal((6, 4)).astype(dtype)
    y = rng.standard_normal((6, 4)).astype(dtype)
    var = (rng.random(var_shape) + 0.05).astype(dtype)
    var.flat[0] = 1e-8  # below eps: clamped, gradient not cut (as torch)
    _check(fl.gaussian_nll_loss, F.gaussian_nll_loss, [x, y, var], dtype, reduction, rng, diff=(0, 2),
           fl_kwargs=dict(full=full, eps=1e-4))


def test_gaussian_nll_scalar_var(rng):
    x = rng.standard_normal(5)
    y = rng.standard_normal(5)
    expected = F.gaussian_nll_loss(torch.tensor(x), torch.tensor(y), 0.5).item()  # torch's float var
    value, (gx, gv) = fl.gaussian_nll_loss(x, y, 0.5, grad=True)
    assert_close(value, expected, np.float64)
    assert np.shape(gv) == ()


def test_elementwise_layouts(rng):
    """Strided, read-only, transposed inputs and an in-place or strided grad_out give the same numbers."""
    base = rng.standard_normal((8, 10))
    x = base[:, ::2]
    y = rng.standard_normal((5, 8)).T
    ro = x.copy()
    ro.flags.writeable = False
    expected, expected_grad = torch_value_and_grad(F.huber_loss, [x, y], reduction="sum")
    for xi in (x, ro):
        value, grad = fl.huber_loss(xi, y, reduction="sum", grad=True)
        assert_close(value, expected, np.float64)
        assert_close(grad, expected_grad, np.float64)
    out = np.empty((8, 10))[:, 1::2]
    _, grad = fl.huber_loss(x, y, reduction="sum", grad=True, grad_out=out)
    assert grad is out
    assert_close(out, expected_grad, np.float64)
    inplace = x.copy()
    _, grad = fl.huber_loss(inplace, y, reduction="sum", grad=True, grad_out=inplace)
    assert np.shares_memory(grad, inplace)
    assert_close(inplace, expected_grad, np.float64)


def test_long_rows_and_many_short_rows(rng):
    """Rows longer than a tile, and many rows shorter than one (per-row variance operand)."""
    for shape in [(2, 9000), (3000, 3)]:
        x = rng.standard_normal(shape).astype(np.float32)
        y = rng.standard_normal(shape).astype(np.float32)
        v = (rng.random(shape[0]) + 0.1).astype(np.float32)
        expected, expected_grad = torch_value_and_grad(F.gaussian_nll_loss, [x, y, v], diff=(0, 2))
        value, (gx, gv) = fl.gaussian_nll_loss(x, y, v, grad=True)
        assert_close(value, expected, np.float32, scale=10)
        assert_close(gx, expected_grad[0], np.float32)
        assert_close(gv, expected_grad[1], np.float32)


@pytest.mark.parametrize("name, kwargs", [("l1_loss", {}), ("mse_loss", {}), ("smooth_l1_loss", {}),
                                          ("smooth_l1_loss", {"beta": 0.0}), ("huber_loss", {})])
def test_nan_propagates(rng, name, kwargs):
    """NaN gives NaN where torch gives NaN (torch's L1 gradient at NaN is its sign(NaN) = 0)."""
    x = rng.standard_normal(6)
    x[2] = np.nan
    y = rng.standard_normal(6)
    expected, expected_grad = torch_value_and_grad(getattr(F, name), [x, y], reduction="none", **kwargs)
    value, grad = getattr(fl, name)(x, y, reduction="none", grad=True, **kwargs)
    np.testing.assert_array_equal(np.isnan(value), np.isnan(expected))
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(expected_grad))
    assert_close(grad[~np.isnan(grad)], expected_grad[~np.isnan(expected_grad)], np.float64)


def test_float16_computes_in_float32(rng):
    x = rng.standard_normal(7).astype(np.float16)
    y = rng.standard_normal(7).astype(np.float16)
    value, grad = fl.mse_loss(x, y, grad=True)
    assert np.asarray(value).dtype == np.float32 and grad.dtype == np.float32
    expected, _ = torch_value_and_grad(F.mse_loss, [x.astype(np.float32), y.astype(np.float32)])
    assert_close(value, expected, np.float32)


def test_criterion_objects(rng):
    x = rng.standard_normal((4, 3))
    y = rng.standard_normal((4, 3))
    var = rng.random((4, 3)) + 0.1
    crit = fl.HuberLoss(reduction="sum", delta=0.5)
    assert crit(x, y) == fl.huber_loss(x, y, reduction="sum", delta=0.5)
    value, grad = crit.value_and_grad(x, y)
    assert value == crit(x, y) and grad.shape == x.shape
    assert fl.SmoothL1Loss(beta=0.2)(x, y) == fl.smooth_l1_loss(x, y, beta=0.2)
    assert fl.L1Loss()(x, y) == fl.l1_loss(x, y)
    assert fl.MSELoss(reduction="sum")(x, y) == fl.mse_loss(x, y, reduction="sum")
    assert fl.PoissonNLLLoss(log_input=True, full=True)(x, var) == fl.poisson_nll_loss(x, var, True, True)
    value, (gx, gv) = fl.GaussianNLLLoss(full=True).value_and_grad(x, y, var)
    assert value == fl.gaussian_nll_loss(x, y, var, full=True) and gv.shape == var.shape


_x = np.zeros((3, 2))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: fl.mse_loss(_x, np.zeros((2, 2))), ValueError, "does not broadcast"),
    (lambda: fl.l1_loss(_x, _x, reduction="avg"), ValueError, "reduction"),
    (lambda: fl.l1_loss(_x, _x, weight=np.ones(2)), ValueError, "weight has shape"),
    (lambda: fl.mse_loss(np.zeros(3, int), np.zeros(3)), TypeError, "floating-point"),
    (lambda: fl.smooth_l1_loss(_x, _x, beta=-1.0), ValueError, "beta"),
    (lambda: fl.huber_loss(_x, _x, delta=0.0), ValueError, "delta"),
    (lambda: fl.gaussian_nll_loss(_x, _x, -np.ones((3, 2))), ValueError, "negative"),
    (lambda: fl.gaussian_nll_loss(_x, _x, np.ones((3, 3))), ValueError, "var has shape"),
    (lambda: fl.gaussian_nll_loss(_x, _x, np.ones((3, 2)), eps=float("nan")), ValueError, "eps"),
    (lambda: fl.mse_loss(_x, _x, grad=True, grad_out=np.zeros((2, 3))), ValueError, "grad_out"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------- corners: NaN, inf, domains

def _maybe_weight(rng):
    return {"weight": sprinkle(rng, rng.random((4, 3)))} if rng.random() < 0.5 else {}


HOSTILE = {
    "l1_loss": (F.l1_loss, _maybe_weight),
    "mse_loss": (F.mse_loss, _maybe_weight),
    "smooth_l1_loss": (F.smooth_l1_loss, lambda rng: {"beta": float(rng.choice([0.0, 1.0]))}),
    "huber_loss": (F.huber_loss, lambda rng: dict(_maybe_weight(rng), delta=float(rng.choice([0.5, 1.0])))),
    "poisson_nll_loss": (F.poisson_nll_loss, lambda rng: {"log_input": bool(rng.random() < 0.5),
                                                          "full": bool(rng.random() < 0.5)}),
    "gaussian_nll_loss": (F.gaussian_nll_loss, lambda rng: {"full": bool(rng.random() < 0.5)}),
}
BACKENDS = ([] if _backend.numba is None else ["numba"]) + (["cython"] if _backend.cython_built() else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_nan_inf_and_huge_values_as_torch(rng, name, backend):
    """NaN, +-inf and 1e300 at random positions of input, target, weight, var and grad_output,
    against torch float64 (tests/hostile.py says what must agree); a negative var raises in both."""
    torch_fn, options = HOSTILE[name]
    # gcc contracts a * b + c into a fused multiply-add (setup.py does not pass
    # -ffp-contract=off), which at overflow (exp(x) - y x with x = y = 1e300) gives inf
    # where torch and Numba give inf - inf = NaN: the Cython backend gets no huge values.
    specials = SPECIALS if backend == "numba" else (np.nan, np.inf, -np.inf)
    for _ in range(25):
        reduction = str(rng.choice(REDUCTIONS))
        kwargs = dict(options(rng), reduction=reduction)
        x = rng.standard_normal((4, 3))
        if name == "poisson_nll_loss" and not kwargs["log_input"]:
            x = rng.random((4, 3)) + 0.1
        arrays, diff = [sprinkle(rng, x, specials), sprinkle(rng, rng.standard_normal((4, 3)), specials)], (0,)
        if name == "gaussian_nll_loss":
            var_shape = [(4, 3), (4,), (4, 1)][rng.integers(3)]
            arrays, diff = arrays + [sprinkle(rng, rng.uniform(0.5, 1.5, var_shape), specials)], (0, 2)
        grad_output = rng.standard_normal((4, 3)) if reduction == "none" else np.float64(0.7)
        grad_output = sprinkle(rng, grad_output, (np.nan,), p=0.1)
        check_hostile(getattr(fl, name), torch_fn, arrays, diff, kwargs, grad_output, backend)


@pytest.mark.parametrize("full", [False, True])
def test_poisson_full_masks_stirling_below_one_even_at_minus_inf(full):
    """torch masks the Stirling term where target <= 1 (so -inf gives the loss's own -inf, not NaN)."""
    x, y = np.array([0.5, 0.2, 0.7]), np.array([-np.inf, 0.5, np.nan])
    expected = F.poisson_nll_loss(torch.tensor(x), torch.tensor(y), log_input=False, full=full, reduction="none")
    for backend in BACKENDS:
        value = fl.poisson_nll_loss(x, y, log_input=False, full=full, reduction="none", backend=backend)
        np.testing.assert_allclose(value, expected.numpy(), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("make, view", [
    (lambda a: a, True),                                   # C-contiguous
    (lambda a: a[:, ::2], True),                           # every other column: one stride for all
    (lambda a: a[:, :3], False),                           # half rows: two strides
    (lambda a: a.T, False),                                # transposed
    (lambda a: a[:0], True),                               # empty
    (lambda a: np.broadcast_to(a[:1], a.shape), False),    # a zero stride
])
def test_reshape_view_before_numpy_2_1_agrees(make, view):
    """Both reshape_view implementations (NumPy >= 2.1's reshape(copy=False), and the one
    used before 2.1, which tells a view by the memory it shares) give a view of the same
    values where the strides allow one, else None. Expected values: NumPy's reshape."""
    from fastloss._core.layout import NUMPY_2_1, _reshape_view, _reshape_view_before_2_1

    array = make(np.arange(24.0).reshape(4, 6))
    shape = (array.size,)
    implementations = (_reshape_view, _reshape_view_before_2_1) if NUMPY_2_1 else (_reshape_view_before_2_1,)
    for result in (reshape_view(array, shape) for reshape_view in implementations):
        assert (result is not None) == view
        if view:
            np.testing.assert_array_equal(result, np.reshape(array, shape))
            assert array.size == 0 or np.shares_memory(result, array)
