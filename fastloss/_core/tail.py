"""The one kernel tail: what every row wrapper does around its kernel call.

A wrapper validates its arguments and lays them out for its kernel; then, with a
:class:`KernelTail`::

    tail = KernelTail(reduction, grad, grad_output, loss_shape, dtype, denominator)
    d_x = tail.gradient(x, grad_out, reads=(t,))                # where the kernel writes it
    total = kernel(x, t, tail.scale, tail.losses, d_x, grad)    # the unreduced losses into tail.losses
    return tail.result(total)                                   # finish(), and the gradients

``tail.scale`` is ``grad_output`` as one factor per loss element, a mean's divided by
``denominator``. Without a gradient, ``tail.scale`` and :meth:`KernelTail.gradient` are
the empty arrays the kernels take in their place (one Numba type each, so no new
specialisation). Within :func:`~fastloss._core.reduction.in_parts` the result is the
reduction's parts and the scale divides by the whole batch's denominator.
"""
import math

import numpy as np

from .layout import GradientBuffer
from .numerics import sum_float64
from .reduction import finish, scale_rows

#: The empty arrays kernels take in place of a gradient's, by dtype and rank (made once:
#: a small call's every microsecond counts).
EMPTY = {(np.dtype(d), rank): np.empty((0,) * rank, d) for d in (np.float32, np.float64) for rank in (1, 2, 3)}


class KernelTail:
    """The gradient's factor per loss element (``scale``), the gradient buffers, the
    unreduced losses (``losses``, flat, in ``dtype``) and the result of one loss call.
    ``loss_shape`` is a tuple and ``dtype`` a ``np.dtype``; ``denominator`` is the mean's
    (1 for a kernel that divides by the denominator it counts itself, which it then
    gives to :meth:`result`)."""

    __slots__ = ("reduction", "grad", "loss_shape", "dtype", "denominator", "scale", "losses", "_buffers")

    def __init__(self, reduction, grad, grad_output, loss_shape, dtype, denominator):
        self.reduction = reduction
        self.grad = grad
        self.loss_shape = loss_shape
        self.dtype = dtype
        self.denominator = denominator
        self.losses = np.empty(math.prod(loss_shape), dtype)
        self.scale = scale_rows(reduction, grad_output, loss_shape, denominator, dtype) if grad else EMPTY[dtype, 1]
        self._buffers = ()

    def gradient(self, like, grad_out=None, reads=(), shape=None, view=None, rank=2):
        """Where the kernel writes the gradient with respect to ``like``: a
        :class:`~fastloss._core.layout.GradientBuffer` (``grad_out``, if given, checked
        against ``scale`` and the other arrays the kernel ``reads``: a sequence, or a dict
        by argument name), as a C-contiguous
        array of ``shape`` (``like``'s by default) or through ``view``, a ``(make, undo)``
        pair (see :meth:`~fastloss._core.layout.GradientBuffer.view`). Without a gradient,
        an empty array of ``rank`` dimensions (``len(shape)`` when given). :meth:`result`
        returns the gradients in the order of these calls."""
        if not self.grad:
            return EMPTY[self.dtype, len(shape) if shape is not None else rank]
        reads = {**reads, "grad_output": self.scale} if isinstance(reads, dict) else (*reads, self.scale)
        buffer = GradientBuffer(like, self.dtype, grad_out, reads=reads)
        self._buffers += (buffer,)
        if view is not None:
            return buffer.view(*view)
        return buffer.contiguous(like.shape if shape is None else shape)

    def result(self, total=None, denominator=None, more=()):
        """The call's result (:func:`~fastloss._core.reduction.finish`) from the kernel's
        float64 ``total`` (summed here from ``losses`` when None) and the mean's
        ``denominator`` (the one given at the start when None); with a gradient,
        ``(result, gradient)``, or ``(result, gradients)`` for several (the buffers', then
        ``more``)."""
        if total is None:
            total = sum_float64(self.losses) if self.reduction != "none" else 0.0
        value = finish(total, self.losses.reshape(self.loss_shape), self.reduction,
                       self.denominator if denominator is None else denominator, self.dtype)
        if not self.grad:
            return value
        if len(self._buffers) == 1 and not more:  # the common case, without building a tuple
            return value, self._buffers[0].result()
        return value, (*[buffer.result() for buffer in self._buffers], *more)
