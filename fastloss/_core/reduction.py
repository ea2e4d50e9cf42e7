"""The one reduction helper: how a per-element loss becomes the result, and how
``grad_output`` becomes the per-element factor that the fused kernels multiply their
gradient by (so that gradients are written once, already scaled)."""
import contextlib
import contextvars
import dataclasses
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
    g = 1.0
    if grad_output is not None:
        g = as_grad_output(grad_output, np.float64)
        if np.ndim(g) != 0:
            raise ValueError(f"grad_output must be a scalar for reduction={reduction!r}, got shape {np.shape(g)}")
        g = float(g)
    if reduction == "mean":
        whole = _batch_denominator()
        g = _divide(g, denominator if whole is None else whole)
    return np.asarray(g, dtype)


def scale_rows(reduction, grad_output, loss_shape, denominator, dtype):
    """:func:`loss_scale` as the row kernels read it: a C-contiguous ``(prod(loss_shape),)``
    array of ``dtype``, one factor per element of the unreduced loss (a view of
    ``grad_output`` where it already is one, so that overlap checks see it)."""
    factor = loss_scale(reduction, grad_output, loss_shape, denominator, dtype)
    size = math.prod(loss_shape)
    if factor.ndim == 0:  # the common case, without broadcast_to's cost (nor np.full's)
        rows = np.empty(size, dtype)
        rows[...] = factor
        return rows
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
    """The result: ``losses`` for "none", the sum ``total``, or ``total`` over ``denominator``.

    A mean over nothing (empty batch, every target ignored) is NaN, as in torch. Within
    :func:`in_parts`, a reduced loss is its :class:`Parts` instead.
    """
    if reduction == "none":
        return losses
    if _WHOLE_BATCH.get() is not None:
        return Parts(losses, float(total), float(denominator) if reduction == "mean" else 0.0)
    if reduction == "sum":
        return dtype.type(total)
    return dtype.type(total / denominator if denominator else _divide(total, denominator))


# ---------------------------------------------------------------- a reduction in parts

@dataclasses.dataclass(frozen=True)
class Parts:
    """A reduced loss before its one division: ``losses``, the unreduced loss; the float64
    ``numerator`` (the sum, or a mean's weighted sum) and the mean's ``denominator`` (0
    for a sum), each exactly as the call would reduce them. Over a batch cut into chunks
    the numerators and the denominators add up (:mod:`fastloss._core.batch`)."""

    losses: np.ndarray
    numerator: float
    denominator: float


@dataclasses.dataclass(frozen=True)
class _WholeBatch:
    denominator: float | None


_WHOLE_BATCH = contextvars.ContextVar("fastloss_whole_batch", default=None)


@contextlib.contextmanager
def in_parts(denominator=None):
    """Within it a loss called with a reducing ``reduction`` returns its :class:`Parts` in
    place of its value, and, given the whole batch's ``denominator`` (a chunk's gradient),
    a mean scales its gradient by ``grad_output / denominator`` instead of by its own.

    The one place where each loss's reduction is formed is then its own wrapper (and the
    kernels that count a mean's denominator as they check the targets): the in-memory
    call, streaming, Dask and :mod:`fastloss.torch` all take it from there."""
    token = _WHOLE_BATCH.set(_WholeBatch(denominator))
    try:
        yield
    finally:
        _WHOLE_BATCH.reset(token)


def _batch_denominator():
    """The whole batch's denominator that :func:`in_parts` gives, or None."""
    whole = _WHOLE_BATCH.get()
    return None if whole is None else whole.denominator


def keeps_losses(reduction):
    """Whether the call returns its unreduced losses: for "none", and within :func:`in_parts`."""
    return reduction == "none" or _WHOLE_BATCH.get() is not None


def divides_itself(reduction):
    """Whether a kernel that counts its mean's denominator itself (as it checks its class
    targets) divides the gradient by it: for "mean", unless :func:`in_parts` gives the
    whole batch's, which :func:`loss_scale` has then put in the gradient's scale."""
    return reduction == "mean" and _batch_denominator() is None
