"""Embedding losses against torch autograd: torch's own cosine_embedding_loss,
triplet_margin_loss and triplet_margin_with_distance_loss, and a torch composition of
Hadsell et al.'s contrastive loss.

Expected numbers come from torch 2.13 CPU (``torch_value_and_grad``) on the same arrays.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from references import contrastive_torch
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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [1.0, 4.0])
def test_contrastive(rng, dtype, reduction, margin):
    x1, x2 = (rng.standard_normal((11, 4)).astype(dtype) for _ in range(2))
    y = (rng.random(11) > 0.5).astype(dtype)
    _check(fl.contrastive_loss, contrastive_torch, [x1, x2, y], dtype, (0, 1), _go(rng, reduction, 11),
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
    (lambda: fl.cosine_embedding_loss(_a, _a, np.ones(4)), ValueError, "target has shape"),
    (lambda: fl.cosine_embedding_loss(_a, np.zeros((3, 5)), np.ones(3)), ValueError, "input2 has shape"),
    (lambda: fl.cosine_embedding_loss(_a[0], _a[0], np.ones(1)), ValueError, "target has shape"),
    (lambda: fl.cosine_embedding_loss(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), np.ones((2, 3))), ValueError,
     "input1 must be"),
    (lambda: fl.cosine_embedding_loss(_a, _a, np.ones(3), margin="0"), TypeError, "margin must be a real"),
    (lambda: fl.contrastive_loss(_a, _a, np.array([1.0, -1.0, 0.0])), ValueError, "only 0 and 1"),
    (lambda: fl.triplet_margin_loss(_a, _a, np.zeros((2, 4))), ValueError, "negative has shape"),
    (lambda: fl.triplet_margin_loss(_a, _a[None], _a), ValueError, "positive has shape"),
    (lambda: fl.triplet_margin_loss(_a, _a, _a, reduction="batchmean"), ValueError, "reduction"),
    (lambda: fl.triplet_margin_loss(_a, _a, _a, margin=0.0), ValueError, r"margin must be in \(0, inf\], got 0.0"),
    (lambda: fl.triplet_margin_loss(_a, _a, _a, margin=-1), ValueError, r"margin must be in \(0, inf\]"),
    (lambda: fl.triplet_margin_loss(_a, _a, _a, swap=1), TypeError, "swap must be a bool"),
    (lambda: fl.triplet_margin_loss(_a, _a, _a, p=None), TypeError, "p must be a real"),
    (lambda: fl.triplet_margin_loss(_a[:, :0], _a[:, :0], _a[:, :0], p=np.inf), ValueError, "zero features"),
    (lambda: fl.triplet_margin_loss(_a[:, :0], _a[:, :0], _a[:, :0], p=-1.0), ValueError, "zero features"),
    (lambda: fl.triplet_margin_with_distance_loss(_a, _a, _a, margin=0.0), ValueError, r"margin must be in \(0, inf\]"),
    (lambda: fl.triplet_margin_with_distance_loss(_a, _a, _a, swap="yes"), TypeError, "swap must be a bool"),
    (lambda: fl.triplet_margin_with_distance_loss(_a, _a, _a, distance_function="l1"), ValueError,
     "distance_function must be"),
    (lambda: fl.triplet_margin_with_distance_loss(_a, _a, _a, distance_function=3), TypeError,
     "distance_function must be"),
    (lambda: fl.triplet_margin_with_distance_loss(_a, _a, _a, distance_function=lambda u, v: u[:2, 0]),
     ValueError, r"distance_function\(anchor, negative\) of shape \(2,\) does not broadcast"),
    (lambda: fl.triplet_margin_with_distance_loss(_a, _a, _a, distance_function=lambda u, v: u.sum(-1) + 1j),
     TypeError, r"distance_function\(anchor, negative\) must be a numeric"),
    (lambda: fl.triplet_margin_with_distance_loss(_a, _a, _a, reduction="batchmean"), ValueError, "reduction"),
])
def test_bad_input(call, exc, match):
    """Where torch raises (margin <= 0 of the triplet losses, a 1-D target of 1-D inputs,
    3-D cosine inputs, a non-bool swap, the inf or negative norm of no features), fastloss
    raises, with a ValueError or TypeError that names the argument."""
    with pytest.raises(exc, match=match):
        call()


# ---------------------------------------------------------------- torch's domains

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.5, -1.0, 1.0, 3.0, np.inf, -np.inf])
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_any_p_torch_takes(rng, dtype, p, swap):
    """Every p torch's vector_norm takes: 0 (a count, no gradient), below 1, negative, +-inf."""
    a, pos, neg = (rng.standard_normal((9, 5)).astype(dtype) for _ in range(3))
    neg[0] = a[0]  # d(a, n) = ||eps||_p: ties of |entries| for the inf norms
    kwargs = dict(margin=1.5, p=p, eps=1e-3, swap=swap, reduction="none")
    if p == 0.0:  # torch gives no gradient at all (None) for p = 0; fastloss gives zeros
        value, grads = fl.triplet_margin_loss(a, pos, neg, **kwargs, grad=True)
        assert_close(value, F.triplet_margin_loss(*map(torch.tensor, (a, pos, neg)), **kwargs).numpy(), dtype)
        assert all((g == 0).all() for g in grads)
        return
    _check(fl.triplet_margin_loss, F.triplet_margin_loss, [a, pos, neg], dtype, (0, 1, 2), _go(rng, "none", 9), kwargs,
           scale=20.0 if p in (0.5, -1.0) else 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("option", [dict(margin=np.inf), dict(margin=np.nan), dict(eps=np.inf), dict(eps=np.nan),
                                    dict(eps=-1.0), dict(p=np.nan)])
def test_triplet_options_torch_computes(rng, dtype, option):
    a, pos, neg = (rng.standard_normal((4, 3)).astype(dtype) for _ in range(3))
    kwargs = dict(option, reduction="none")
    expected, expected_grads = torch_value_and_grad(F.triplet_margin_loss, [a, pos, neg], diff=(0, 1, 2), **kwargs)
    value, grads = fl.triplet_margin_loss(a, pos, neg, **kwargs, grad=True)
    _assert_same_nan_or_close(value, expected, dtype)
    for g, e in zip(grads, expected_grads):
        _assert_same_nan_or_close(g, e, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (6, 0), (0, 4), (2, 3, 4)])
