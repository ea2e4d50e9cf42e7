"""Margin and ranking losses against torch autograd, and the hinge losses against
``sklearn.metrics.hinge_loss`` (values) and a torch-composed reference (gradients).

Expected numbers come from torch 2.13 CPU (``torch_value_and_grad``) on the same
arrays, or from scikit-learn where named.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import hinge_loss as sklearn_hinge_loss

import fastloss as fl
from conftest import assert_close, check_against_torch
from conftest import grad_output_for as _go

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]


def _signs(rng, shape, dtype):
    return np.where(rng.random(shape) > 0.5, 1, -1).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_ranking(rng, dtype, reduction, margin):
    x1 = rng.standard_normal(12).astype(dtype)
    x2 = rng.standard_normal(12).astype(dtype)
    x2[0] = x1[0] + margin  # the hinge exactly at 0 for y = 1: torch's clamp_min passes the gradient
    y = _signs(rng, 12, dtype)
    y[0] = 1
    check_against_torch(fl.margin_ranking_loss, F.margin_ranking_loss, [x1, x2, y], dtype, diff=(0, 1),
           grad_output=_go(rng, reduction, 12), fl_kwargs=dict(margin=margin, reduction=reduction))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_hinge_embedding(rng, dtype, reduction, margin):
    x = (rng.standard_normal((5, 4)) * 2).astype(dtype)
    y = _signs(rng, (5, 4), dtype)
    check_against_torch(fl.hinge_embedding_loss, F.hinge_embedding_loss, [x, y], dtype,
           grad_output=_go(rng, reduction, (5, 4)), fl_kwargs=dict(margin=margin, reduction=reduction))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_margin(rng, dtype, reduction):
    x = (rng.standard_normal((6, 3)) * 3).astype(dtype)
    y = _signs(rng, (6, 3), dtype)
    check_against_torch(fl.soft_margin_loss, F.soft_margin_loss, [x, y], dtype, grad_output=_go(rng, reduction, (6, 3)),
           fl_kwargs=dict(reduction=reduction))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(7, 5), (5,)], ids=["NC", "C"])
def test_multilabel_soft_margin(rng, dtype, reduction, weighted, shape):
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    y = (rng.random(shape) > 0.5).astype(dtype)
    w = (rng.random(shape[-1]) + 0.3).astype(dtype) if weighted else None
    check_against_torch(fl.multilabel_soft_margin_loss, F.multilabel_soft_margin_loss, [x, y], dtype,
           grad_output=_go(rng, reduction, shape[:-1]), fl_kwargs=dict(weight=w, reduction=reduction))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.25, -0.5])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin(rng, dtype, reduction, p, margin, weighted):
    x = rng.standard_normal((9, 6)).astype(dtype)
    t = rng.integers(0, 6, 9)
    w = (rng.random(6) + 0.3).astype(dtype) if weighted else None
    check_against_torch(fl.multi_margin_loss, F.multi_margin_loss, [x, t], dtype, grad_output=_go(rng, reduction, 9),
           fl_kwargs=dict(p=p, margin=margin, weight=w, reduction=reduction))


@pytest.mark.parametrize("dtype", DTYPES)
def test_multi_margin_unbatched_and_one_class(rng, dtype):
    x = rng.standard_normal(5).astype(dtype)
    check_against_torch(fl.multi_margin_loss, F.multi_margin_loss, [x, np.array(3)], dtype)
    one = rng.standard_normal((4, 1)).astype(dtype)
    check_against_torch(fl.multi_margin_loss, F.multi_margin_loss, [one, np.zeros(4, np.int64)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin(rng, dtype, reduction):
    n, c = 8, 6
    x = rng.standard_normal((n, c)).astype(dtype)
    t = np.full((n, c), -1)
    for i in range(n):
        k = i % (c + 1)  # 0 targets up to all C (no -1 at all)
        t[i, :k] = rng.choice(c, k, replace=False)
    t[1, 3:] = rng.integers(0, c, c - 3)  # entries after the -1 are ignored
    t[1, 2] = -1
    check_against_torch(fl.multilabel_margin_loss, F.multilabel_margin_loss, [x, t], dtype, grad_output=_go(rng, reduction, n),
           fl_kwargs=dict(reduction=reduction))
    check_against_torch(fl.multilabel_margin_loss, F.multilabel_margin_loss, [x[2], t[2]], dtype)


def _crammer_singer_torch(x, t, margin=1.0, reduction="mean"):
    """A torch transcription of sklearn.metrics.hinge_loss's multi-class branch (for gradients)."""
    true = x.gather(1, t[:, None])[:, 0]
    others = x.masked_fill(torch.nn.functional.one_hot(t, x.shape[1]).bool(), -torch.inf).max(dim=1).values
    loss = torch.clamp(margin - true + others, min=0)
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 0.4])
def test_hinge_loss_crammer_singer(rng, dtype, reduction, margin):
    x = rng.standard_normal((20, 4)).astype(dtype)
    t = rng.integers(0, 4, 20)
    check_against_torch(fl.hinge_loss, _crammer_singer_torch, [x, t], dtype, grad_output=_go(rng, reduction, 20),
           fl_kwargs=dict(margin=margin, reduction=reduction))
    # The value against scikit-learn itself (margin 1, mean).
    assert_close(fl.hinge_loss(x, t), sklearn_hinge_loss(t, x.astype(np.float64), labels=np.arange(4)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hinge_loss_binary(rng, dtype, reduction):
    f = (rng.standard_normal(30) * 2).astype(dtype)
    y = _signs(rng, 30, dtype)

    def reference(f, y, margin=1.0, reduction="mean"):
        loss = torch.clamp(margin - y * f, min=0)
        return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]

    check_against_torch(fl.hinge_loss, reference, [f, y], dtype, grad_output=_go(rng, reduction, 30),
           fl_kwargs=dict(margin=0.8, reduction=reduction))
    assert_close(fl.hinge_loss(f, y), sklearn_hinge_loss(y, f.astype(np.float64)), dtype)


def test_soft_margin_does_not_overflow():
    """Where torch's log1p(exp(-y x)) overflows in float32, the value is the exact -y x."""
    x = np.array([-200.0, 200.0], np.float32)
    y = np.array([1.0, -1.0], np.float32)
    value, grad = fl.soft_margin_loss(x, y, reduction="none", grad=True)
    np.testing.assert_allclose(value, [200.0, 200.0])
    np.testing.assert_allclose(grad, [-1.0, 1.0])


def test_criterion_objects(rng):
    x = rng.standard_normal((4, 3))
    t = rng.integers(0, 3, 4)
    s = _signs(rng, (4, 3), np.float64)
    assert fl.MultiMarginLoss(p=2, margin=0.5)(x, t) == fl.multi_margin_loss(x, t, 2, 0.5)
    assert fl.HingeLoss(margin=0.5)(x, t) == fl.hinge_loss(x, t, 0.5)
    assert fl.SoftMarginLoss(reduction="sum")(x, s) == fl.soft_margin_loss(x, s, reduction="sum")
    assert fl.HingeEmbeddingLoss(margin=2.0)(x, s) == fl.hinge_embedding_loss(x, s, 2.0)
    assert fl.MultiLabelSoftMarginLoss()(x, s > 0) == fl.multilabel_soft_margin_loss(x, s > 0)
    ml = np.stack([t, -np.ones_like(t), t], 1)
    assert fl.MultiLabelMarginLoss()(x, ml) == fl.multilabel_margin_loss(x, ml)
    value, (g1, g2) = fl.MarginRankingLoss(margin=0.1).value_and_grad(x[:, 0], x[:, 1], s[:, 0])
    assert value == fl.margin_ranking_loss(x[:, 0], x[:, 1], s[:, 0], 0.1) and g2.shape == (4,)


_x = np.zeros((3, 4))
_t = np.array([0, 1, 2])


@pytest.mark.parametrize("call, exc, match", [
    (lambda: fl.margin_ranking_loss(_x[0], _x[1], np.array([1, 0, 1, 1])), ValueError, "only -1 and 1"),
    (lambda: fl.hinge_embedding_loss(_x, np.full((3, 4), 2.0)), ValueError, "only -1 and 1"),
    (lambda: fl.soft_margin_loss(_x, np.zeros((3, 4))), ValueError, "only -1 and 1"),
    (lambda: fl.hinge_loss(_x[0], np.array([1, 1, 0, 1])), ValueError, "only -1 and 1"),
    (lambda: fl.multi_margin_loss(_x, _t, p=3), ValueError, "p must be 1 or 2"),
    (lambda: fl.multi_margin_loss(_x, np.array([0, 4, 1])), ValueError, "class index 4"),
    (lambda: fl.multi_margin_loss(_x, _t, weight=np.ones(3)), ValueError, "weight must have shape"),
    (lambda: fl.multi_margin_loss(_x, _t.astype(float)), TypeError, "integer class indices"),
    (lambda: fl.multilabel_margin_loss(_x, np.array([[0, 4, -1, 0]] * 3)), ValueError, "target holds 4"),
    (lambda: fl.multilabel_margin_loss(_x, np.array([[0, -2, 1, 0]] * 3)), ValueError, "target holds -2"),
    (lambda: fl.multilabel_margin_loss(_x, np.zeros((3, 3), int)), ValueError, "target has shape"),
    (lambda: fl.multilabel_soft_margin_loss(_x, np.zeros((3, 3))), ValueError, "target has shape"),
    (lambda: fl.hinge_loss(_x, _t, reduction="avg"), ValueError, "reduction"),
    (lambda: fl.hinge_loss(np.zeros((2, 2, 2)), _t), ValueError, "input must be"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
