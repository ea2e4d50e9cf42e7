"""Extras against the torch-composed references of tests/references.py, differentiated by
torch autograd:

* CosFace: F.normalize, a matrix product, the margin on the target cosine, s, and
  F.cross_entropy (Wang et al. 2018, eq. 4);
* Anchor loss: a torch transcription of the authors' ``anchor_loss.py``
  (https://github.com/slryou41/AnchorLoss), including its ``.detach()`` of the anchors;
* soft Dice: the formula of the docstring written with torch.sigmoid / torch.softmax.
"""
import numpy as np
import pytest

import fastloss as fl
from references import anchor_torch, cosface_torch, dice_torch
from conftest import assert_close, check_against_torch, torch_value_and_grad
from conftest import grad_output_for as _go
from fastloss.classification import SERIAL_BELOW
from fastloss.extras import DICE_CHUNK
from hostile import check_hostile, sprinkle

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]


def _check(fl_fn, torch_fn, inputs, dtype, diff=(0,), grad_output=None, kwargs=None, scale=1.0):
    return check_against_torch(fl_fn, torch_fn, inputs, dtype, diff, grad_output, kwargs, scale=scale)


# ---------------------------------------------------------------------- CosFace


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("s, m", [(64.0, 0.35), (8.0, 0.1), (16.0, 0.0)])
def test_large_margin_cosine(rng, dtype, reduction, s, m):
    f = rng.standard_normal((10, 6)).astype(dtype)
    w = rng.standard_normal((7, 6)).astype(dtype)
    t = rng.integers(0, 7, 10)
    # s = 64 magnifies float32 rounding of the cosines by 64 in the logits.
    _check(fl.large_margin_cosine_loss, cosface_torch, [f, w, t], dtype, (0, 1), _go(rng, reduction, 10),
           dict(s=s, m=m, reduction=reduction), scale=s / 8 if dtype == np.float32 else 1.0)


def test_large_margin_cosine_zero_feature_and_grad_out(rng):
    f = rng.standard_normal((4, 3))
    f[1] = 0  # the norm is clamped at 1e-12, as F.normalize
    w = rng.standard_normal((5, 3))
    t = rng.integers(0, 5, 4)
    expected, (ef, ew) = torch_value_and_grad(cosface_torch, [f, w, t], diff=(0, 1), s=4.0)
    out = np.empty_like(f)
    value, (gf, gw) = fl.large_margin_cosine_loss(f, w, t, s=4.0, grad=True, grad_out=out)
    assert gf is out
    assert_close(value, expected, np.float64)
    np.testing.assert_allclose(gf, ef, rtol=1e-9, atol=1e-9 * np.abs(ef).max())
    assert_close(gw, ew, np.float64)


# ---------------------------------------------------------------------- anchor loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("anchor", ["neg", "pos"])
@pytest.mark.parametrize("gamma, slack", [(0.5, 0.05), (2.0, 0.2), (0.0, 0.05)])
def test_anchor_loss(rng, dtype, reduction, anchor, gamma, slack):
    x = (rng.standard_normal((12, 6)) * 3).astype(dtype)
    t = rng.integers(0, 6, 12)
    _check(fl.anchor_loss, anchor_torch, [x, t], dtype, grad_output=_go(rng, reduction, 12),
           kwargs=dict(gamma=gamma, slack=slack, reduction=reduction, anchor=anchor))


def test_anchor_gradient_is_not_the_derivative_of_the_value(rng):
    """The stop-gradient matters: finite differences of the value differ from the gradient."""
    x = rng.standard_normal((3, 4)) * 2
    t = np.array([0, 1, 2])
    _, grad = fl.anchor_loss(x, t, gamma=2.0, grad=True)
    h = 1e-6
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (fl.anchor_loss(up, t, gamma=2.0) - fl.anchor_loss(down, t, gamma=2.0)) / (2 * h)
    assert np.abs(numeric - grad).max() > 1e-4


# ---------------------------------------------------------------------- Dice


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smooth", [1.0, 1e-3])
@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (4, 3, 7), (5, 2)], ids=["NCHW", "NCL", "NC"])
def test_dice_multiclass(rng, dtype, reduction, smooth, shape):
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    t = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    _check(fl.dice_loss, dice_torch, [x, t], dtype, grad_output=_go(rng, reduction, shape[0]),
           kwargs=dict(smooth=smooth, reduction=reduction))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("soft", [False, True])
def test_dice_binary(rng, dtype, reduction, soft):
    x = (rng.standard_normal((4, 6, 5)) * 2).astype(dtype)
    y = (rng.random((4, 6, 5)) if soft else rng.random((4, 6, 5)) > 0.6).astype(dtype)
    y[0] = 0  # an empty mask: smooth keeps it finite
    _check(fl.dice_loss, dice_torch, [x, y], dtype, grad_output=_go(rng, reduction, 4),
           kwargs=dict(smooth=1.0, reduction=reduction))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("binary", [False, True], ids=["multiclass", "binary"])
def test_dice_parallel_chunks(rng, dtype, binary):
    """The parallel kernels, over several chunks of positions with a partial last one."""
    shape = (3, 90, 70) if binary else (2, 3, 70, 50)
    positions = 90 * 70 if binary else 70 * 50
    assert np.prod(shape) >= SERIAL_BELOW and positions > DICE_CHUNK and positions % DICE_CHUNK
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    t = (rng.random(shape) > 0.6).astype(dtype) if binary else rng.integers(0, 3, (2, 70, 50))
    _check(fl.dice_loss, dice_torch, [x, t], dtype, grad_output=0.7)


