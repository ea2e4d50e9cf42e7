"""One parametrised kernel for every elementwise loss.

A loss of this shape registers a scalar kernel

    kernel(x, y, z, p0, p1, p2) -> (loss, dloss/dx, dloss/dz)

where ``x`` is the input, ``y`` the target, ``z`` an optional third operand (a
positive-class weight, a variance, a second input) and ``p0..p2`` float options.
:func:`elementwise_tiles` applies it over broadcast operands, multiplies by the
elementwise ``weight``, reduces, and writes both gradients already scaled by
``grad_output``. The kernel is chosen by a :class:`fastloss._jit.KernelKind`, so
each loss gets its own machine code, and that code is cached.
"""
import numpy as np
from numba import prange

from ._jit import KernelRegistry, jit
from ._layout import GradientBuffer, flat_rows, flat_rows_out
from ._math import sum_float64
from ._reduction import finish, loss_scale

_KERNELS = KernelRegistry("elementwise")
register = _KERNELS.register
_pointwise = _KERNELS.call

# Columns per parallel work item: long enough to vectorise, short enough that a
# single long row still spreads over all threads.
TILE = 4096


@jit(parallel=True)
def elementwise_tiles(kind, x, y, z, weight, p0, p1, p2, scale, loss, dx, dz, want_loss, want_dx, want_dz):
    """Apply scalar kernel ``kind`` to 2-D operands of one shape (stride 0 allowed).

    Returns the float64 sum of ``weight * loss``; fills ``loss`` (if ``want_loss``) and
    ``dx``/``dz`` = ``scale * weight * dloss`` (if asked). Tiles of :data:`TILE`
    columns of one row are the parallel work items.
    """
    rows, cols = x.shape
    per_row = (cols + TILE - 1) // TILE
    n_tiles = rows * per_row
    partial = np.zeros(n_tiles)
    for tile in prange(n_tiles):
        r = tile // per_row
        c0 = (tile - r * per_row) * TILE
        c1 = min(c0 + TILE, cols)
        values = np.empty(c1 - c0, x.dtype)
        for c in range(c0, c1):
            l, gx, gz = _pointwise(kind, x[r, c], y[r, c], z[r, c], p0, p1, p2)
            w = weight[r, c]
            values[c - c0] = l * w
            if want_dx or want_dz:
                g = scale[r, c] * w
                if want_dx:
                    dx[r, c] = gx * g
                if want_dz:
                    dz[r, c] = gz * g
        if want_loss:
            for c in range(c0, c1):
                loss[r, c] = values[c - c0]
        partial[tile] = sum_float64(values)
    return sum_float64(partial)


def elementwise_loss(kind, x, y, z=None, weight=None, params=(0.0, 0.0, 0.0), *, reduction,
                     grad, grad_output, grad_out, dz_like=None, denominator=None):
    """Run kernel ``kind`` and assemble the result as every elementwise loss returns it.

    ``x``, ``y``, ``z``, ``weight`` are validated arrays of the compute dtype (``y``,
    ``z``, ``weight`` broadcastable to ``x``). ``dz_like`` asks for the gradient with
    respect to ``z`` too (shaped like ``dz_like``, reduced over broadcast axes).
    ``denominator`` of the mean defaults to ``x.size``; ``grad_out`` receives the gradient for ``x``.
    """
    dtype = x.dtype
    shape = x.shape
    one = np.ones((), dtype)
    operands = [flat_rows(a if a is not None else one, shape) for a in (x, y, z, weight)]
    two_d = operands[0].shape
    denominator = x.size if denominator is None else denominator
    want_loss = reduction == "none"
    loss = np.empty(shape, dtype) if want_loss else np.empty((0, 0), dtype)
    loss2 = flat_rows_out(loss) if want_loss else loss
    empty = np.empty((0, 0), dtype)
    dx_buf = dz_buf = None
    dx2 = dz2 = empty
    scale = empty
    if grad:
        scale = flat_rows(loss_scale(reduction, grad_output, shape, denominator, dtype), shape)
        dx_buf = GradientBuffer(x, dtype, grad_out)
        dx2 = dx_buf.view(flat_rows_out, lambda v, s: v.reshape(s))
        if dz_like is not None:
            dz2 = np.empty(two_d, dtype)
    params = tuple(dtype.type(p) for p in params)
    total = elementwise_tiles(kind, *operands, *params, scale, loss2, dx2, dz2,
                              want_loss, grad, grad and dz_like is not None)
    result = finish(total, loss, reduction, denominator, dtype)
    if not grad:
        return result
    dx = dx_buf.result()
    if dz_like is None:
        return result, dx
    return result, (dx, _sum_to_shape(dz2.reshape(shape), np.shape(dz_like)).astype(dtype, copy=False))


def _sum_to_shape(full, shape):
    """Sum a broadcast gradient back to the operand's own shape."""
    lead = full.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and full.shape[lead + i] != 1)
    summed = full.sum(axis=axes, keepdims=True, dtype=np.float64) if axes else full
    return summed.reshape(shape)
