r"""Classification extras beyond torch.nn.functional: CosFace, Anchor Loss, soft Dice.

* :func:`large_margin_cosine_loss` multiplies normalised features by normalised
  class weights with one BLAS matrix product, then runs the cross-entropy row kernel
  of :mod:`fastloss.classification` (:func:`softmax_cross_entropy_rows`) on the
  margin-shifted, scaled cosines, writing the gradient in place over them; two more
  products give the gradients of the features and of the weights.
* :func:`anchor_loss` is a row kernel, :func:`anchor_rows`.
* :func:`dice_loss` is a per-sample kernel, :func:`soft_dice_samples`, serving the
  binary (sigmoid) and multi-class (softmax) forms.
"""
import numpy as np
from numba import prange

from ._criterion import criterion
from ._jit import jit
from ._layout import GradientBuffer, class_rows, class_rows_undo, read_only
from ._math import log1p_exp, sigmoid, sum_float64, typed
from ._reduction import check_reduction, finish, loss_scale
from ._validation import (as_float_array, as_index_array, as_target_array, check_choice, check_class_indices,
                          check_real, check_shape)
from .classification import softmax_cross_entropy_rows

__all__ = [
    "large_margin_cosine_loss", "anchor_loss", "dice_loss",
    "LargeMarginCosineLoss", "AnchorLoss", "DiceLoss",
]

# F.normalize's default eps: x / max(||x||, eps).
_NORMALIZE_EPS = 1e-12


# ---------------------------------------------------------------- kernels

@jit(parallel=True)
def anchor_rows(logits, target, gamma_pos, gamma_neg, slack, scale, loss, grad, want_grad):
    """Anchor loss over (N, C) logits, as Ryou et al.'s reference implementation.

    With p = sigmoid(x), binary cross-entropies b_c against the one-hot target, and
    anchors held constant, q_pos = max(p_t - slack, 0), q_neg = min(max_{c != t} p_c
    + slack, 1): loss = (1 - p_t + q_neg)^gamma_pos b_t + sum_{c != t} (1 + p_c -
    q_pos)^gamma_neg b_c. The gradient treats q_pos and q_neg as constants.
    """
    n_rows, n_classes = logits.shape
    for n in prange(n_rows):
        row = logits[n]
        t = target[n]
        one = typed(1, slack)
        zero = slack * 0
        top = zero
        for c in range(n_classes):
            if c != t:
                p = sigmoid(row[c])
                top = p if p > top else top
        p_t = sigmoid(row[t])
        q_neg = min(top + slack, one)
        q_pos = max(p_t - slack, zero)
        total = zero
        s = scale[n] if want_grad else zero
        for c in range(n_classes):
            x = row[c]
            p = sigmoid(x)
            if c == t:
                base = one - p + q_neg
                gamma = gamma_pos
                bce = log1p_exp(-x)
                dbce = p - one
                dbase = -one
            else:
                base = one + p - q_pos
                gamma = gamma_neg
                bce = log1p_exp(x)
                dbce = p
                dbase = one
            if gamma == 0:
                total += bce
                if want_grad:
                    grad[n, c] = s * dbce
            else:
                factor = base ** gamma
                total += factor * bce
                if want_grad:
                    dfactor = gamma * base ** (gamma - one) * dbase * p * (one - p)
                    grad[n, c] = s * (dfactor * bce + factor * dbce)
        loss[n] = total


@jit()
def _class_probs(x, n, k, binary, probs):
    """Sigmoid (binary, one class) or softmax over the classes of position (n, k) into ``probs``."""
    if binary:
        probs[0] = sigmoid(x[n, k, 0])
        return
    n_classes = x.shape[2]
    top = x[n, k, 0]
    for c in range(1, n_classes):
        top = x[n, k, c] if x[n, k, c] > top else top
    total = top * 0
    for c in range(n_classes):
        e = np.exp(x[n, k, c] - top)
        probs[c] = e
        total += e
    for c in range(n_classes):
        probs[c] /= total


