"""CTC loss, forward+gradient from logits, at the issue's four sizes (float32, full lengths).

* torch: ``F.ctc_loss(log_softmax(z), ...)`` on a leaf, then ``backward()``.
* fastloss: one ``ctc_loss(z, ..., from_logits=True, grad=True)`` call.
* numpy: a log-space forward-backward vectorised over the batch and the extended
  labels (a Python loop over frames only: each frame depends on the previous one),
  ``np.logaddexp`` for the log-sums, the emissions gathered once with
  ``take_along_axis`` and the posteriors scattered into the softmax gradient with
  ``np.add.at``.
"""
import numpy as np
import pytest
from common import IMPLS, _torch, rng, run

import fastloss as fl

SIZES = [(150, 32, 29, 40), (150, 32, 5000, 40), (700, 32, 29, 100), (1500, 2, 32, 300)]


def _inputs(n_time, n, n_classes, n_labels):
    r = rng()
    z = r.standard_normal((n_time, n, n_classes)).astype(np.float32)
    targets = r.integers(1, n_classes, (n, n_labels))
    return z, targets, np.full(n, n_time), np.full(n, n_labels)


def numpy_ctc_from_logits(z, targets, blank=0):
    """Mean CTC loss of (T, N, C) logits with every sample using all T frames and all
    its labels, and its gradient with respect to the logits."""
    n_time, n, n_classes = z.shape
    n_labels = targets.shape[1]
    width = 2 * n_labels + 1
    neg_inf = np.float32(-np.inf)
    top = z.max(axis=2, keepdims=True)
    shifted = z - top
    softmax = np.exp(shifted)
    total = softmax.sum(axis=2, keepdims=True)
    softmax /= total
    log_probs = shifted - np.log(total)
    ext = np.full((n, width), blank)
    ext[:, 1::2] = targets
    skip = np.zeros((n, width), bool)
    skip[:, 3::2] = targets[:, 1:] != targets[:, :-1]
    emit = np.take_along_axis(log_probs, np.broadcast_to(ext, (n_time, n, width)), axis=2)
    alpha = np.full((n_time, n, width), neg_inf, np.float32)
    beta = np.full((n_time, n, width), neg_inf, np.float32)
    alpha[0, :, :2] = emit[0, :, :2]
    beta[-1, :, -2:] = emit[-1, :, -2:]
    blocked = np.full((n, width), neg_inf, np.float32)
    for t in range(1, n_time):
        prev = alpha[t - 1]
        one = np.concatenate([blocked[:, :1], prev[:, :-1]], axis=1)
        two = np.where(skip, np.concatenate([blocked[:, :2], prev[:, :-2]], axis=1), neg_inf)
        alpha[t] = np.logaddexp(np.logaddexp(prev, one), two) + emit[t]
    skip_back = np.concatenate([skip[:, 2:], np.zeros((n, 2), bool)], axis=1)
    for t in range(n_time - 2, -1, -1):
        nxt = beta[t + 1]
        one = np.concatenate([nxt[:, 1:], blocked[:, :1]], axis=1)
        two = np.where(skip_back, np.concatenate([nxt[:, 2:], blocked[:, :2]], axis=1), neg_inf)
        beta[t] = np.logaddexp(np.logaddexp(nxt, one), two) + emit[t]
    nll = -np.logaddexp(alpha[-1, :, -1], alpha[-1, :, -2])
    scale = np.float32(1.0 / (n * max(n_labels, 1)))
    posterior = np.exp(alpha + beta - emit + nll[None, :, None]) * scale
    grad = softmax
    grad *= scale
    frames, batch = np.meshgrid(np.arange(n_time), np.arange(n), indexing="ij")
    np.add.at(grad, (frames[:, :, None], batch[:, :, None], ext[None]), -posterior)
    return (nll / max(n_labels, 1)).mean(), grad


def _impl(impl, z, targets, il, tl):
    if impl == "numpy":
        return lambda: numpy_ctc_from_logits(z, targets)
    if impl == "fastloss":
        return lambda: fl.ctc_loss(z, targets, il, tl, from_logits=True, grad=True)
    torch = _torch()
    leaf = torch.from_numpy(z).clone().requires_grad_(True)
    tt, ti, tl_ = torch.from_numpy(targets), torch.from_numpy(il), torch.from_numpy(tl)

    def run_torch():
        leaf.grad = None
        loss = torch.nn.functional.ctc_loss(leaf.log_softmax(2), tt, ti, tl_)
        loss.backward()
        return loss, leaf.grad

    return run_torch


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("size", SIZES, ids=[f"T{t}-N{n}-C{c}-S{s}" for t, n, c, s in SIZES])
def bench_ctc(benchmark, impl, size):
    if impl == "torch" and _torch() is None:
        pytest.skip("torch not installed")
    z, targets, il, tl = _inputs(*size)
    t, n, c, s = size
    run(benchmark, f"ctc_loss T={t} N={n} C={c} S={s} float32 forward+grad", impl, _impl(impl, z, targets, il, tl))
