"""Margin and ranking losses against torch autograd, and the hinge losses against
``sklearn.metrics.hinge_loss`` (values) and a torch-composed reference (gradients).

Expected numbers come from torch 2.13 CPU (``torch_value_and_grad``) on the same
arrays, or from scikit-learn where named; for NaN, inf and huge values, from torch in
float64 on the same numbers (``test_special_values``).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import hinge_loss as sklearn_hinge_loss

import fastloss as fl
from conftest import TOL, assert_close, check_against_torch, torch_value_and_grad
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
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multi_margin_bool_p(rng, dtype, reduction):
    """torch takes p=True as p=1 (torch 2.13 computes it), and refuses p=False with
    "only p == 1 and p == 2 supported": fastloss the same, with a ValueError naming p."""
    x = rng.standard_normal((9, 6)).astype(dtype)
    t = rng.integers(0, 6, 9)
    check_against_torch(fl.multi_margin_loss, F.multi_margin_loss, [x, t], dtype, grad_output=_go(rng, reduction, 9),
                        fl_kwargs=dict(p=True, reduction=reduction))
    with pytest.raises(ValueError):
        F.multi_margin_loss(torch.tensor(x), torch.tensor(t), p=False)
    with pytest.raises(ValueError, match="p must be 1 or 2, got False"):
        fl.multi_margin_loss(x, t, p=False)


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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_any_real_target(rng, dtype, reduction):
    """torch computes these three for any real target (its own module tests use {-1, 0}):
    so does fastloss, value and gradient."""
    shape = (5, 6)
    y = rng.choice([-1.0, 0.0, 1.0, 0.5, 2.0, -3.7], shape).astype(dtype)
    y.flat[:3] = rng.standard_normal(3)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    x2 = rng.standard_normal(shape).astype(dtype)
    go = _go(rng, reduction, shape)
    check_against_torch(fl.hinge_embedding_loss, F.hinge_embedding_loss, [x, y], dtype, grad_output=go,
                        fl_kwargs=dict(margin=0.7, reduction=reduction))
    check_against_torch(fl.soft_margin_loss, F.soft_margin_loss, [x, y], dtype, grad_output=go,
                        fl_kwargs=dict(reduction=reduction))
    check_against_torch(fl.margin_ranking_loss, F.margin_ranking_loss, [x, x2, y], dtype, diff=(0, 1),
                        grad_output=go, fl_kwargs=dict(margin=0.2, reduction=reduction))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("input_shape, target", [
    ((), np.array(0)), ((), np.array([0])), ((4,), np.array(2)), ((4,), np.array([2])), ((1, 4), np.array(1)),
    ((1, 1), np.array([0])), ((0, 3), np.zeros(0, np.int64)),
], ids=["scalar", "scalar-1", "C", "C-1", "1C-scalar", "11", "empty"])
def test_multi_margin_shapes(rng, dtype, reduction, input_shape, target):
    """torch's shapes: a scalar input is one class; one row takes a target of () or (1,);
    the unreduced loss has the target's shape."""
    if reduction != "none" and not np.prod(input_shape):
        pytest.skip("torch returns uninitialised memory for a reduced loss over no rows")
    x = rng.standard_normal(input_shape).astype(dtype)
    go = rng.standard_normal(target.shape) if reduction == "none" else 0.7
    check_against_torch(fl.multi_margin_loss, F.multi_margin_loss, [x, target], dtype, grad_output=go,
                        fl_kwargs=dict(reduction=reduction, margin=1.5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("input_shape, target", [
    ((), np.array(0)), ((), np.array([-1])), ((1,), np.array(0)), ((3,), np.array([2, 0, -1])),
    ((1, 3), np.array([[1, -1, 0]])),
], ids=["scalar", "scalar-1", "1-scalar", "C", "1C"])
def test_multilabel_margin_shapes(rng, dtype, reduction, input_shape, target):
    """torch's shapes: a scalar input is one class; the unreduced loss is (N,) for a 2-D
    target and a scalar otherwise."""
    x = rng.standard_normal(input_shape).astype(dtype)
    go = rng.standard_normal((1,) if target.ndim == 2 else ()) if reduction == "none" else 0.7
    check_against_torch(fl.multilabel_margin_loss, F.multilabel_margin_loss, [x, target], dtype, grad_output=go,
                        fl_kwargs=dict(reduction=reduction))


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


def test_soft_margin_overflows_where_float64_does():
    """Where torch's log1p(exp(-y x)) overflows in float32 only, the value is torch's
    float64 one, -y x; where it overflows in float64 too, inf with a NaN gradient, as
    torch's float64 (expected numbers from torch)."""
    x = np.array([-200.0, 200.0, -709.78, -709.79, -1e300])
    y = np.array([1.0, -1.0, 1.0, 1.0, 1.0])
    expected, expected_grad = torch_value_and_grad(F.soft_margin_loss, [x, y], reduction="none")
    np.testing.assert_array_equal(np.isinf(expected), [False, False, False, True, True])
    value, grad = fl.soft_margin_loss(x, y, reduction="none", grad=True)
    assert_close(value, expected, np.float64)
    assert_close(grad, expected_grad, np.float64)
    value, grad = fl.soft_margin_loss(x[:2].astype(np.float32), y[:2].astype(np.float32), reduction="none", grad=True)
    assert_close(value, expected[:2], np.float32)
    assert_close(grad, expected_grad[:2], np.float32)


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
    (lambda: fl.margin_ranking_loss(_x[0], _x[1], np.array(1.0)), ValueError, "same number of dimensions"),
    (lambda: fl.margin_ranking_loss(_x[0], _x[1, :2], np.ones(4)), ValueError, "input2 has shape .2,., which does not broadcast"),
    (lambda: fl.hinge_embedding_loss(_x, np.ones(3)), ValueError, "target of shape"),
    (lambda: fl.hinge_loss(_x[0], np.array([1, 1, 0, 1])), ValueError, "only -1 and 1"),
    (lambda: fl.hinge_loss(_x[0], np.array([1, 1, np.nan, 1])), ValueError, "only -1 and 1"),
    (lambda: fl.multi_margin_loss(_x, _t, p=3), ValueError, "p must be 1 or 2"),
    (lambda: fl.multi_margin_loss(_x, np.array([0, 4, 1])), ValueError, "class index 4"),
    (lambda: fl.multi_margin_loss(_x, _t, weight=np.ones(3)), ValueError, "weight must have shape"),
    (lambda: fl.multi_margin_loss(_x, _t.astype(float)), TypeError, "integer class indices"),
    (lambda: fl.multi_margin_loss(_x, _t[:2]), ValueError, "target has shape"),
    (lambda: fl.multi_margin_loss(_x, _t[:, None]), ValueError, "target has shape"),
    (lambda: fl.multi_margin_loss(_x[0], np.array([0, 1])), ValueError, "target has shape"),
    (lambda: fl.multi_margin_loss(np.zeros((3, 0)), _t), ValueError, "input must be"),
    (lambda: fl.multi_margin_loss(np.zeros((1, 1, 1)), np.array(0)), ValueError, "input must be"),
    (lambda: fl.multilabel_margin_loss(_x, np.array([[0, 4, -1, 0]] * 3)), ValueError, "target holds 4"),
    (lambda: fl.multilabel_margin_loss(_x, np.array([[0, -2, 1, 0]] * 3)), ValueError, "target holds -2"),
    (lambda: fl.multilabel_margin_loss(_x, np.zeros((3, 3), int)), ValueError, "target has shape"),
    (lambda: fl.multilabel_margin_loss(_x, np.zeros(4, int)), ValueError, "target has shape"),
    (lambda: fl.multilabel_margin_loss(_x[0], np.zeros(1, int)), ValueError, "target has shape"),
    (lambda: fl.multilabel_margin_loss(_x[0], np.zeros((1, 4), int)), ValueError, "target has shape"),
    (lambda: fl.multilabel_margin_loss(np.zeros(0), np.zeros(0, int)), ValueError, "input must be"),
    (lambda: fl.multilabel_soft_margin_loss(_x, np.zeros((3, 3))), ValueError, "target has shape"),
    (lambda: fl.hinge_loss(_x, _t, reduction="avg"), ValueError, "reduction"),
    (lambda: fl.hinge_loss(np.zeros((2, 2, 2)), _t), ValueError, "input must be"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------- NaN, inf and huge values

def _torch_clamped_hinge(f, y, margin=1.0, reduction="mean"):
    """The binary hinge_loss as a torch composition (its reference, as in test_hinge_loss_binary)."""
    loss = torch.clamp(margin - y * f, min=0)
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def _special(rng, shape, dtype, p=0.3):
    """Standard normal draws with NaN, +-inf, +-huge (1e300, or 3e38 in float32) and 0 at random positions."""
    big = 1e300 if dtype == np.float64 else 3e38
    a = rng.standard_normal(shape)
    where = rng.random(shape) < p
    a[where] = rng.choice([np.nan, np.inf, -np.inf, big, -big, 0.0], where.sum())
    return a.astype(dtype)


def _labels(rng, shape, dtype):
    """Targets -1, 0 or 1 (any real target is torch's domain), with special values at random positions."""
    return np.where(rng.random(shape) < 0.7, rng.choice([-1.0, 0.0, 1.0], shape), _special(rng, shape, dtype, 1))


# name: (fastloss function, torch reference, make(rng, dtype) -> (args, differentiable positions, options))
SPECIAL_CASES = {
    "margin_ranking_loss": (fl.margin_ranking_loss, F.margin_ranking_loss, lambda r, d: (
        [_special(r, 6, d), _special(r, 6, d), _labels(r, 6, d)], (0, 1), {"margin": 0.5})),
    "hinge_embedding_loss": (fl.hinge_embedding_loss, F.hinge_embedding_loss, lambda r, d: (
        [_special(r, (3, 4), d), _labels(r, (3, 4), d)], (0,), {})),
    "soft_margin_loss": (fl.soft_margin_loss, F.soft_margin_loss, lambda r, d: (
        [_special(r, (3, 4), d), _labels(r, (3, 4), d)], (0,), {})),
    "multilabel_soft_margin_loss": (fl.multilabel_soft_margin_loss, F.multilabel_soft_margin_loss, lambda r, d: (
        [_special(r, (3, 4), d), np.where(r.random((3, 4)) < 0.7, r.random((3, 4)) < 0.5, _special(r, (3, 4), d, 1))
         .astype(d)], (0,), {"weight": _special(r, 4, d) if r.random() < 0.5 else None})),
    "multi_margin_loss": (fl.multi_margin_loss, F.multi_margin_loss, lambda r, d: (
        [_special(r, (3, 4), d), r.integers(0, 4, 3)], (0,),
        {"p": int(r.integers(1, 3)), "weight": _special(r, 4, d) if r.random() < 0.5 else None})),
    "multilabel_margin_loss": (fl.multilabel_margin_loss, F.multilabel_margin_loss, lambda r, d: (
        [_special(r, (3, 4), d), np.array([[0, -1, 1, 2], [2, 1, 3, 0], [-1, 0, 1, 2]])], (0,), {})),
    "hinge_loss (Crammer-Singer)": (fl.hinge_loss, _crammer_singer_torch, lambda r, d: (
        [_special(r, (3, 4), d), r.integers(0, 4, 3)], (0,), {})),
    "hinge_loss (binary)": (fl.hinge_loss, _torch_clamped_hinge, lambda r, d: (
        [_special(r, 6, d), _signs(r, 6, d)], (0,), {})),
}


def _torch_special(torch_fn, args, diff, options, grad_output, dtype):
    """torch's value and gradients (at ``diff``) in ``dtype`` on the same numbers."""
    tensors = [torch.tensor(a.astype(dtype) if a.dtype.kind == "f" else a) for a in args]
    for i in diff:
        tensors[i].requires_grad_(True)
    options = {k: torch.tensor(v.astype(dtype)) if isinstance(v, np.ndarray) else v for k, v in options.items()}
    value = torch_fn(*tensors, **options)
    value.backward(torch.tensor(np.asarray(grad_output).astype(dtype)).expand(value.shape))
    return value.detach().numpy(), [tensors[i].grad.numpy() for i in diff]


def _agrees(actual, expected, dtype):
    """Elementwise: equal, both NaN, or within the dtype's tolerance, ``expected`` rounded to ``dtype``."""
    tol = TOL[dtype]
    with np.errstate(over="ignore", invalid="ignore"):
        a, b = np.asarray(actual, np.float64), np.asarray(expected).astype(dtype).astype(np.float64)
        return (a == b) | (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= tol["atol"] + tol["rtol"] * np.abs(b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", SPECIAL_CASES)
def test_special_values(rng, name, dtype):
    """NaN, +-inf and huge values at random positions of inputs, targets, weights and
    grad_output: the value agrees with torch's everywhere, each gradient wherever its
    input element is finite. Expected numbers: torch in float64 on the same numbers;
    for float32, torch in float64 or float32 (a float32 kernel overflows in float32
    where torch's float64 does not: 3e38 - (-3e38) is inf). A reduced value may differ
    by rounding in the order of its sum (bounded by the tolerance times the sum of the
    magnitudes of its terms: 3e38 + 1 - 3e38 is 0 or 1 by the order)."""
    fl_fn, torch_fn, make = SPECIAL_CASES[name]
    for _ in range(30):
        args, diff, options = make(rng, dtype)
        reduction = str(rng.choice(REDUCTIONS))
        loss_shape = np.shape(fl_fn(*args, **options, reduction="none"))
        go = _special(rng, loss_shape, dtype) if reduction == "none" else _special(rng, (), dtype, 0.5)[()]
        value = fl_fn(*args, **options, reduction=reduction)
        value2, grads = fl_fn(*args, **options, reduction=reduction, grad=True, grad_output=go)
        np.testing.assert_array_equal(value, value2)
        grads = grads if len(diff) > 1 else (grads,)
        references = [_torch_special(torch_fn, args, diff, dict(options, reduction=reduction), go, np.float64)]
        if dtype == np.float32:
            references.append(_torch_special(torch_fn, args, diff, dict(options, reduction=reduction), go, dtype))
        ok = np.any([_agrees(value, expected, dtype) for expected, _ in references], axis=0)
        if reduction != "none" and not ok:
            terms, _ = _torch_special(torch_fn, args, diff, dict(options, reduction="none"), 1.0, np.float64)
            with np.errstate(invalid="ignore"):
                bound = TOL[dtype]["rtol"] * np.abs(terms).sum()
            ok = np.isfinite(bound) and abs(float(value) - float(references[0][0])) <= bound
        assert np.all(ok), (args, options, reduction, go, value, [expected for expected, _ in references])
        for k, (grad, i) in enumerate(zip(grads, diff)):
            ok = np.any([_agrees(grad, expected[k], dtype) for _, expected in references], axis=0)
            assert (ok | ~np.isfinite(args[i])).all(), (args, options, reduction, go, grad,
                                                        [expected[k] for _, expected in references])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_issue_examples(reduction):
    """The corner cases of issue 14 as torch float64 gives them."""
    inf, nan = np.inf, np.nan
    one = np.ones(1)
    for fl_fn, torch_fn, args in [
        (fl.margin_ranking_loss, F.margin_ranking_loss, [np.array([inf]), np.zeros(1), one]),
        (fl.hinge_embedding_loss, F.hinge_embedding_loss, [np.array([inf]), -one]),
        (fl.hinge_loss, _torch_clamped_hinge, [np.array([inf]), one]),
        (fl.multilabel_soft_margin_loss, F.multilabel_soft_margin_loss, [np.array([[-inf, 0.5]]), np.ones((1, 2))]),
    ]:
        expected, _ = torch_value_and_grad(torch_fn, args, reduction=reduction)
        np.testing.assert_array_equal(fl_fn(*args, reduction=reduction), expected)
    x = np.array([[0.1, 0.2, 0.4, 0.8], [0.3, -0.2, 0.5, 0.1]])
    t = np.array([3, 0])
    go = np.full(2, nan) if reduction == "none" else nan
    expected, expected_grad = torch_value_and_grad(F.multi_margin_loss, [x, t], grad_output=go, reduction=reduction)
    _, grad = fl.multi_margin_loss(x, t, reduction=reduction, grad=True, grad_output=go)
    assert np.isnan(expected_grad).all() and np.isnan(grad).all()


# ------------------------------------------------------- grad_out over the input
# (every loss, and grad_out overlapping other arguments: tests/test_corners.py)

def test_multilabel_margin_in_place_issue_example():
    """The example of issue 14: in place, the value is still torch's 0.85."""
    x = np.array([[0.1, 0.2, 0.4, 0.8]], np.float32)
    t = np.array([[3, 0, -1, -1]])
    expected, expected_grad = torch_value_and_grad(F.multilabel_margin_loss, [x, t])
    value, grad = fl.multilabel_margin_loss(x, t, grad=True, grad_out=x)
    assert_close(value, expected, np.float32)
    assert_close(grad, expected_grad, np.float32)