@jit(parallel=True)
def soft_dice_samples(x, labels, soft, binary, smooth, scale, loss, grad, want_grad):
    """Soft Dice loss per sample of (N, K, C) logits.

    Binary (C = 1): p = sigmoid(x), targets ``soft`` (N, K, 1). Multi-class: p =
    softmax over C, targets the class indices ``labels`` (N, K). Per sample and class,
    I = sum_k p y, S = sum_k (p + y); loss = 1 - mean_c (2 I + smooth) / (S + smooth).
    """
    n_samples, n_pos, n_classes = x.shape
    for n in prange(n_samples):
        inter = np.zeros(n_classes)
        total = np.zeros(n_classes)
        probs = np.empty(n_classes, x.dtype)
        for k in range(n_pos):
            _class_probs(x, n, k, binary, probs)
            for c in range(n_classes):
                y = soft[n, k, 0] if binary else (1.0 if labels[n, k] == c else 0.0)
                inter[c] += probs[c] * y
                total[c] += probs[c] + y
        dice = 0.0
        for c in range(n_classes):
            dice += (2.0 * inter[c] + smooth) / (total[c] + smooth)
        loss[n] = 1.0 - dice / n_classes
        if not want_grad:
            continue
        # d loss / d p_c = -(2 y A_c - B_c) / (C A_c^2), A_c = S_c + smooth, B_c = 2 I_c + smooth.
        coef = np.empty(n_classes)
        offset = np.empty(n_classes)
        for c in range(n_classes):
            a = total[c] + smooth
            coef[c] = -2.0 * scale[n] / (n_classes * a)
            offset[c] = scale[n] * (2.0 * inter[c] + smooth) / (n_classes * a * a)
        g = np.empty(n_classes)
        for k in range(n_pos):
            _class_probs(x, n, k, binary, probs)
            dot = 0.0
            for c in range(n_classes):
                y = soft[n, k, 0] if binary else (1.0 if labels[n, k] == c else 0.0)
                g[c] = coef[c] * y + offset[c]
                dot += probs[c] * g[c]
            for c in range(n_classes):
                if binary:
                    grad[n, k, c] = g[c] * probs[c] * (1 - probs[c])
                else:
                    grad[n, k, c] = probs[c] * (g[c] - dot)


# ---------------------------------------------------------------- wrappers

