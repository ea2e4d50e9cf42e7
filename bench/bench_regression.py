"""Elementwise losses (regression, and binary cross-entropy with logits), value and
gradient: fastloss (Numba and Cython kernels) vs torch forward+backward vs NumPy, on
16M float32 elements (the issue's elementwise size), and on 256 (a training step's
batch, where the cost of a call is the cost of its Python and of entering the kernel).

"copy" is the memory-bandwidth reference of the same group: ``z = x + y`` on both
cores (a Numba parallel loop; 13% faster here than NumPy's single-threaded
``np.add(x, y, out=z)``) reads two 16M float32 arrays and writes one into an existing
array, the traffic of a value+gradient call (two inputs in, the gradient out).
"fastloss_out" is the value+gradient call writing into an existing ``grad_out``, the
same traffic into the same kind of memory; bench/report.py gives its share of the
copy's bandwidth. (A fresh gradient array costs its first-touch page faults on top:
2 to 7 ms for 64 MB here, and tens of ms when the kernel compacts memory for a huge
page, a cost of the allocator and the OS, not of the kernel.)"""
import numba
import numpy as np
import pytest
from common import CYTHON_IMPLS, rng, run, torch, torch_backward

import fastloss as fl

N = 1 << 24


@numba.njit(parallel=True, cache=True)
def _parallel_add(x, y, out):
    for i in numba.prange(x.shape[0]):
        out[i] = x[i] + y[i]


def _data(dtype, n=N):
    g = rng()
    x = g.standard_normal(n).astype(dtype)
    y = g.standard_normal(n).astype(dtype)
    var = (g.random(n) + 0.1).astype(dtype)
    counts = g.poisson(2.0, n).astype(dtype)
    prob = g.random(n).astype(dtype)
    return x, y, var, counts, prob


# NumPy baselines: vectorised value and gradient of the mean reduction.
def _np_mse(x, y):
    d = x - y
    return np.dot(d, d) / d.size, d * (2 / d.size)


def _np_l1(x, y):
    d = x - y
    return np.abs(d).mean(), np.sign(d) / d.size


def _np_smooth_l1(x, y, beta=1.0):
    d = x - y
    a = np.abs(d)
    inside = a < beta
    loss = np.where(inside, 0.5 * d * d / beta, a - 0.5 * beta).mean()
    return loss, np.where(inside, d / beta, np.sign(d)) / d.size


def _np_huber(x, y, delta=1.0):
    d = x - y
    a = np.abs(d)
    inside = a < delta
    loss = np.where(inside, 0.5 * d * d, delta * (a - 0.5 * delta)).mean()
    return loss, np.where(inside, d, delta * np.sign(d)) / d.size


def _np_poisson(x, y):
    e = np.exp(x)
    return (e - y * x).mean(), (e - y) / x.size


def _np_gaussian(x, y, var, eps=1e-6):
    v = np.maximum(var, eps)
    d = x - y
    r = d / v
    loss = 0.5 * (np.log(v) + d * r).mean()
    return loss, (r / x.size, 0.5 * (1 / v - r * r) / x.size)


def _np_bce_with_logits(x, y):
    e = np.exp(-np.abs(x))
    loss = (np.maximum(x, 0) - x * y + np.log1p(e)).mean()
    sigmoid = np.where(x >= 0, 1, e) / (1 + e)
    return loss, (sigmoid - y) / x.size


CASES = {
    "mse_loss": (_np_mse, "mse_loss", lambda x, y, v, c, p: (x, y)),
    "l1_loss": (_np_l1, "l1_loss", lambda x, y, v, c, p: (x, y)),
    "smooth_l1_loss": (_np_smooth_l1, "smooth_l1_loss", lambda x, y, v, c, p: (x, y)),
    "huber_loss": (_np_huber, "huber_loss", lambda x, y, v, c, p: (x, y)),
    "poisson_nll_loss": (_np_poisson, "poisson_nll_loss", lambda x, y, v, c, p: (x, c)),
    "gaussian_nll_loss": (_np_gaussian, "gaussian_nll_loss", lambda x, y, v, c, p: (x, y, v)),
    # The elementwise classification loss of the same size (the "bce-with-logits-style").
    "binary_cross_entropy_with_logits": (_np_bce_with_logits, "binary_cross_entropy_with_logits",
                                         lambda x, y, v, c, p: (x, p)),
}


@pytest.mark.parametrize("impl", CYTHON_IMPLS + ("fastloss_out", "copy"))
@pytest.mark.parametrize("loss", list(CASES))
def bench_regression(benchmark, impl, loss):
    numpy_fn, name, pick = CASES[loss]
    args = pick(*_data(np.float32))
    if impl == "numpy":
        fn = lambda: numpy_fn(*args)  # noqa: E731
    elif impl == "copy":
        out = np.empty_like(args[0])
        fn = lambda: _parallel_add(args[0], args[1], out)  # noqa: E731
    elif impl == "fastloss_out":
        out = np.empty_like(args[0])
        fn = lambda: getattr(fl, name)(*args, grad=True, grad_out=out, backend="numba")  # noqa: E731
    elif impl == "torch":
        diff = (0, 2) if name == "gaussian_nll_loss" else (0,)
        fn = torch_backward(getattr(torch.nn.functional, name, None) if torch else None, args, diff)
    else:
        backend = "cython" if impl == "cython" else "numba"
        fn = lambda: getattr(fl, name)(*args, grad=True, backend=backend)  # noqa: E731
    run(benchmark, f"{loss} n=16M float32 value+grad", impl, fn)


SMALL = 256


@pytest.mark.parametrize("impl", ["numpy", "torch", "fastloss"])
@pytest.mark.parametrize("loss", list(CASES))
def bench_regression_small(benchmark, impl, loss):
    numpy_fn, name, pick = CASES[loss]
    args = pick(*_data(np.float32, SMALL))
    if impl == "numpy":
        fn = lambda: numpy_fn(*args)  # noqa: E731
    elif impl == "torch":
        diff = (0, 2) if name == "gaussian_nll_loss" else (0,)
        fn = torch_backward(getattr(torch.nn.functional, name, None) if torch else None, args, diff)
    else:
        fn = lambda: getattr(fl, name)(*args, grad=True)  # noqa: E731
    run(benchmark, f"{loss} n={SMALL} float32 value+grad", impl, fn)