def test_triplet_shapes_torch_computes(rng, dtype, shape):
    """0-d inputs (one feature), no features, no rows, and batches of any rank (the norm
    over the last axis), as torch computes them."""
    inputs = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
    for reduction in REDUCTIONS:
        kwargs = dict(reduction=reduction)
        for fl_fn, torch_fn in ((fl.triplet_margin_loss, F.triplet_margin_loss),
                                (fl.triplet_margin_with_distance_loss, F.triplet_margin_with_distance_loss)):
            expected, expected_grads = torch_value_and_grad(torch_fn, inputs, diff=(0, 1, 2), **kwargs)
            value, grads = fl_fn(*inputs, **kwargs, grad=True)
            assert np.shape(value) == expected.shape
            _assert_same_nan_or_close(value, expected, dtype)
            for g, e in zip(grads, expected_grads):
                assert g.shape == shape
                _assert_same_nan_or_close(g, e, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_embedding_any_target_and_margin(rng, dtype):
    """torch selects a term where the target is exactly 1 or -1 and computes 0 for any
    other value (0, 2, NaN); any margin, NaN and inf included; no features."""
    a, b = (rng.standard_normal((6, 4)).astype(dtype) for _ in range(2))
    y = np.array([1, -1, 0, 2, np.nan, -1], dtype)
    for margin in (0.0, -0.5, np.nan, np.inf, -np.inf):
        kwargs = dict(margin=margin, reduction="none")
        expected, expected_grads = torch_value_and_grad(F.cosine_embedding_loss, [a, b, y], diff=(0, 1), **kwargs)
        value, grads = fl.cosine_embedding_loss(a, b, y, **kwargs, grad=True)
        _assert_same_nan_or_close(value, expected, dtype)
        for g, e in zip(grads, expected_grads):
            _assert_same_nan_or_close(g, e, dtype)
    expected = F.cosine_embedding_loss(torch.tensor(a[:, :0]), torch.tensor(b[:, :0]), torch.tensor(y))
    assert_close(fl.cosine_embedding_loss(a[:, :0], b[:, :0], y), expected.numpy(), dtype)


# ---------------------------------------------------------------- NaN, inf and huge values

def _assert_same_nan_or_close(actual, expected, dtype, where=None, scale=1.0):
    """NaN where torch has NaN, equal infinities, and finite values close; only at ``where``."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    if where is not None:
        actual, expected = actual[where], expected[where]
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(actual[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)])
    assert_close(actual[finite], expected[finite], dtype, scale)


_SPECIAL = {np.float32: [np.nan, np.inf, -np.inf, 3e38, -3e38, 0.0],
            np.float64: [np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0]}


def _cosine_distance(x, y):
    return 1 - F.cosine_similarity(x, y, dim=-1)


def _euclidean(x, y):
    return torch.linalg.vector_norm(x - y, dim=-1)


def _corner_case(rng, name, dtype):
    """A loss's call on random data with NaN, +-inf, huge values and zeros at random
    positions of its inputs and targets: ``(fl_fn, torch_fn, inputs, fl_kwargs, torch_kwargs, diff)``."""
    def poison(x, fraction=0.2):
        x = x.copy()
        hit = rng.random(x.shape) < fraction
        x[hit] = rng.choice(_SPECIAL[dtype], hit.sum())
        return x

    d = int(rng.integers(1, 4))
    x1, x2, x3 = (poison(rng.standard_normal((4, d)).astype(dtype)) for _ in range(3))
    swap = bool(rng.random() < 0.5)
    if name == "cosine_embedding_loss":
        y = rng.choice([1.0, -1.0, 0.0, np.nan], 4).astype(dtype)
        kwargs = dict(margin=float(rng.choice([0.0, 0.3, -0.5])))
        return fl.cosine_embedding_loss, F.cosine_embedding_loss, [x1, x2, y], kwargs, kwargs, (0, 1)
    if name == "contrastive_loss":
        y = rng.integers(0, 2, 4).astype(dtype)
        return fl.contrastive_loss, contrastive_torch, [x1, x2, y], {}, {}, (0, 1)
    if name == "triplet_margin_loss":
        kwargs = dict(p=float(rng.choice([1.0, 2.0, 3.0, 1.5, 0.5, -1.0, np.inf])), swap=swap)
        return fl.triplet_margin_loss, F.triplet_margin_loss, [x1, x2, x3], kwargs, kwargs, (0, 1, 2)
    named = rng.choice(["default", "euclidean", "cosine"])
    fl_kwargs = dict(distance_function=None if named == "default" else str(named), swap=swap)
    torch_kwargs = dict(distance_function={"default": None, "euclidean": _euclidean, "cosine": _cosine_distance}[named],
                        swap=swap)
    return fl.triplet_margin_with_distance_loss, F.triplet_margin_with_distance_loss, [x1, x2, x3], fl_kwargs, \
        torch_kwargs, (0, 1, 2)


EMBEDDING_LOSSES = ["cosine_embedding_loss", "contrastive_loss", "triplet_margin_loss",
                    "triplet_margin_with_distance_loss"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", EMBEDDING_LOSSES)
def test_non_finite_values_propagate_as_in_torch(rng, dtype, name):
    """NaN, +-inf, values whose squares overflow (1e300, 3e38) and zeros at random positions
    of the inputs, targets and grad_output. Expected numbers: torch (contrastive: its torch
    composition) in the same dtype, since an overflow of float32 squares is the dtype's;
    values must agree everywhere, gradients wherever the input entry itself is finite.
    The comparison of a reduced value leaves out draws where torch's own float32 sum
    overflows (fastloss accumulates in float64, the float64 truth)."""
    for _ in range(40):
        fl_fn, torch_fn, inputs, fl_kwargs, torch_kwargs, diff = _corner_case(rng, name, dtype)
        reduction = str(rng.choice(REDUCTIONS))
        go = rng.standard_normal(4) if reduction == "none" else 0.7
        if rng.random() < 0.3:  # the incoming gradient non-finite or huge, at random rows
            go = np.where(rng.random(np.shape(go)) < 0.5, rng.choice([np.nan, np.inf, -np.inf, -1e30]), go)
        go = np.asarray(go, dtype)
        expected, expected_grads = torch_value_and_grad(torch_fn, inputs, diff=diff, grad_output=go,
                                                        reduction=reduction, **torch_kwargs)
        value, grads = fl_fn(*inputs, **fl_kwargs, reduction=reduction, grad=True, grad_output=go)
        np.testing.assert_array_equal(value, fl_fn(*inputs, **fl_kwargs, reduction=reduction))
        per_row = torch_value_and_grad(torch_fn, inputs, diff=diff, reduction="none", **torch_kwargs)[0]
        if reduction == "none" or np.isfinite(per_row.astype(np.float64).sum()) or not np.isfinite(per_row).all():
            _assert_same_nan_or_close(value, expected, dtype, scale=10)
        for g, e, i in zip(grads, expected_grads, diff):
            # Huge gradients (a zero vector's 1e12 factor, a 1e30 grad_output) cancel: compare
            # to their own size.
            big = np.abs(np.where(np.isfinite(e), e, 0)).max(initial=1.0)
            _assert_same_nan_or_close(g / big, e / big, dtype, where=np.isfinite(inputs[i]), scale=100)


# ---------------------------------------------------------------- grad_out aliasing an input

def _aliasing_call(rng, name, dtype):
    """``(fn, inputs, kwargs, differentiable positions)`` on random data."""
    x = [rng.standard_normal((7, 5)).astype(dtype) for _ in range(3)]
    if name == "cosine_embedding_loss":
        return fl.cosine_embedding_loss, [x[0], x[1], rng.choice([1.0, -1.0], 7).astype(dtype)], {}, (0, 1)
    if name == "contrastive_loss":
        return fl.contrastive_loss, [x[0], x[1], rng.integers(0, 2, 7).astype(dtype)], {"margin": 3.0}, (0, 1)
    if name == "triplet_margin_loss":
        return fl.triplet_margin_loss, x, {"swap": True, "p": 1.5}, (0, 1, 2)
    return fl.triplet_margin_with_distance_loss, x, {"swap": True, "distance_function": "cosine"}, (0, 1, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", EMBEDDING_LOSSES)
def test_grad_out_is_the_input_or_refused(rng, dtype, reduction, name):
    """grad_out = the first input (in place): value and every gradient bit for bit those of
    the call without grad_out. grad_out overlapping another argument (another input, the
    target, grad_output) or a shifted view of the first input: a ValueError saying so,
    and nothing written."""
    fn, inputs, kwargs, diff = _aliasing_call(rng, name, dtype)
    go = rng.standard_normal(7).astype(dtype) if reduction == "none" else 0.7
    kwargs = dict(kwargs, reduction=reduction)
    expected, expected_grads = fn(*inputs, **kwargs, grad=True, grad_output=go)
    x = inputs[0].copy()
    value, grads = fn(x, *inputs[1:], **kwargs, grad=True, grad_output=go, grad_out=x)
    assert grads[0] is x
    np.testing.assert_array_equal(value, expected)
    for g, e in zip(grads, expected_grads):
        np.testing.assert_array_equal(g, e)
    refused = []
    for k in range(1, len(inputs)):  # another input, or a target in the first entries of grad_out's buffer
        out = np.empty(inputs[0].shape, dtype)
        args = list(inputs)
        args[k] = out.reshape(-1)[:inputs[k].size].reshape(inputs[k].shape)
        args[k][...] = inputs[k]
        refused.append((args, {"grad_output": go}, out))
    if reduction == "none":
        out = np.empty(inputs[0].shape, dtype)
        out.reshape(-1)[:7] = go
        refused.append((inputs, {"grad_output": out.reshape(-1)[:7]}, out))
    for shift in (1, inputs[0].shape[-1], -4):
        buffer = np.zeros(inputs[0].size + abs(shift), dtype)
        start = max(-shift, 0)
        shifted = buffer[start:start + inputs[0].size].reshape(inputs[0].shape)
        shifted[...] = inputs[0]
        refused.append(([shifted, *inputs[1:]], {"grad_output": go},
                        buffer[start + shift:start + shift + inputs[0].size].reshape(inputs[0].shape)))
    for args, options, out in refused:
        before = [np.array(a, copy=True) for a in args]
        with pytest.raises(ValueError, match="grad_out overlaps"):
            fn(*args, **kwargs, **options, grad=True, grad_out=out)
        for a, b in zip(args, before):
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- triplet_margin_with_distance_loss

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("distance", ["default", "euclidean", "cosine"])
def test_triplet_with_distance(rng, dtype, reduction, swap, distance):
    """Each named distance against torch's F.triplet_margin_with_distance_loss with the
    distance torch users write (None, the norm of the difference, 1 - cosine_similarity)."""
    a, pos, neg = (rng.standard_normal((12, 5)).astype(dtype) for _ in range(3))
    pos[0] = a[0]  # distance 0 (euclidean), 1e-6 (default), cosine 0
    neg[1] = 1e-9 * neg[1]  # below cosine_similarity's eps: its norm is clamped
    margin = 0.8
    fl_kwargs = dict(distance_function=None if distance == "default" else distance, margin=margin, swap=swap,
                     reduction=reduction)
    torch_kwargs = dict(fl_kwargs, distance_function={"default": None, "euclidean": _euclidean,
                                                      "cosine": _cosine_distance}[distance])
    check_against_torch(fl.triplet_margin_with_distance_loss, F.triplet_margin_with_distance_loss, [a, pos, neg],
                        dtype, (0, 1, 2), _go(rng, reduction, 12), fl_kwargs, torch_kwargs)


def test_triplet_with_distance_default_is_triplet_margin_loss(rng):
    a, pos, neg = (rng.standard_normal((6, 4)) for _ in range(3))
    for swap in (False, True):
        value, grads = fl.triplet_margin_with_distance_loss(a, pos, neg, margin=0.5, swap=swap, grad=True)
        same, same_grads = fl.triplet_margin_loss(a, pos, neg, margin=0.5, swap=swap, grad=True)
        np.testing.assert_array_equal(value, same)
        for g, e in zip(grads, same_grads):
            np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_with_callable_distance(rng, dtype, swap):
    """A Python callable on the arrays: the values of torch's composition with the same
    distance; grad=True raises a TypeError that says why; fastloss.torch differentiates a
    callable of torch operations by autograd, as torch."""
    import fastloss.torch as flt

    a, pos, neg = (rng.standard_normal((10, 4)).astype(dtype) for _ in range(3))

    def linf_numpy(u, v):
        return np.abs(u - v).max(-1)

    def linf_torch(u, v):
        return (u - v).abs().amax(-1)

    for reduction in REDUCTIONS:
        kwargs = dict(margin=0.7, swap=swap, reduction=reduction)
        expected = F.triplet_margin_with_distance_loss(*map(torch.tensor, (a, pos, neg)), distance_function=linf_torch,
                                                       **kwargs)
        value = fl.triplet_margin_with_distance_loss(a, pos, neg, distance_function=linf_numpy, **kwargs)
        assert np.asarray(value).dtype == dtype and np.shape(value) == tuple(expected.shape)
        assert_close(value, expected.numpy(), dtype)
        tensors = [torch.tensor(x, requires_grad=True) for x in (a, pos, neg)]
        expected, expected_grads = torch_value_and_grad(F.triplet_margin_with_distance_loss, [a, pos, neg], (0, 1, 2),
                                                        distance_function=linf_torch, **kwargs)
        ours = flt.triplet_margin_with_distance_loss(*tensors, distance_function=linf_torch, **kwargs)
        ours.backward(torch.ones_like(ours))
        assert_close(ours.detach().numpy(), expected, dtype)
        for t, e in zip(tensors, expected_grads):
            assert_close(t.grad.numpy(), e, dtype)
        module = flt.TripletMarginWithDistanceLoss(distance_function=linf_torch, **kwargs)
        assert_close(module(*tensors).detach().numpy(), expected, dtype)
    with pytest.raises(TypeError, match="distance_function is a Python callable, of which fastloss cannot form a "
                                        "gradient"):
        fl.triplet_margin_with_distance_loss(a, pos, neg, distance_function=linf_numpy, grad=True)
    with pytest.raises(TypeError, match="cannot form a gradient"):
        fl.TripletMarginWithDistanceLoss(distance_function=linf_numpy).value_and_grad(a, pos, neg)
    with pytest.raises(ValueError, match=r"margin must be in \(0, inf\]"):
        flt.triplet_margin_with_distance_loss(*map(torch.tensor, (a, pos, neg)), distance_function=linf_torch,
                                              margin=-1.0)
    with pytest.raises(ValueError, match="positive has shape"):  # torch: "the same number of dimensions"
        flt.triplet_margin_with_distance_loss(torch.tensor(a), torch.tensor(pos[0]), torch.tensor(neg),
                                              distance_function=linf_torch)


def test_triplet_with_distance_criterion(rng):
    a, pos, neg = (rng.standard_normal((5, 3)) for _ in range(3))
    crit = fl.TripletMarginWithDistanceLoss(distance_function="cosine", margin=0.4, swap=True)
    assert crit(a, pos, neg) == fl.triplet_margin_with_distance_loss(a, pos, neg, distance_function="cosine",
                                                                      margin=0.4, swap=True)
    value, grads = crit.value_and_grad(a, pos, neg, grad_output=2.0)
    _, expected = fl.triplet_margin_with_distance_loss(a, pos, neg, distance_function="cosine", margin=0.4, swap=True,
                                                       grad=True, grad_output=2.0)
    for g, e in zip(grads, expected):
        np.testing.assert_array_equal(g, e)
    with pytest.raises(TypeError):
        fl.TripletMarginWithDistanceLoss(None)  # keyword-only, as torch's
