"""The GPU entry points of fastloss.margin (multi_margin_loss, multilabel_margin_loss, the
multi-class hinge_loss). Every expected number comes from the CPU public function
(``fastloss.<loss>``, itself tested against torch) on the same host arrays."""
import numpy as np
import pytest
from agree import assert_agree, assert_same_signature
from conftest import host

import fastloss
from fastloss._core import cuda as core
from fastloss.margin import cuda as gpu

DTYPES = (np.float32, np.float64)
REDUCTIONS = ("none", "sum", "mean")


def both(name, args, device_args, **options):
    """(the GPU entry point's result on ``device_args``, the CPU function's on ``args``)."""
    return getattr(gpu, name)(*device_args, **options), getattr(fastloss, name)(*args, **options)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", (1, 2))
def test_multi_margin_matches_the_cpu(cuda, rng, dtype, reduction, p):
    x = rng.standard_normal((2, 5)).astype(dtype)
    t = np.array([0, 4])
    w = rng.uniform(0.5, 2.0, 5)  # a host weight, as callers pass it
    got, want = both("multi_margin_loss", (x, t), (cuda.to_device(x), cuda.to_device(t)), p=p, margin=0.7,
                     weight=w, reduction=reduction, grad=True)
    assert_agree(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hinge_matches_the_cpu(cuda, rng, dtype, reduction):
    x = rng.standard_normal((2, 4)).astype(dtype)
    x[1, 1] = x[1, 2]  # a tie for the largest competitor goes to the first index
    t = np.array([1, 3])
    got, want = both("hinge_loss", (x, t), (cuda.to_device(x), t), margin=0.5, reduction=reduction, grad=True)
    assert_agree(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin_matches_the_cpu(cuda, rng, dtype, reduction):
    x = rng.standard_normal((2, 5)).astype(dtype)
    t = np.array([[3, 0, 0, -1, 1], [0, 1, 2, 3, 4]])  # a repeated target counts twice
    got, want = both("multilabel_margin_loss", (x, t), (cuda.to_device(x), cuda.to_device(t)),
                     reduction=reduction, grad=True)
    assert_agree(got, want, dtype)


def test_single_rows_and_values_without_gradient(cuda, rng):
    x = rng.standard_normal(4)
    assert_agree(*both("multi_margin_loss", (x, 2), (cuda.to_device(x), 2), reduction="none"), np.float64)
    assert_agree(*both("multi_margin_loss", (x[:1], 0), (cuda.to_device(x[:1]), 0), grad=True), np.float64)
    assert_agree(*both("multilabel_margin_loss", (x, [2, -1, 0, 0]), (cuda.to_device(x), [2, -1, 0, 0]),
                       reduction="none", grad=True), np.float64)


@pytest.mark.parametrize("where", ("host", "device"))
def test_grad_output_array_and_scalar(cuda, rng, where):
    x = rng.standard_normal((2, 4))
    t = np.array([1, 3])
    g = rng.standard_normal(2)
    put = cuda.to_device if where == "device" else (lambda v: v)
    for reduction, go in (("none", g), ("none", np.array(2.5)), ("mean", np.array(-1.5))):
        got, want = both("multi_margin_loss", (x, t), (cuda.to_device(x), t), reduction=reduction, grad=True,
                         grad_output=put(go))
        assert_agree(got, want, np.float64)


def test_gradient_in_place(cuda, rng):
    x = rng.standard_normal((2, 5))
    t = np.array([[3, 0, -1, 1, 1], [0, 1, 2, 3, 4]])
    for name, target in (("multilabel_margin_loss", t), ("multi_margin_loss", t[:, 0])):
        want = getattr(fastloss, name)(x, target, grad=True)
        device = cuda.to_device(x)
        loss, g = getattr(gpu, name)(device, target, grad=True, grad_out=device)
        assert g is device
        assert_agree((loss, g), want, np.float64)


def test_empty_batch(cuda):
    x = np.empty((0, 3))
    t = np.empty(0, np.int64)
    for reduction in REDUCTIONS:
        assert_agree(*both("multi_margin_loss", (x, t), (cuda.to_device(x), t), reduction=reduction, grad=True),
                     np.float64)


def test_bad_class_indices_raise_the_cpu_error(cuda, rng):
    x = rng.standard_normal((3, 4))
    for name, t in (("multi_margin_loss", np.array([0, 5, -1])), ("hinge_loss", np.array([0, 1, -2])),
                    ("multilabel_margin_loss", np.array([[1, -1, 0, 0], [4, -1, 0, 0], [0, -2, 0, 0]])),
                    ("multilabel_margin_loss", np.array([[1, -1, 0, 0], [1, -2, 0, 0], [0, 9, -1, 0]]))):
        with pytest.raises(ValueError) as cpu_error:
            getattr(fastloss, name)(x, t)
        with pytest.raises(ValueError) as gpu_error:  # found by the kernel: the flag is read
            getattr(gpu, name)(cuda.to_device(x), cuda.to_device(t), grad=True)
        assert str(gpu_error.value) == str(cpu_error.value)
        with pytest.raises(ValueError, match=str(cpu_error.value).split(";")[0]):  # host targets: before any launch
            getattr(gpu, name)(cuda.to_device(x), t)


def test_checks_off_gives_nan_rows(cuda, rng):
    x = rng.standard_normal((3, 4))
    previous = core.set_device_checks(False)
    try:
        loss, g = gpu.multi_margin_loss(cuda.to_device(x), cuda.to_device(np.array([0, 7, 1])), reduction="none",
                                        grad=True)
        bad = gpu.multilabel_margin_loss(cuda.to_device(x), cuda.to_device(np.array([[0, 9, -1, 0]] * 3)))
    finally:
        core.set_device_checks(previous)
    loss, g = host(loss), host(g)
    assert np.isnan(loss[1]) and np.isnan(g[1]).all() and np.isfinite(loss[[0, 2]]).all()
    want = fastloss.multi_margin_loss(x[[0, 2]], np.array([0, 1]), reduction="none", grad=True)
    assert_agree((cuda.to_device(loss[[0, 2]]), cuda.to_device(g[[0, 2]])), want, np.float64)
    assert np.isnan(host(bad))


def test_options_and_shapes_are_checked_on_the_host(cuda, rng):
    x = cuda.to_device(rng.standard_normal((3, 4)))
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        gpu.multi_margin_loss(x, [0, 1, 2], p=3)
    with pytest.raises(ValueError, match="target has shape"):
        gpu.multi_margin_loss(x, cuda.to_device(np.zeros(2, np.int64)))
    with pytest.raises(ValueError, match="weight must have shape"):
        gpu.multi_margin_loss(x, [0, 1, 2], weight=np.ones(3))
    with pytest.raises(TypeError, match="integer class indices"):
        gpu.multi_margin_loss(x, cuda.to_device(np.zeros(3)))
    with pytest.raises(TypeError, match="binary scores has no GPU kernel"):
        gpu.hinge_loss(cuda.to_device(np.ones(3)), [1, -1, 1])
    with pytest.raises(ValueError, match="grad_output has shape"):
        gpu.multi_margin_loss(x, [0, 1, 2], reduction="none", grad=True, grad_output=cuda.to_device(np.ones(4)))


@pytest.mark.parametrize("name", ("multi_margin_loss", "multilabel_margin_loss", "hinge_loss"))
def test_entry_points_take_the_public_parameters(name):
    assert_same_signature(getattr(gpu, name), getattr(fastloss, name))


# The simulator computes with NumPy scalars, which warn where the GPU silently gives NaN or inf.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_and_inf_come_out_where_the_cpu_gives_them(cuda, rng):
    x = rng.standard_normal((3, 4))
    x[0, 1], x[1, 2], x[2, 0] = np.nan, np.inf, -np.inf
    t = np.array([1, 2, 3])
    for name, target, options in (("multi_margin_loss", t, {"p": 2}), ("hinge_loss", t, {}),
                                  ("multilabel_margin_loss", np.array([[1, -1, 0, 0], [2, 3, -1, 0], [0, 1, 2, 3]]),
                                   {})):
        assert_agree(*both(name, (x, target), (cuda.to_device(x), target), reduction="none", grad=True, **options),
                     np.float64)