def test_dice_transposed_input_and_grad_out(rng):
    x = np.transpose(rng.standard_normal((4, 5, 3)), (0, 2, 1))  # (N, C, L), not contiguous
    t = rng.integers(0, 3, (4, 5))
    expected, expected_grad = torch_value_and_grad(dice_torch, [x, t])
    out = np.empty((4, 3, 5))
    value, grad = fl.dice_loss(x, t, grad=True, grad_out=out)
    assert grad is out
    assert_close(value, expected, np.float64)
    assert_close(grad, expected_grad, np.float64)


@pytest.mark.parametrize("binary", [False, True])
def test_dice_bad_input_leaves_grad_out_untouched(rng, binary):
    """With grad_out the input itself, a bad target or grad_output raises before any write."""
    x = rng.standard_normal((3, 4, 5)) if binary else rng.standard_normal((3, 2, 5))
    bad = np.full((3, 4, 5), 2.0) if binary else np.full((3, 5), 2)
    good = rng.random((3, 4, 5)) if binary else rng.integers(0, 2, (3, 5))
    before = x.copy()
    with pytest.raises(ValueError, match=r"\[0, 1\]" if binary else "class index 2"):
        fl.dice_loss(x, bad, grad=True, grad_out=x)
    with pytest.raises(ValueError, match="grad_output"):
        fl.dice_loss(x, good, reduction="none", grad=True, grad_out=x, grad_output=np.ones(4))
    np.testing.assert_array_equal(x, before)


def test_criterion_objects(rng):
    x = rng.standard_normal((4, 3))
    t = rng.integers(0, 3, 4)
    w = rng.standard_normal((3, 3))
    assert fl.LargeMarginCosineLoss(s=8.0)(x, w, t) == fl.large_margin_cosine_loss(x, w, t, s=8.0)
    assert fl.AnchorLoss(gamma=1.0, anchor="pos")(x, t) == fl.anchor_loss(x, t, 1.0, anchor="pos")
    value, grad = fl.DiceLoss(smooth=0.5).value_and_grad(x[:, :, None], t[:, None])
    assert value == fl.dice_loss(x[:, :, None], t[:, None], 0.5) and grad.shape == (4, 3, 1)


_x = np.zeros((3, 4))
_t = np.array([0, 1, 2])


@pytest.mark.parametrize("call, exc, match", [
    (lambda: fl.large_margin_cosine_loss(_x, np.zeros((5, 3)), _t), ValueError, "weight must be"),
    (lambda: fl.large_margin_cosine_loss(_x, np.zeros((2, 4)), _t), ValueError, "class index 2"),
    (lambda: fl.large_margin_cosine_loss(_x, np.zeros((5, 4)), _t, s=0.0), ValueError, "s must be >"),
    (lambda: fl.anchor_loss(_x, _t, anchor="both"), ValueError, "anchor must be one of"),
    (lambda: fl.anchor_loss(_x, _t, gamma=-1.0), ValueError, "gamma"),
    (lambda: fl.anchor_loss(_x, np.array([0, 1, 4])), ValueError, "class index 4"),
    (lambda: fl.anchor_loss(_x, _t, reduction="avg"), ValueError, "reduction"),
    (lambda: fl.dice_loss(_x, np.full((3, 4), 2.0)), ValueError, r"\[0, 1\]"),
    (lambda: fl.dice_loss(np.zeros((3, 4, 5)), np.full((3, 5), 4)), ValueError, "class index 4"),
    (lambda: fl.dice_loss(_x, np.zeros((3, 5))), ValueError, "target has shape"),
    (lambda: fl.dice_loss(_x, np.zeros((3, 4)), smooth=-1.0), ValueError, "smooth"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------- corners: NaN, inf (grad_out: tests/test_corners.py)

HOSTILE = {
    "large_margin_cosine_loss": lambda rng: (cosface_torch, [rng.standard_normal((4, 3)), rng.standard_normal((5, 3)),
                                                              rng.integers(0, 5, 4)], (0, 1), dict(s=8.0, m=0.2)),
    "dice_loss": lambda rng: (dice_torch, [rng.standard_normal((3, 4, 5)), rng.integers(0, 4, (3, 5))], (0,),
                              dict(smooth=float(rng.choice([1.0, 1e-3])))),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_nan_inf_and_huge_values_as_torch(rng, name):
    """NaN, +-inf and 1e300 at random positions of the float inputs and grad_output, against
    the torch references above (tests/hostile.py says what must agree)."""
    for _ in range(25):
        reduction = str(rng.choice(REDUCTIONS))
        torch_fn, arrays, diff, kwargs = HOSTILE[name](rng)
        arrays = [sprinkle(rng, a) if a.dtype.kind == "f" else a for a in arrays]
        grad_output = rng.standard_normal(arrays[0].shape[0]) if reduction == "none" else np.float64(0.7)
        check_hostile(getattr(fl, name), torch_fn, arrays, diff, dict(kwargs, reduction=reduction),
                      sprinkle(rng, grad_output, (np.nan,), p=0.1))
