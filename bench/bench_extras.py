"""Extras, value and gradient: fastloss vs torch (composed) forward+backward vs NumPy.
CosFace at the issue's N=65536, C=1000 (D=128); anchor loss at N=16384, C=1000; soft
Dice on 8 images of 256x256 with 4 classes, and binary."""
import numpy as np
import pytest
from common import IMPLS, rng, run, torch, torch_backward

import fastloss as fl

# ------------------------------------------------------------- NumPy baselines (mean reduction)

def _np_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _np_cosface(f, w, t, s=64.0, m=0.35):
    n = f.shape[0]
    rows = np.arange(n)
    fn_ = np.linalg.norm(f, axis=1, keepdims=True)
    wn = np.linalg.norm(w, axis=1, keepdims=True)
    fu, wu = f / fn_, w / wn
    logits = s * (fu @ wu.T)
    logits[rows, t] -= s * m
    logp = _np_log_softmax(logits)
    loss = -logp[rows, t].mean()
    g = np.exp(logp)
    g[rows, t] -= 1
    g *= s / n
    gfu, gwu = g @ wu, g.T @ fu
    gf = (gfu - fu * (fu * gfu).sum(1, keepdims=True)) / fn_
    gw = (gwu - wu * (wu * gwu).sum(1, keepdims=True)) / wn
    return loss, (gf, gw)


def _np_anchor(x, t, gamma=0.5, slack=0.05):
    n = x.shape[0]
    rows = np.arange(n)
    p = 1 / (1 + np.exp(-x))
    onehot = np.zeros_like(x)
    onehot[rows, t] = 1
    bce = np.logaddexp(0, x) - onehot * x
    q_pos = np.maximum(p[rows, t] - slack, 0)[:, None]
    base = 1 + p - q_pos
    factor = np.where(onehot > 0, 1, base ** gamma)
    loss = (factor * bce).sum() / n
    dfactor = np.where(onehot > 0, 0, gamma * base ** (gamma - 1) * p * (1 - p))
    return loss, (dfactor * bce + factor * (p - onehot)) / n


def _np_dice_multiclass(x, t, smooth=1.0):
    n, c = x.shape[:2]
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    y = (t[:, None] == np.arange(c)[None, :, None, None]).astype(x.dtype)
    inter = (p * y).sum(axis=(2, 3))
    total = p.sum(axis=(2, 3)) + y.sum(axis=(2, 3))
    a = total + smooth
    loss = (1 - ((2 * inter + smooth) / a).mean(1)).mean()
    gp = -(2 * y * a[:, :, None, None] - (2 * inter + smooth)[:, :, None, None]) / (c * n * a[:, :, None, None] ** 2)
    return loss, p * (gp - (p * gp).sum(axis=1, keepdims=True))


def _np_dice_binary(x, y, smooth=1.0):
    n = x.shape[0]
    p = 1 / (1 + np.exp(-x))
    inter = (p * y).sum(axis=(1, 2))
    a = p.sum(axis=(1, 2)) + y.sum(axis=(1, 2)) + smooth
    loss = (1 - (2 * inter + smooth) / a).mean()
    gp = -(2 * y * a[:, None, None] - (2 * inter + smooth)[:, None, None]) / (n * a[:, None, None] ** 2)
    return loss, gp * p * (1 - p)


# ------------------------------------------------------------- torch compositions

def _torch_cosface(f, w, t, s=64.0, m=0.35):
    nnf = torch.nn.functional
    cos = nnf.normalize(f) @ nnf.normalize(w).T
    logits = s * (cos - m * nnf.one_hot(t, w.shape[0]).to(cos.dtype))
    return nnf.cross_entropy(logits, t)


def _torch_anchor(x, t, gamma=0.5, slack=0.05):
    nnf = torch.nn.functional
    pt = torch.sigmoid(x)
    mask = torch.zeros_like(x).scatter_(1, t.view(-1, 1), 1.0)
    bce = nnf.binary_cross_entropy_with_logits(x, mask, reduction="none")
    pt_pos = (pt.gather(1, t.view(-1, 1)) - slack).clamp(min=0).detach()
    return (mask * bce + (1 - mask) * (1 + pt - pt_pos).pow(gamma) * bce).sum(1).mean()


def _torch_dice(x, t, smooth=1.0):
    nnf = torch.nn.functional
    if t.dtype == torch.int64:
        p = torch.softmax(x, 1)
        y = nnf.one_hot(t, x.shape[1]).movedim(-1, 1).to(x.dtype)
    else:
        p, y = torch.sigmoid(x).unsqueeze(1), t.unsqueeze(1)
    inter = (p * y).sum((2, 3))
    total = p.sum((2, 3)) + y.sum((2, 3))
    return (1 - ((2 * inter + smooth) / (total + smooth)).mean(1)).mean()


def _cases():
    g = rng()
    f32 = np.float32
    feats = g.standard_normal((65536, 128)).astype(f32)
    weights = g.standard_normal((1000, 128)).astype(f32)
    classes = g.integers(0, 1000, 65536)
    logits = (g.standard_normal((16384, 1000)) * 2).astype(f32)
    seg = g.standard_normal((8, 4, 256, 256)).astype(f32)
    seg_t = g.integers(0, 4, (8, 256, 256))
    bin_x = g.standard_normal((8, 256, 256)).astype(f32)
    bin_y = (g.random((8, 256, 256)) > 0.7).astype(f32)
    return {
        "large_margin_cosine_loss N=65536 C=1000 D=128": ((feats, weights, classes), _np_cosface, _torch_cosface,
                                                           (0, 1), "large_margin_cosine_loss"),
        "anchor_loss N=16384 C=1000": ((logits, classes[:16384]), _np_anchor, _torch_anchor, (0,), "anchor_loss"),
        "dice_loss multiclass 8x4x256x256": ((seg, seg_t), _np_dice_multiclass, _torch_dice, (0,), "dice_loss"),
        "dice_loss binary 8x256x256": ((bin_x, bin_y), _np_dice_binary, _torch_dice, (0,), "dice_loss"),
    }


CASES = _cases()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", list(CASES))
def bench_extras(benchmark, impl, case):
    args, numpy_fn, torch_fn, diff, name = CASES[case]
    if impl == "numpy":
        fn = lambda: numpy_fn(*args)  # noqa: E731
    elif impl == "torch":
        fn = torch_backward(torch_fn, args, diff)
    else:
        fn = lambda: getattr(fl, name)(*args, grad=True)  # noqa: E731
    run(benchmark, f"{case} float32 value+grad", impl, fn)
