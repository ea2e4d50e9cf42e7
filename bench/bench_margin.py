"""Margin and ranking losses, value and gradient: fastloss vs torch forward+backward vs
NumPy. multi_margin_loss at the issue's N=65536, C=1000; elementwise ones on 4M
elements; the set losses at sizes where torch's kernels take about a second."""
import numpy as np
import pytest
from common import IMPLS, rng, run, torch, torch_backward

import fastloss as fl


def _signs(g, shape, dtype):
    return np.where(g.random(shape) > 0.5, 1, -1).astype(dtype)


# ------------------------------------------------------------- NumPy baselines (mean reduction)

def _np_multi_margin(x, t, p=1, margin=1.0):
    n, c = x.shape
    rows = np.arange(n)
    h = margin - x[rows, t][:, None] + x
    h[rows, t] = 0
    h = np.maximum(h, 0)
    loss = (h if p == 1 else h * h).sum() / (n * c)
    g = ((h > 0) if p == 1 else 2 * h).astype(x.dtype) / (n * c)
    g[rows, t] = -g.sum(axis=1)
    return loss, g


def _np_crammer_singer(x, t, margin=1.0):
    n = x.shape[0]
    rows = np.arange(n)
    other = x.copy()
    other[rows, t] = -np.inf
    j = other.argmax(axis=1)
    h = margin - x[rows, t] + other[rows, j]
    g = np.zeros_like(x)
    active = (h > 0) / n
    g[rows, j] = active
    g[rows, t] = -active
    return np.maximum(h, 0).mean(), g


def _np_multilabel_margin(x, t):
    n, c = x.shape
    is_target = np.zeros((n, c), bool)
    valid = np.cumsum(t < 0, axis=1) == 0
    rows = np.repeat(np.arange(n), c).reshape(n, c)
    is_target[rows[valid], t[valid]] = True
    tx = np.where(valid, np.take_along_axis(x, np.where(valid, t, 0), axis=1), np.nan)  # (n, c) target scores
    h = 1 - tx[:, :, None] + x[:, None, :]  # (n, targets, classes)
    h = np.where(valid[:, :, None] & ~is_target[:, None, :] & (h > 0), h, 0)
    g = (h > 0).astype(x.dtype) / (n * c)
    grad = g.sum(axis=1)
    np.add.at(grad, (rows[valid], t[valid]), -g.sum(axis=2)[valid])
    return h.sum() / (n * c), grad


def _np_soft_margin(x, y):
    v = -y * x
    loss = np.logaddexp(0, v).mean()
    return loss, -y / (1 + np.exp(-v)) / x.size


def _np_multilabel_soft_margin(x, y):
    loss = (np.logaddexp(0, x) - y * x).mean()
    return loss, (1 / (1 + np.exp(-x)) - y) / x.size


def _np_margin_ranking(x1, x2, y, margin=0.0):
    v = margin - y * (x1 - x2)
    g = np.where(v >= 0, -y, 0) / x1.size
    return np.maximum(v, 0).mean(), (g, -g)


def _np_hinge_embedding(x, y, margin=1.0):
    v = margin - x
    loss = np.where(y == 1, x, np.maximum(v, 0)).mean()
    return loss, np.where(y == 1, 1.0, np.where(v >= 0, -1.0, 0.0)).astype(x.dtype) / x.size


def _np_binary_hinge(f, y, margin=1.0):
    v = margin - y * f
    return np.maximum(v, 0).mean(), np.where(v > 0, -y, 0) / f.size


def _cases():
    g = rng()
    f32 = np.float32
    big = (g.standard_normal((65536, 1000)) * 2).astype(f32)
    classes = g.integers(0, 1000, 65536)
    flat = g.standard_normal(1 << 22).astype(f32)
    flat2 = g.standard_normal(1 << 22).astype(f32)
    signs = _signs(g, 1 << 22, f32)
    ml_x = g.standard_normal((4096, 100)).astype(f32)
    ml_t = np.full((4096, 100), -1)
    for i in range(4096):
        ml_t[i, :5] = g.choice(100, 5, replace=False)
    mls_x = g.standard_normal((4096, 1024)).astype(f32)
    mls_y = (g.random((4096, 1024)) > 0.5).astype(f32)
    return {
        "multi_margin_loss N=65536 C=1000": ((big, classes), _np_multi_margin, "multi_margin_loss", (0,)),
        "hinge_loss crammer-singer N=65536 C=1000": ((big, classes), _np_crammer_singer, "hinge_loss", None),
        "multilabel_margin_loss N=4096 C=100": ((ml_x, ml_t), _np_multilabel_margin, "multilabel_margin_loss", (0,)),
        "multilabel_soft_margin_loss N=4096 C=1024": ((mls_x, mls_y), _np_multilabel_soft_margin,
                                                       "multilabel_soft_margin_loss", (0,)),
        "soft_margin_loss n=4M": ((flat, signs), _np_soft_margin, "soft_margin_loss", (0,)),
        "margin_ranking_loss n=4M": ((flat, flat2, signs), _np_margin_ranking, "margin_ranking_loss", (0, 1)),
        "hinge_embedding_loss n=4M": ((flat, signs), _np_hinge_embedding, "hinge_embedding_loss", (0,)),
        "hinge_loss binary n=4M": ((flat, signs), _np_binary_hinge, "hinge_loss", None),
    }


CASES = _cases()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def bench_margin(benchmark, impl, case):
    args, numpy_fn, name, diff = CASES[case]
    if impl == "numpy":
        fn = lambda: numpy_fn(*args)  # noqa: E731
    elif impl == "torch":
        if torch is not None and diff is None:
            pytest.skip(f"torch has no {case}")
        fn = torch_backward(getattr(torch.nn.functional, name, None) if torch else None, args, diff)
    else:
        fn = lambda: getattr(fl, name)(*args, grad=True)  # noqa: E731
    run(benchmark, f"{case} float32 value+grad", impl, fn)
