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
    calls += _rest_warmup_calls(rng, dtype)
    return calls


def _rest_warmup_calls(rng, dtype):
    """Regression, margin, embedding losses and the extras (CosFace, anchor, Dice)."""
    from . import embedding as em
    from . import extras as ex
    from . import margin as mg
    from . import regression as rg

    x = rng.standard_normal((4, 3)).astype(dtype)
    y = rng.standard_normal((4, 3)).astype(dtype)
    v = (rng.random((4, 3)) + 0.5).astype(dtype)
    sign = np.where(rng.random((4, 3)) > 0.5, 1, -1).astype(dtype)
    t = rng.integers(0, 3, 4)
    row_sign = sign[:, 0]
    calls = []
    for grad in (False, True):
        calls += [
            lambda: rg.l1_loss(x, y, grad=grad),
            lambda: rg.mse_loss(x, y, grad=grad),
            lambda: rg.smooth_l1_loss(x, y, grad=grad),
            lambda: rg.huber_loss(x, y, grad=grad),
            lambda: rg.poisson_nll_loss(x, v, grad=grad),
            lambda: rg.gaussian_nll_loss(x, y, v, grad=grad),
            lambda: mg.margin_ranking_loss(x, y, sign, grad=grad),
            lambda: mg.hinge_embedding_loss(x, sign, grad=grad),
            lambda: mg.soft_margin_loss(x, sign, grad=grad),
            lambda: mg.multilabel_soft_margin_loss(x, v > 1, grad=grad),
            lambda: mg.multi_margin_loss(x, t, grad=grad),
            lambda: mg.multilabel_margin_loss(x, np.stack([t, t, -np.ones_like(t)], 1), grad=grad),
            lambda: mg.hinge_loss(x, t, grad=grad),
            lambda: mg.hinge_loss(x[:, 0], row_sign, grad=grad),
            lambda: em.cosine_embedding_loss(x, y, row_sign, grad=grad),
            lambda: em.triplet_margin_loss(x, y, v, grad=grad),
            lambda: em.contrastive_loss(x, y, row_sign > 0, grad=grad),
            lambda: ex.large_margin_cosine_loss(x, y, t, grad=grad),
            lambda: ex.anchor_loss(x, t, grad=grad),
            lambda: ex.dice_loss(x, v > 1, grad=grad),
            lambda: ex.dice_loss(x[:, :, None], t[:, None], grad=grad),
        ]
    return calls
