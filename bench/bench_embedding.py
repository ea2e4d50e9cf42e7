"""Embedding losses, value and gradients of every input: fastloss vs torch
forward+backward vs NumPy, N=65536 rows of D=128 float32."""
import numpy as np
import pytest
from common import IMPLS, rng, run, torch, torch_backward

import fastloss as fl

N, D = 65536, 128


def _np_cosine(a, b, y, margin=0.0):
    eps = 1e-12
    dot = np.einsum("ij,ij->i", a, b)
    ma = np.einsum("ij,ij->i", a, a) + eps
    mb = np.einsum("ij,ij->i", b, b) + eps
    den = np.sqrt(ma * mb)
    cos = dot / den
    pos = y == 1
    loss = np.where(pos, 1 - cos, np.maximum(cos - margin, 0)).mean()
    coef = np.where(pos, -1.0, np.where(cos - margin >= 0, 1.0, 0.0)).astype(a.dtype) / a.shape[0]
    ga = coef[:, None] * (b / den[:, None] - (cos / ma)[:, None] * a)
    gb = coef[:, None] * (a / den[:, None] - (cos / mb)[:, None] * b)
    return loss, (ga, gb)


def _np_triplet(a, p, n, margin=1.0, eps=1e-6):
    dp = a - p + eps
    dn = a - n + eps
    d_pos = np.sqrt(np.einsum("ij,ij->i", dp, dp))
    d_neg = np.sqrt(np.einsum("ij,ij->i", dn, dn))
    h = margin + d_pos - d_neg
    active = (h >= 0) / a.shape[0]
    gp = (active / d_pos)[:, None] * dp
    gn = (active / d_neg)[:, None] * dn
    return np.maximum(h, 0).mean(), (gp - gn, -gp, gn)


def _np_contrastive(x1, x2, y, margin=1.0):
    diff = x1 - x2
    d = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    gap = np.maximum(margin - d, 0)
    loss = (y * d * d + (1 - y) * gap * gap).mean()
    coef = 2 * (y * d - (1 - y) * gap) / np.where(d > 0, d, 1) / x1.shape[0]
    g = coef[:, None] * diff
    return loss, (g, -g)


def _torch_contrastive(x1, x2, y, margin=1.0):
    d = torch.linalg.vector_norm(x1 - x2, dim=-1)
    return (y * d ** 2 + (1 - y) * torch.clamp(margin - d, min=0) ** 2).mean()


def _cases():
    g = rng()
    a, b, c = (g.standard_normal((N, D)).astype(np.float32) for _ in range(3))
    signs = np.where(g.random(N) > 0.5, 1, -1).astype(np.float32)
    similar = (signs > 0).astype(np.float32)
    nnf = torch.nn.functional if torch is not None else None
    return {
        "cosine_embedding_loss": ((a, b, signs), _np_cosine, nnf and nnf.cosine_embedding_loss, (0, 1)),
        "triplet_margin_loss": ((a, b, c), _np_triplet, nnf and nnf.triplet_margin_loss, (0, 1, 2)),
        "contrastive_loss": ((a, b, similar), _np_contrastive, _torch_contrastive, (0, 1)),
    }


CASES = _cases()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("loss", list(CASES))
def bench_embedding(benchmark, impl, loss):
    args, numpy_fn, torch_fn, diff = CASES[loss]
    if impl == "numpy":
        fn = lambda: numpy_fn(*args)  # noqa: E731
    elif impl == "torch":
        fn = torch_backward(torch_fn, args, diff)
    else:
        fn = lambda: getattr(fl, loss)(*args, grad=True)  # noqa: E731
    run(benchmark, f"{loss} N={N} D={D} float32 value+grad", impl, fn)
