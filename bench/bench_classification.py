"""Classification losses: fastloss against vectorised NumPy and torch CPU, same inputs.

NumPy baselines are written as a NumPy expert would: stable log-sum-exp, in-place
ufuncs into preallocated buffers, one fancy-index gather. torch forward+backward is
``loss.backward()`` on a leaf that requires grad; fastloss forward+gradient is one
``grad=True`` call.
"""
import numpy as np
import pytest
from common import IMPLS, logits, rng, run, torch

import fastloss as fl

CE_CASES = [(65536, 1000, "float32"), (65536, 1000, "float64"), (32, 10, "float32")]


def numpy_cross_entropy(x, t, grad):
    n = x.shape[0]
    rows = np.arange(n)
    m = x.max(axis=1, keepdims=True)
    e = np.subtract(x, m)
    np.exp(e, out=e)
    s = e.sum(axis=1, keepdims=True)
    loss = (np.log(s[:, 0]) + m[:, 0] - x[rows, t]).mean()
    if not grad:
        return loss
    e /= s * n
    e[rows, t] -= 1.0 / n
    return loss, e


def _cross_entropy_fn(impl, x, t, grad):
    if impl == "numpy":
        return lambda: numpy_cross_entropy(x, t, grad)
    if impl == "fastloss":
        return lambda: fl.cross_entropy(x, t, grad=grad)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    if not grad:
        return lambda: torch.nn.functional.cross_entropy(xt, tt)
    leaf = xt.clone().requires_grad_(True)

    def forward_backward():
        leaf.grad = None
        loss = torch.nn.functional.cross_entropy(leaf, tt)
        loss.backward()
        return loss, leaf.grad

    return forward_backward


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", ["forward", "forward+grad"])
@pytest.mark.parametrize("n,c,dtype", CE_CASES, ids=[f"{n}x{c}-{d}" for n, c, d in CE_CASES])
def bench_cross_entropy(benchmark, impl, mode, n, c, dtype):
    x = logits(n, c, dtype)
    t = rng(1).integers(0, c, n)
    run(benchmark, f"cross_entropy {n}x{c} {dtype} {mode}", impl, _cross_entropy_fn(impl, x, t, mode != "forward"))


def numpy_focal(x, t, gamma):
    n = x.shape[0]
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=1)
    logp_t = x[np.arange(n), t] - m[:, 0] - np.log(s)
    return (-(-np.expm1(logp_t)) ** gamma * logp_t).mean()


@pytest.mark.parametrize("impl", IMPLS)
def bench_focal_forward(benchmark, impl):
    n, c = 16384, 1000
    x = logits(n, c, "float32")
    t = rng(1).integers(0, c, n)
    if impl == "numpy":
        fn = lambda: numpy_focal(x, t, 2.0)  # noqa: E731
    elif impl == "fastloss":
        fn = lambda: fl.focal_loss(x, t, gamma=2.0)  # noqa: E731
    else:
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)

        def fn():
            logp_t = torch.log_softmax(xt, 1).gather(1, tt[:, None])[:, 0]
            return (-(1 - logp_t.exp()) ** 2 * logp_t).mean()
    run(benchmark, f"focal_loss {n}x{c} float32 forward", impl, fn)


@pytest.mark.parametrize("impl", IMPLS)
def bench_bce_with_logits_forward_grad(benchmark, impl):
    shape = (4096, 1024)
    x = logits(*shape, "float32")
    y = (rng(2).random(shape) < 0.3).astype(np.float32)
    if impl == "numpy":
        def fn():
            loss = (np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))).mean()
            sig = 1 / (1 + np.exp(-x))
            return loss, (sig - y) / x.size
    elif impl == "fastloss":
        fn = lambda: fl.binary_cross_entropy_with_logits(x, y, grad=True)  # noqa: E731
    else:
        leaf = torch.from_numpy(x).clone().requires_grad_(True)
        yt = torch.from_numpy(y)

        def fn():
            leaf.grad = None
            loss = torch.nn.functional.binary_cross_entropy_with_logits(leaf, yt)
            loss.backward()
            return loss
    run(benchmark, f"bce_with_logits {shape[0]}x{shape[1]} float32 forward+grad", impl, fn)
