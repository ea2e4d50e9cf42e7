"""Embedding losses against torch autograd: torch's own cosine_embedding_loss and
triplet_margin_loss, and a torch composition of Hadsell et al.'s contrastive loss.

Expected numbers come from torch 2.13 CPU (``torch_value_and_grad``) on the same arrays.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from conftest import assert_close, check_against_torch, torch_value_and_grad
from conftest import grad_output_for as _go

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]


def _check(fl_fn, torch_fn, inputs, dtype, diff, grad_output=None, kwargs=None, scale=1.0):
    check_against_torch(fl_fn, torch_fn, inputs, dtype, diff, grad_output, kwargs, scale=scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.4, -0.3])
def test_cosine_embedding(rng, dtype, reduction, margin):
    a = rng.standard_normal((10, 6)).astype(dtype)
    b = rng.standard_normal((10, 6)).astype(dtype)
    y = np.where(rng.random(10) > 0.5, 1, -1).astype(dtype)
    _check(fl.cosine_embedding_loss, F.cosine_embedding_loss, [a, b, y], dtype, (0, 1),
           _go(rng, reduction, 10), dict(margin=margin, reduction=reduction))


def test_cosine_embedding_zero_vector(rng):
    """A zero vector: torch's 1e-12 on the squared norms keeps value and gradient finite.
    The gradient is of order 1e6 there, so the comparison is relative to that size."""
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal((3, 4))
    b[0] = 0
    y = np.array([1.0, -1.0, 1.0])
    expected, (ea, eb) = torch_value_and_grad(F.cosine_embedding_loss, [a, b, y], diff=(0, 1), reduction="none")
    value, (ga, gb) = fl.cosine_embedding_loss(a, b, y, reduction="none", grad=True)
    assert np.isfinite(ga).all() and np.isfinite(gb).all()
    assert_close(value, expected, np.float64)
    np.testing.assert_allclose(ga, ea, rtol=1e-8, atol=1e-8 * np.abs(ea).max())
    np.testing.assert_allclose(gb, eb, rtol=1e-8, atol=1e-8 * np.abs(eb).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_embedding_unbatched(rng, dtype):
    a, b = (rng.standard_normal(5).astype(dtype) for _ in range(2))
    _check(fl.cosine_embedding_loss, F.cosine_embedding_loss, [a, b, np.array(-1.0, dtype)], dtype, (0, 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, 1.5])
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin(rng, dtype, reduction, p, swap):
    a, pos, neg = (rng.standard_normal((12, 5)).astype(dtype) for _ in range(3))
    pos[0] = a[0]  # d(a, p) = ||eps||_p only: eps as torch adds it to the difference
    kwargs = dict(margin=1.5, p=p, eps=1e-3, swap=swap, reduction=reduction)
    _check(fl.triplet_margin_loss, F.triplet_margin_loss, [a, pos, neg], dtype, (0, 1, 2),
           _go(rng, reduction, 12), kwargs, scale=5.0 if p == 1.5 else 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_triplet_margin_unbatched_defaults(rng, dtype):
    a, pos, neg = (rng.standard_normal(7).astype(dtype) for _ in range(3))
    _check(fl.triplet_margin_loss, F.triplet_margin_loss, [a, pos, neg], dtype, (0, 1, 2))


def _contrastive_torch(x1, x2, y, margin=1.0, reduction="mean"):
    """Hadsell et al. 2006 with y = 1 similar: y d^2 + (1 - y) max(0, margin - d)^2."""
    d = torch.linalg.vector_norm(x1 - x2, dim=-1)
    loss = y * d ** 2 + (1 - y) * torch.clamp(margin - d, min=0) ** 2
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 4.0])
def test_contrastive(rng, dtype, reduction, margin):
    x1, x2 = (rng.standard_normal((11, 4)).astype(dtype) for _ in range(2))
    y = (rng.random(11) > 0.5).astype(dtype)
    _check(fl.contrastive_loss, _contrastive_torch, [x1, x2, y], dtype, (0, 1), _go(rng, reduction, 11),
           dict(margin=margin, reduction=reduction))


def test_contrastive_identical_pair_has_zero_gradient():
    """d = 0: the gradient of d is taken as 0 (torch's norm backward gives 0 there too)."""
    x = np.ones((2, 3))
    value, (g1, g2) = fl.contrastive_loss(x, x, np.array([1.0, 0.0]), margin=2.0, reduction="none", grad=True)
    np.testing.assert_array_equal(value, [0.0, 4.0])
    assert not g1.any() and not g2.any()


def test_grad_out_and_layouts(rng):
    a = rng.standard_normal((6, 8))[:, ::2]
    p = np.asfortranarray(rng.standard_normal((6, 4)))
    n = rng.standard_normal((6, 4))
    expected, expected_grads = torch_value_and_grad(F.triplet_margin_loss, [a, p, n], diff=(0, 1, 2))
    out = np.empty((6, 4))
    value, grads = fl.triplet_margin_loss(a, p, n, grad=True, grad_out=out)
    assert grads[0] is out
    assert_close(value, expected, np.float64)
    for g, e in zip(grads, expected_grads):
        assert_close(g, e, np.float64)


def test_criterion_objects(rng):
    a, b, c = (rng.standard_normal((4, 3)) for _ in range(3))
    y = np.array([1.0, -1.0, 1.0, -1.0])
    assert fl.CosineEmbeddingLoss(margin=0.2)(a, b, y) == fl.cosine_embedding_loss(a, b, y, 0.2)
    assert fl.TripletMarginLoss(p=1.0, swap=True)(a, b, c) == fl.triplet_margin_loss(a, b, c, p=1.0, swap=True)
    value, grads = fl.ContrastiveLoss(margin=2.0).value_and_grad(a, b, y > 0)
    assert value == fl.contrastive_loss(a, b, y > 0, 2.0) and len(grads) == 2


_a = np.zeros((3, 4))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: fl.cosine_embedding_loss(_a, _a, np.array([1.0, 0.0, 1.0])), ValueError, "only -1 and 1"),
    (lambda: fl.cosine_embedding_loss(_a, _a, np.ones(4)), ValueError, "target has shape"),
    (lambda: fl.cosine_embedding_loss(_a, np.zeros((3, 5)), np.ones(3)), ValueError, "input2 has shape"),
    (lambda: fl.contrastive_loss(_a, _a, np.array([1.0, -1.0, 0.0])), ValueError, "only 0 and 1"),
    (lambda: fl.triplet_margin_loss(_a, _a, _a, p=0.0), ValueError, "p must be >"),
    (lambda: fl.triplet_margin_loss(_a, _a, np.zeros((2, 4))), ValueError, "negative has shape"),
    (lambda: fl.triplet_margin_loss(_a, _a, _a, reduction="batchmean"), ValueError, "reduction"),
    (lambda: fl.triplet_margin_loss(np.zeros((2, 2, 2)), _a, _a), ValueError, "anchor must be"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
