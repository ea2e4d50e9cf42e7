r"""Classification extras beyond torch.nn.functional: CosFace, Anchor Loss, soft Dice.

* :func:`large_margin_cosine_loss` normalises the features and the class weights,
  then runs the engine of :func:`fastloss.linear_cross_entropy`
  (:func:`fastloss.classification.linear_softmax_chunks`) on them: per chunk of rows,
  a BLAS product gives the scaled cosines, the margin shifts the target's, the fused
  cross-entropy kernel writes the gradient in place over them, and two more products
  give the gradients of the features and of the weights; the (N, C) logits never
  exist whole (with very many classes, the engine also goes through them in blocks:
  :func:`fastloss.classification.linear_chunk_shape`).
* :func:`anchor_loss` is a row kernel, :func:`anchor_rows`.
* :func:`dice_loss` runs two kernels over chunks of positions, serving the binary
  (sigmoid) and multi-class (softmax) forms: :func:`soft_dice_sums` computes the
  probabilities (into the gradient buffer) and their sums, checking the targets on
  the way; :func:`soft_dice_grad` turns the probabilities into the gradient in place.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._core.backends import select
from .._core.layout import GradientBuffer, read_only
from .._core.reduction import check_options, finish, loss_scale
from .._core.table import LOSSES
from .._core.tail import KernelTail
from .._core.validation import (
    as_class_weight,
    as_float_array,
    as_index_array,
    as_target_array,
    check_choice,
    check_class_indices,
    check_option,
    check_shape,
)
from ..classification import SERIAL_BELOW, linear_chunk_shape, linear_softmax_chunks, softmax_options
from .cpu import DICE_CHUNK

if TYPE_CHECKING:
    from typing import Any, Literal

    from numpy.typing import NDArray

    from .._typing import ArrayLike, Backend, FloatArray, Grad2, Loss, Reduction, WithGrad

# ---------------------------------------------------------------- wrappers

def large_margin_cosine_loss(features: ArrayLike, weight: ArrayLike, target: ArrayLike, s: float = 64.0,
                             m: float = 0.35, reduction: Reduction = "mean", *, grad: bool = False,
                             grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
                             backend: Backend = None) -> Loss | WithGrad[Grad2]:
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

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> features = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> classes = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> t = np.array([0, 1])
    >>> loss, (d_features, d_classes) = fastloss.large_margin_cosine_loss(features, classes, t, s=4.0, m=0.5, grad=True)
    >>> round(float(loss), 4)
    0.1269
    >>> d_features.shape, d_classes.shape
    ((2, 2), (2, 2))
    """
    impl = select("large_margin_cosine_loss", backend)
    kernels = impl.kernels("extras")
    check_options(reduction, grad)
    s = check_option("large_margin_cosine_loss", "s", s)
    m = check_option("large_margin_cosine_loss", "m", m)
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
    f_unit = np.empty(f.shape, dtype)
    f_norms = np.empty(n)
    w_unit = np.empty(w.shape, dtype)
    w_norms = np.empty(n_classes)
    kernels.normalize_rows(read_only(f), dtype.type(1), f_unit, f_norms)
    kernels.normalize_rows(read_only(w), dtype.type(s), w_unit, w_norms)  # s folded into the class weights
    # The cross-entropy of the logits s cos - s m [j = t] = f_unit (s w_unit)^T - s m [j = t],
    # a chunk of rows (and of classes, when they are very many) at a time: the (N, C) logits
    # never exist whole. With grad=True the engine gives d/d f_unit = G (s w_unit) and
    # d/d (s w_unit) = G^T f_unit.
    step, block = linear_chunk_shape(n, n_classes, dtype.itemsize)
    options = softmax_options(n_classes, as_class_weight(None, n_classes, dtype), True, -100, 0.0, 0.0, dtype)
    tail = KernelTail(reduction, grad, grad_output, (n,), dtype, n)
    grads = None
    if grad:
        grads = (np.empty(f.shape, dtype), np.empty(w.shape, dtype), None)
    total = linear_softmax_chunks(f_unit, w_unit, None, impl.kernels("classification"), t.reshape(-1, 1), options,
                                  tail.scale if grad else None, tail.losses, step, grads, margin=dtype.type(s * m),
                                  block=block)
    if grads is None:
        return tail.result(total)
    g_f, g_w, _ = grads
    g_f_out = tail.gradient(f, grad_out, {"weight": weight, "target": target})
    kernels.normalize_rows_backward(read_only(f_unit), f_norms, dtype.type(1), read_only(g_f), g_f_out)
    w_unit_plain = w_unit / dtype.type(s)
    g_w_out = np.empty(w.shape, dtype)
    kernels.normalize_rows_backward(read_only(w_unit_plain), w_norms, dtype.type(s), read_only(g_w), g_w_out)
    return tail.result(total, more=(g_w_out,))


