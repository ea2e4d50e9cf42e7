"""Tiny example calls of every public loss, for :func:`fastloss.warmup`.

Each family adds its own calls here, so that warming up covers every kernel.
"""
import numpy as np


def warmup_calls(rng, dtype):
    from . import classification as cl
    from . import ctc
    from . import triplet as tr

    x = rng.standard_normal((4, 3)).astype(dtype)
    t = rng.integers(0, 3, 4)
    p = (rng.random((4, 3)) * 0.98 + 0.01).astype(dtype)
    calls = []
    for grad in (False, True):
        calls += [
            lambda: cl.cross_entropy(x, t, grad=grad),
            lambda: cl.cross_entropy(x, p, grad=grad),
            lambda: cl.nll_loss(x, t, grad=grad),
            lambda: cl.binary_cross_entropy(p, p, grad=grad),
            lambda: cl.binary_cross_entropy_with_logits(x, p, grad=grad),
            lambda: cl.kl_div(x, p, grad=grad),
            lambda: cl.sigmoid_focal_loss(x, p, grad=grad),
        ]
    e = rng.standard_normal((6, 3)).astype(dtype)
    labels = np.array([0, 0, 1, 1, 2, 2])
    calls.append(lambda: tr.mine_triplets(e, labels))
    for strategy in tr.STRATEGIES:
        calls.append(lambda strategy=strategy: tr.batch_triplet_loss(e, labels, strategy=strategy))
        calls.append(lambda strategy=strategy: tr.batch_triplet_loss(e, labels, strategy=strategy, grad=True))
    z = rng.standard_normal((3, 2, 3)).astype(dtype)
    ctc_targets, ctc_lengths = np.array([[1, 2], [2, 2]]), np.array([2, 1])
    calls += [
        lambda: ctc.ctc_loss(z, ctc_targets, [3, 3], ctc_lengths, from_logits=True, grad=True),
        lambda: ctc.ctc_forced_align(z.transpose(1, 0, 2), ctc_targets, [3, 3], ctc_lengths),
    ]
    return calls
