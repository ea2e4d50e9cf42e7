"""The GPU entry points of fastloss.extras (large_margin_cosine_loss, anchor_loss, dice_loss).
Every expected number comes from the CPU public function (``fastloss.<loss>``, itself tested
against its reference) on the same host arrays."""
import numpy as np
import pytest
from agree import assert_agree, assert_same_signature
from conftest import host

import fastloss
from fastloss._core import cuda as core
from fastloss.extras import cuda as gpu

DTYPES = (np.float32, np.float64)
REDUCTIONS = ("none", "sum", "mean")


def both(name, args, cuda, **options):
    """(the GPU entry point's result with the arrays of ``args`` on the device, the CPU
    function's on ``args``)."""
    device = [cuda.to_device(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a for a in args]
    return getattr(gpu, name)(*device, **options), getattr(fastloss, name)(*args, **options)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cosface_matches_the_cpu(cuda, rng, dtype, reduction):
    f = rng.standard_normal((3, 5)).astype(dtype)
    w = rng.standard_normal((6, 5)).astype(dtype)  # more classes and features than a simulated tile
    t = np.array([0, 5, 2])
    assert_agree(*both("large_margin_cosine_loss", (f, w, t), cuda, s=8.0, m=0.2, reduction=reduction, grad=True),
                 dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_anchor_matches_the_cpu(cuda, rng, dtype, reduction):
    x = (2 * rng.standard_normal((2, 4))).astype(dtype)
    t = np.array([3, 0])
    for anchor, gamma in (("neg", 0.5), ("pos", 2.0)):
        assert_agree(*both("anchor_loss", (x, t), cuda, gamma=gamma, slack=0.1, reduction=reduction, anchor=anchor,
                           grad=True), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_dice_multi_class_matches_the_cpu(cuda, rng, dtype, reduction):
    x = rng.standard_normal((2, 3, 5, 8)).astype(dtype)  # 40 positions: two simulated blocks per sample
    t = rng.integers(0, 3, (2, 5, 8))
    assert_agree(*both("dice_loss", (x, t), cuda, smooth=0.5, reduction=reduction, grad=True), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dice_binary_matches_the_cpu(cuda, rng, dtype):
    x = rng.standard_normal((2, 6)).astype(dtype)
    y = rng.random((2, 6)).astype(dtype)  # soft targets in [0, 1]
    assert_agree(*both("dice_loss", (x, y), cuda, reduction="none", grad=True), dtype)


def test_values_without_gradient(cuda, rng):
    x = rng.standard_normal((2, 4))
    t = np.array([1, 2])
    assert_agree(both("anchor_loss", (x, t), cuda)[0], both("anchor_loss", (x, t), cuda)[1], np.float64)
    assert_agree(*both("large_margin_cosine_loss", (x, rng.standard_normal((3, 4)), t), cuda, reduction="none"),
                 np.float64)
    assert_agree(*both("dice_loss", (x, (x > 0).astype(float)), cuda), np.float64)


@pytest.mark.parametrize("where", ("host", "device"))
def test_grad_output_array_and_scalar(cuda, rng, where):
    x = rng.standard_normal((2, 3, 4))
    t = rng.integers(0, 3, (2, 4))
    g = rng.standard_normal(2)
    put = cuda.to_device if where == "device" else (lambda v: v)
    for reduction, go in (("none", g), ("mean", np.array(-1.5))):
        assert_agree(*both("dice_loss", (x, t), cuda, reduction=reduction, grad=True, grad_output=put(go)), np.float64)
        assert_agree(*both("anchor_loss", (x[:, :, 0], t[:, 0]), cuda, reduction=reduction, grad=True,
                           grad_output=put(go)), np.float64)


def test_gradient_in_place(cuda, rng):
    x = rng.standard_normal((2, 3, 4))
    t = rng.integers(0, 3, (2, 4))
    w = rng.standard_normal((3, 4))
    for name, args in (("dice_loss", (x, t)), ("anchor_loss", (x[:, 0], t[:, 0])),
                       ("large_margin_cosine_loss", (x[:, 0], w, t[:, 0]))):
        want = getattr(fastloss, name)(*args, grad=True)
        device = [cuda.to_device(np.ascontiguousarray(v)) for v in args]
        loss, g = getattr(gpu, name)(*device, grad=True, grad_out=device[0])
        assert (g[0] if isinstance(g, tuple) else g) is device[0]
        assert_agree((loss, g), want, np.float64)


def test_empty_batch(cuda, rng):
    w = rng.standard_normal((3, 4))
    for reduction in REDUCTIONS:
        assert_agree(*both("large_margin_cosine_loss", (np.empty((0, 4)), w, np.empty(0, np.int64)), cuda,
                           reduction=reduction, grad=True), np.float64)
        assert_agree(*both("dice_loss", (np.empty((0, 2, 3)), np.empty((0, 3), np.int64)), cuda,
                           reduction=reduction, grad=True), np.float64)


def test_bad_targets_raise_the_cpu_error(cuda, rng):
    x = rng.standard_normal((3, 4))
    cases = (("anchor_loss", (x, np.array([0, 4, -1]))), ("large_margin_cosine_loss", (x, x, np.array([1, 2, 7]))),
             ("dice_loss", (x[:, :, None].repeat(2, 2), np.array([[0, 1], [1, 5], [-1, 0]]))),
             ("dice_loss", (x, np.array([[0, 1, 0.5, 1], [1, 1.5, 0, 0], [0, 0, 0, 0]]))))
    for name, args in cases:
        with pytest.raises(ValueError) as cpu_error:
            getattr(fastloss, name)(*args)
        with pytest.raises(ValueError) as gpu_error:  # found by the kernel: the flag is read
            getattr(gpu, name)(*(cuda.to_device(a) for a in args), grad=True)
        assert str(gpu_error.value) == str(cpu_error.value)


def test_a_bad_target_leaves_grad_out_unwritten(cuda, rng):
    x = rng.standard_normal((2, 3, 4))
    device = cuda.to_device(x)
    with pytest.raises(ValueError, match="class index 3"):
        gpu.dice_loss(device, cuda.to_device(np.array([[0, 1, 2, 3], [0, 0, 0, 0]])), grad=True, grad_out=device)
    np.testing.assert_array_equal(host(device), x)


def test_checks_off_gives_nan_rows(cuda, rng):
    x = rng.standard_normal((3, 4))
    previous = core.set_device_checks(False)
    try:
        loss, g = gpu.anchor_loss(cuda.to_device(x), cuda.to_device(np.array([0, 9, 1])), reduction="none",
                                  grad=True)
        cosface = gpu.large_margin_cosine_loss(cuda.to_device(x), cuda.to_device(x), cuda.to_device(np.array([0, 9, 1])),
                                               reduction="none")
    finally:
        core.set_device_checks(previous)
    loss, g = host(loss), host(g)
    assert np.isnan(loss[1]) and np.isnan(g[1]).all() and np.isnan(host(cosface)[1])
    want = fastloss.anchor_loss(x[[0, 2]], np.array([0, 1]), reduction="none", grad=True)
    assert_agree((cuda.to_device(loss[[0, 2]]), cuda.to_device(g[[0, 2]])), want, np.float64)


@pytest.mark.parametrize("name", ("large_margin_cosine_loss", "anchor_loss", "dice_loss"))
def test_entry_points_take_the_public_parameters(name):
    assert_same_signature(getattr(gpu, name), getattr(fastloss, name))


# The simulator computes with NumPy scalars, which warn where the GPU silently gives NaN or inf.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_inf_and_zero_rows_come_out_where_the_cpu_gives_them(cuda, rng):
    x = rng.standard_normal((2, 3, 4))
    x[0, 1, 2], x[1, 0, 1] = np.nan, np.inf
    t = rng.integers(0, 3, (2, 4))
    for name, args in (("anchor_loss", (x[:, :, 0], t[:, 0])), ("dice_loss", (x, t)),
                       ("large_margin_cosine_loss", (np.zeros((2, 4)), x[0], t[:, 0]))):  # zero features: clamped norms
        assert_agree(*both(name, args, cuda, reduction="none", grad=True), np.float64)