def anchor_loss(input: ArrayLike, target: ArrayLike, gamma: float = 0.5, slack: float = 0.05,
                reduction: Reduction = "mean", *, anchor: Literal["neg", "pos"] = "neg", grad: bool = False,
                grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
                backend: Backend = None) -> Loss | WithGrad[FloatArray]:
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
    A +inf logit off the target makes the row's loss +inf (the reference code, which
    masks its two terms by multiplying, gives 0 * inf = NaN there).

    References
    ----------
    Ryou, Jeong and Perona, "Anchor Loss: Modulating Loss Scale Based on Prediction
    Difficulty", ICCV 2019; https://github.com/slryou41/AnchorLoss (``anchor_loss.py``).

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    >>> round(float(fastloss.anchor_loss(logits, np.array([0, 1]))), 4)
    3.1707
    """
    impl = select("anchor_loss", backend)
    kernels = impl.kernels("extras")
    check_options(reduction, grad)
    gamma = check_option("anchor_loss", "gamma", gamma)
    slack = check_option("anchor_loss", "slack", slack)
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
    tail = KernelTail(reduction, grad, grad_output, (n,), dtype, n)
    grad_rows = tail.gradient(x, grad_out, {"target": target})
    kernels.anchor_rows(read_only(np.ascontiguousarray(x)), read_only(t), dtype.type(gamma_pos),
                        dtype.type(gamma_neg), dtype.type(slack), tail.scale, tail.losses, grad_rows, grad)
    return tail.result()


def _check_dice_targets(target, binary, n_classes):
    """ValueError for a binary target outside [0, 1] or a class index outside [0, C)."""
    if not binary:
        check_class_indices(target, n_classes, "target")
        return
    bad = (target < 0) | (target > 1)
    if bad.any():
        raise ValueError(f"binary target must lie in [0, 1]; found {target[bad].flat[0]}")


def dice_loss(input: ArrayLike, target: ArrayLike, smooth: float = 1.0, *, reduction: Reduction = "mean",
              grad: bool = False, grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
              backend: Backend = None) -> Loss | WithGrad[FloatArray]:
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

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> logits = np.array([[2.0, -2.0, 0.0, 1.0]])
    >>> round(float(fastloss.dice_loss(logits, np.array([[1, 0, 0, 1]]))), 4)
    0.1926
    """
    impl = select("dice_loss", backend)
    kernels = impl.kernels("extras")
    check_options(reduction, grad)
    smooth = check_option("dice_loss", "smooth", smooth)
    x = as_float_array(input, "input")
    if x.ndim < 1:
        raise ValueError("input must have a batch axis: (N, ...) or (N, C, ...)")
    dtype = x.dtype
    n = x.shape[0]
    target_array = np.asarray(target)
    binary = not (target_array.dtype.kind in "iu" and target_array.ndim == x.ndim - 1)
    if binary:
        y = as_target_array(target_array, "target", dtype)
        check_shape(y.shape, x.shape, "target", "input (binary targets have the input's shape)")
        n_classes = 1
        soft = read_only(np.ascontiguousarray(y.reshape(n, -1) if n else y.reshape(0, 0)))
        labels = np.empty((1, 0), np.intp)
    else:
        if x.ndim < 2 or x.shape[1] == 0:
            raise ValueError(f"multi-class input must be (N, C, ...) with C >= 1, got shape {x.shape}")
        t = as_index_array(target_array, "target")
        check_shape(t.shape, (n,) + x.shape[2:], "target", f"input of shape {x.shape}")
        n_classes = x.shape[1]
        labels = read_only(np.ascontiguousarray(t.reshape(n, -1) if n else t.reshape(0, 0)))
        soft = np.empty((1, 0), dtype)
    n_pos = x.size // max(n * n_classes, 1)
    x3 = read_only(np.ascontiguousarray(x.reshape(n, n_classes, n_pos)))
    n_chunks = (n_pos + DICE_CHUNK - 1) // DICE_CHUNK
    inter = np.empty((n, n_chunks, n_classes))
    total = np.empty((n, n_chunks, n_classes))
    targets = y if binary else t
    if grad:
        # grad_output is checked, and a caller's grad_out (possibly the input itself)
        # is written, only once everything is known to be valid: the sums kernel writes
        # the probabilities there before its own target check can fail.
        scale = np.broadcast_to(loss_scale(reduction, grad_output, (n,), n, dtype), (n,)).astype(np.float64)[:, None]
        if grad_out is not None:
            _check_dice_targets(targets, binary, n_classes)
        buffer = GradientBuffer(x, dtype, grad_out, reads={"target": targets})
        probs = buffer.contiguous(x3.shape)
    else:
        probs = np.empty((0, 0, 0), dtype)
    serial = x3.size < SERIAL_BELOW
    # The kernel counts the targets out of range as it reads them (they are compared,
    # never used as indices): one pass over them instead of two.
    if (kernels.soft_dice_sums_serial if serial else kernels.soft_dice_sums)(x3, labels, soft, binary, inter, total, probs, grad):
        _check_dice_targets(targets, binary, n_classes)
    inter = inter.sum(axis=1)
    denominator = total.sum(axis=1) + smooth
    loss = (1.0 - ((2.0 * inter + smooth) / denominator).mean(axis=1)).astype(dtype)
    result = finish(loss.sum(dtype=np.float64), loss, reduction, n, dtype)
    if not grad:
        return result
    # d loss_n / d p_{nck} = -(2 y A - B) / (C A^2), A = S + smooth, B = 2 I + smooth, times the scale.
    coef = (-2.0 * scale / (n_classes * denominator)).astype(dtype)
    offset = (scale * (2.0 * inter + smooth) / (n_classes * denominator ** 2)).astype(dtype)
    (kernels.soft_dice_grad_serial if serial else kernels.soft_dice_grad)(labels, soft, binary, coef, offset, probs)
    return result, buffer.result()


# The criterion classes and the exports, from the table of losses.
__all__ = LOSSES.export(__name__, globals())