def _normalize_rows(x):
    """x / max(||x||, 1e-12) per row (F.normalize), and the clamped norms."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    norms = np.maximum(norms, _NORMALIZE_EPS)
    return (x / norms[:, None]).astype(x.dtype), norms


def _normalize_backward(unit, norms, g):
    """Gradient through x / max(||x||, eps): (g - u (u . g)) / ||x||, or g / eps where clamped."""
    radial = np.einsum("ij,ij->i", unit, g, dtype=np.float64)
    clamped = norms <= _NORMALIZE_EPS
    out = g - unit * radial[:, None].astype(g.dtype)
    out[clamped] = g[clamped]
    return (out / norms[:, None]).astype(g.dtype)


def large_margin_cosine_loss(features, weight, target, s=64.0, m=0.35, reduction="mean", *, grad=False,
                             grad_output=None, grad_out=None):
    r"""Large margin cosine loss, CosFace (Wang et al., CVPR 2018).

    .. math::

        \ell_n = -\log \frac{e^{s (\cos\theta_{n,t} - m)}}
                 {e^{s (\cos\theta_{n,t} - m)} + \sum_{j \ne t} e^{s \cos\theta_{n,j}}},
        \qquad \cos\theta_{n,j} = \frac{f_n \cdot W_j}{\lVert f_n\rVert \lVert W_j\rVert}

    ``features`` (N, D), class ``weight`` (C, D), integer ``target`` (N,); norms are
    clamped below at 1e-12 as ``torch.nn.functional.normalize`` does. ``grad=True``
    gives ``(loss, (d/d features, d/d weight))``; ``grad_out`` receives the first.

    References
    ----------
    Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018.
    """
    check_reduction(reduction)
    s = check_real(s, "s", 0.0, low_open=True)
    m = check_real(m, "m")
    f = as_float_array(features, "features")
    if f.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {f.shape}")
    w = as_float_array(weight, "weight", f.dtype)
    if w.ndim != 2 or w.shape[1] != f.shape[1] or w.shape[0] == 0:
        raise ValueError(f"weight must be (C, D) with D = {f.shape[1]} and C >= 1, got shape {w.shape}")
    t = as_index_array(target, "target")
    check_shape(t.shape, f.shape[:1], "target", f"features of shape {f.shape} (one class per row)")
    check_class_indices(t, w.shape[0], "target")
    dtype = f.dtype
    n, n_classes = f.shape[0], w.shape[0]
    f_unit, f_norms = _normalize_rows(f)
    w_unit, w_norms = _normalize_rows(w)
    logits = f_unit @ w_unit.T
    logits *= dtype.type(s)
    logits[np.arange(n), t] -= dtype.type(s * m)
    loss = np.empty(n, dtype)
    ones = np.ones(n_classes, dtype)
    if grad:
        scale = np.ascontiguousarray(np.broadcast_to(loss_scale(reduction, grad_output, (n,), n, dtype), (n,)),
                                     dtype)
    else:
        scale = np.empty(0, dtype)
    rows = logits.reshape(n, 1, n_classes)
    softmax_cross_entropy_rows(read_only(rows), read_only(t.reshape(n, 1)), read_only(ones), dtype.type(n_classes),
                               dtype.type(1), dtype.type(0), dtype.type(0), -100, scale, loss, rows, grad)
    total = sum_float64(loss) if reduction != "none" else 0.0
    result = finish(total, loss, reduction, n, dtype)
    if not grad:
        return result
    # logits now hold d loss / d logits; d logits / d cos = s.
    g_f = (logits @ w_unit) * dtype.type(s)
    g_w = (logits.T @ f_unit) * dtype.type(s)
    buffer = GradientBuffer(f, dtype, grad_out)
    buffer.array[...] = _normalize_backward(f_unit, f_norms, g_f)
    return result, (buffer.result(), _normalize_backward(w_unit, w_norms, g_w))


def anchor_loss(input, target, gamma=0.5, slack=0.05, reduction="mean", *, anchor="neg", grad=False,
                grad_output=None, grad_out=None):
    r"""Anchor Loss (Ryou, Jeong, Perona, ICCV 2019), as its authors' implementation defines it.

    With :math:`p = \sigma(x)` per class, :math:`b_c` the binary cross-entropy of
    :math:`x_c` against the one-hot target and anchors held constant
    (``.detach()`` in the reference code):

    .. math::

        \ell_n = (1 - p_t + q_{neg})^{\gamma_{pos}}\, b_t
                 + \sum_{c \ne t} (1 + p_c - q_{pos})^{\gamma_{neg}}\, b_c,
        \quad q_{pos} = \max(p_t - \mathrm{slack}, 0),
        \quad q_{neg} = \min(\max_{c \ne t} p_c + \mathrm{slack}, 1)

    ``anchor="neg"`` (the default, as in the reference) sets :math:`\gamma_{neg} =
    \gamma, \gamma_{pos} = 0`; ``"pos"`` the reverse. ``reduction="mean"`` averages
    the per-sample sums over the batch. The gradient holds :math:`q_{pos}, q_{neg}`
    constant (a stop-gradient), so it is not the derivative of the value. The
    reference's ``warm_up`` (cross-entropy for the first epochs) is left to the caller.

    References
    ----------
    Ryou, Jeong and Perona, "Anchor Loss: Modulating Loss Scale Based on Prediction
    Difficulty", ICCV 2019; https://github.com/slryou41/AnchorLoss (``anchor_loss.py``).
    """
    check_reduction(reduction)
    gamma = check_real(gamma, "gamma", 0.0)
    slack = check_real(slack, "slack")
    check_choice(anchor, "anchor", ("neg", "pos"))
    x = as_float_array(input, "input")
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"input must be (N, C) logits, got shape {x.shape}")
    t = as_index_array(target, "target")
    check_shape(t.shape, x.shape[:1], "target", f"input of shape {x.shape} (one class per row)")
    check_class_indices(t, x.shape[1], "target")
    dtype = x.dtype
    n = x.shape[0]
    gamma_pos, gamma_neg = (gamma, 0.0) if anchor == "pos" else (0.0, gamma)
    loss = np.empty(n, dtype)
    if grad:
        scale = np.ascontiguousarray(np.broadcast_to(loss_scale(reduction, grad_output, (n,), n, dtype), (n,)),
                                     dtype)
        buffer = GradientBuffer(x, dtype, grad_out)
        grad_rows = buffer.view(lambda a: a if a.flags.c_contiguous else np.empty(a.shape, a.dtype),
                                lambda v, shape: v)
    else:
        scale = np.empty(0, dtype)
        grad_rows = np.empty((0, 0), dtype)
    anchor_rows(read_only(np.ascontiguousarray(x)), read_only(t), dtype.type(gamma_pos), dtype.type(gamma_neg),
                dtype.type(slack), scale, loss, grad_rows, grad)
    total = sum_float64(loss) if reduction != "none" else 0.0
    result = finish(total, loss, reduction, n, dtype)
    return (result, buffer.result()) if grad else result


def dice_loss(input, target, smooth=1.0, *, reduction="mean", grad=False, grad_output=None, grad_out=None):
    r"""Soft Dice loss for segmentation, binary (sigmoid) or multi-class (softmax).

    Per sample :math:`n` and class :math:`c`, over the positions :math:`k`:

    .. math::

        \ell_n = 1 - \frac{1}{C} \sum_c
                 \frac{2 \sum_k p_{nck}\, y_{nck} + \mathrm{smooth}}
                      {\sum_k p_{nck} + \sum_k y_{nck} + \mathrm{smooth}}

    * binary: ``input`` logits (N, d1, ...) and ``target`` of the same shape with
      values in [0, 1]; :math:`p = \sigma(x)`, C = 1;
    * multi-class: ``input`` logits (N, C, d1, ...) and integer ``target``
      (N, d1, ...); :math:`p` the softmax over C, :math:`y` the one-hot target.

    The form is chosen by the target: integer targets with one axis fewer than the
    input are multi-class. ``reduction`` over the samples; the gradient is with
    respect to the logits. ``smooth > 0`` keeps empty masks finite.

    References
    ----------
    Milletari, Navab and Ahmadi, "V-Net", 3DV 2016; Sudre et al., "Generalised Dice
    overlap as a deep learning loss function", DLMIA 2017.
    """
    check_reduction(reduction)
    smooth = check_real(smooth, "smooth", 0.0)
    x = as_float_array(input, "input")
    if x.ndim < 1:
        raise ValueError("input must have a batch axis: (N, ...) or (N, C, ...)")
    dtype = x.dtype
    target_array = np.asarray(target)
    binary = not (target_array.dtype.kind in "iu" and target_array.ndim == x.ndim - 1)
    if binary:
        y = as_target_array(target_array, "target", dtype)
        check_shape(y.shape, x.shape, "target", "input (binary targets have the input's shape)")
        if ((y < 0) | (y > 1)).any():
            raise ValueError(f"binary target must lie in [0, 1]; found {y[(y < 0) | (y > 1)].flat[0]}")
        x3 = x.reshape(x.shape[0], -1, 1) if x.size else x.reshape(x.shape[0], 0, 1)
        soft = read_only(np.ascontiguousarray(y.reshape(x3.shape)))
        labels = np.empty((0, 0), np.intp)
    else:
        if x.ndim < 2 or x.shape[1] == 0:
            raise ValueError(f"multi-class input must be (N, C, ...) with C >= 1, got shape {x.shape}")
        t = as_index_array(target_array, "target")
        check_shape(t.shape, (x.shape[0],) + x.shape[2:], "target", f"input of shape {x.shape}")
        check_class_indices(t, x.shape[1], "target")
        x3 = class_rows(x)
        labels = read_only(np.ascontiguousarray(t.reshape(x.shape[0], -1)))
        soft = np.empty((0, 0, 0), dtype)
    n = x.shape[0]
    loss = np.empty(n, dtype)
    if grad:
        scale = np.ascontiguousarray(np.broadcast_to(loss_scale(reduction, grad_output, (n,), n, dtype), (n,)),
                                     dtype)
        buffer = GradientBuffer(x, dtype, grad_out)
        if binary:
            grad_view = buffer.view(lambda a: np.reshape(a, x3.shape), lambda v, shape: v.reshape(shape))
        else:
            grad_view = buffer.view(class_rows, class_rows_undo)
    else:
        scale = np.empty(0, dtype)
        grad_view = np.empty((0, 0, 0), dtype)
    soft_dice_samples(read_only(x3), labels, soft, binary, dtype.type(smooth), scale, loss, grad_view, grad)
    total = sum_float64(loss) if reduction != "none" else 0.0
    result = finish(total, loss, reduction, n, dtype)
    return (result, buffer.result()) if grad else result


LargeMarginCosineLoss = criterion("LargeMarginCosineLoss", large_margin_cosine_loss, 3)
AnchorLoss = criterion("AnchorLoss", anchor_loss, 2)
DiceLoss = criterion("DiceLoss", dice_loss, 2)
