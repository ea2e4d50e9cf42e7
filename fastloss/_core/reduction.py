"""The one reduction helper: how a per-element loss becomes the result, and how
``grad_output`` becomes the per-element factor that the fused kernels multiply their
gradient by (so that gradients are written once, already scaled)."""
import math

import numpy as np

from .validation import as_grad_output, check_bool, check_choice

REDUCTIONS = ("none", "mean", "sum")


def check_options(reduction, grad, choices=REDUCTIONS):
    """The options every loss takes, checked before any other: ``reduction``, one of
    ``choices``, and ``grad``, a bool (TypeError otherwise: a truthy string or array
    must not ask for a gradient)."""
    if grad is not True and grad is not False:
        check_bool(grad, "grad")
    if type(reduction) is not str or reduction not in choices:  # one call less on the common path
        check_choice(reduction, "reduction", choices)
    return reduction


def loss_scale(reduction, grad_output, loss_shape, denominator, dtype):
    """d(result)/d(loss_i) times ``grad_output``, broadcastable to ``loss_shape``.

    ``reduction="none"``: ``grad_output`` (default ones) must broadcast to the loss's
    shape. ``"mean"``/``"sum"``: ``grad_output`` is a scalar (default 1), divided by
    ``denominator`` for the mean. A zero denominator (every element ignored) gives
    inf here, which multiplies no element, as in torch.
    """
    if reduction == "none":
        if grad_output is None:
            return np.ones((), dtype)
        g = as_grad_output(grad_output, dtype)
        try:
            if np.broadcast_shapes(g.shape, tuple(loss_shape)) == tuple(loss_shape):
                return g
        except ValueError:
            pass
        raise ValueError(f"grad_output has shape {g.shape}; expected the loss's shape {tuple(loss_shape)}")
    g = 1.0 if grad_output is None else as_grad_output(grad_output, np.float64)
    if np.ndim(g) != 0:
        raise ValueError(f"grad_output must be a scalar for reduction={reduction!r}, got shape {np.shape(g)}")
    g = float(g)
    if reduction == "mean":
        g = _divide(g, denominator)
    return np.asarray(g, dtype)


def scale_rows(reduction, grad_output, loss_shape, denominator, dtype):
    """:func:`loss_scale` as the row kernels read it: a C-contiguous ``(prod(loss_shape),)``
    array of ``dtype``, one factor per element of the unreduced loss (a view of
    ``grad_output`` where it already is one, so that overlap checks see it)."""
    factor = loss_scale(reduction, grad_output, loss_shape, denominator, dtype)
    size = math.prod(loss_shape)
    if factor.ndim == 0:  # the common case, without broadcast_to's cost
        return np.full(size, factor, dtype)
    return np.ascontiguousarray(np.broadcast_to(factor, loss_shape), dtype).reshape(size)


def _divide(a, b):
    """a / b with IEEE results for b = 0 (inf, or NaN for 0/0) and no warning."""
    a, b = float(a), float(b)
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def finish(total, losses, reduction, denominator, dtype):
    """The result: ``losses`` for "none", the sum, or the sum over ``denominator``.

    A mean over nothing (empty batch, every target ignored) is NaN, as in torch.
    """
    if reduction == "none":
        return losses
    if reduction == "sum":
        return dtype.type(total)
    return dtype.type(total / denominator if denominator else _divide(total, denominator))
