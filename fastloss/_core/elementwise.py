"""One parametrised kernel for every elementwise loss.

A loss of this shape registers a scalar kernel

    kernel(x, y, z, p0, p1, p2) -> (loss, dloss/dx, dloss/dz)

where ``x`` is the input, ``y`` the target, ``z`` an optional third operand (a
positive-class weight, a variance, a second input) and ``p0..p2`` float options.
:func:`elementwise_tiles` applies it over broadcast operands, multiplies by the
elementwise ``weight``, reduces, and writes both gradients already scaled by
``grad_output``: ``g * dloss/dx`` with ``g`` the incoming gradient of the element.

A loss whose torch gradient passes ``g`` through a ``where`` or a clamp before it
multiplies anything (a hinge: 0 where the hinge is flat, even for a NaN or infinite
``g``) registers with ``takes_grad=True`` a kernel

    kernel(x, y, z, g, p0, p1, p2) -> (loss, g-weighted dloss/dx, g-weighted dloss/dz)

that applies ``g`` itself, in torch's order. The kernel is chosen by a
:class:`fastloss._core.jit.KernelKind`, so each loss gets its own machine code, and that
code is cached.

The gradient may be written over the input (``grad_out=x``): element ``i`` of every
operand is read before element ``i`` of the gradient is written.
"""
import functools
import math

import numpy as np

from .backends import numba
from .jit import STRICT, KernelRegistry, jit, overload_jit_options, prange
from .layout import GradientBuffer, read_only, reshape_view, sum_to_shape
from .numerics import sum_float64
from .reduction import finish, keeps_losses, loss_scale

_KERNELS = KernelRegistry("elementwise", ("x", "y", "z", "p0", "p1", "p2"))
_GRAD_KERNELS = KernelRegistry("elementwise_grad", ("x", "y", "z", "g", "p0", "p1", "p2"))
_pointwise = _KERNELS.call
_pointwise_grad = _GRAD_KERNELS.call


#: The registered scalar kernels by name, as every backend's elementwise module lists
#: its own (the Cython extension's ``KINDS``).
KINDS: dict = {}
#: ``(kernel, takes_grad)`` of every registered scalar kernel by name: the GPU driver
#: (:mod:`fastloss._core.cuda_elementwise`) compiles the same functions for the device.
SCALAR_KERNELS: dict = {}


def register(kernel, takes_grad=False):
    """The :class:`fastloss._core.jit.KernelKind` of a scalar kernel (``takes_grad``: it
    applies the incoming gradient itself; see the module docstring)."""
    kind = (_GRAD_KERNELS if takes_grad else _KERNELS).register(kernel)
    KINDS[kind.name] = kind
    SCALAR_KERNELS[kind.name] = (kernel, takes_grad)
    return kind


def _scaled(kind, x, y, z, g, p0, p1, p2):
    """``(loss, g * dloss/dx, g * dloss/dz)`` of kernel ``kind`` at one element, whichever
    protocol it follows (resolved when the driver is compiled)."""
    raise NotImplementedError


if numba is not None:
    from numba.extending import overload

    @overload(_scaled, inline="always", jit_options=overload_jit_options(STRICT))
    def _scaled_overload(kind, x, y, z, g, p0, p1, p2):
        if kind.registry == _GRAD_KERNELS.name:
            return lambda kind, x, y, z, g, p0, p1, p2: _pointwise_grad(kind, x, y, z, g, p0, p1, p2)

        def scale(kind, x, y, z, g, p0, p1, p2):
            loss, gx, gz = _pointwise(kind, x, y, z, p0, p1, p2)
            return loss, gx * g, gz * g
        return scale


# Columns per parallel work item: long enough to vectorise, short enough that a
# single long row still spreads over all threads.
TILE = 4096


@jit()
def _column(a, const, scratch, r, c0, c1):
    """Columns ``c0:c1`` of row ``r`` of operand ``a`` as a contiguous 1-D array.

    ``a`` is (rows, cols), (1, cols), (rows, 1) or (1, 1): a row of its own, a row
    shared by every row, one value per row (copied into ``scratch``), or one value
    for all (``const``, filled once by the caller).
    """
    if a.shape[1] != 1:
        return a[r if a.shape[0] > 1 else 0, c0:c1]
    if a.shape[0] == 1:
        return const[:c1 - c0]
    n = c1 - c0
    value = a[r, 0]
    for i in range(n):
        scratch[i] = value
    return scratch[:n]


@jit()
def _constant(a, span):
    """``span`` copies of the value of a (1, 1) operand (empty for any other operand)."""
    if a.shape[0] == 1 and a.shape[1] == 1:
        return np.full(span, a[0, 0])
    return np.empty(0, a.dtype)


@jit(parallel=True, fastmath=frozenset())
def elementwise_tiles(kind, x, y, z, weight, p0, p1, p2, scale, loss, dx, dz, want_loss, want_dx, want_dz):
    """Apply scalar kernel ``kind`` elementwise over C-contiguous 2-D operands.

    ``x`` is (rows, cols); ``y``, ``z``, ``weight``, ``scale`` are (rows, cols),
    (1, cols), (rows, 1) or (1, 1) and broadcast to it (see :func:`_column`).
    Returns the float64 sum of ``weight * loss``; fills ``loss`` (if ``want_loss``) and
    ``dx``/``dz``, ``dloss`` weighted by the incoming gradient ``scale * weight`` (if
    asked; see :func:`_scaled`). A work item is a tile of
    at most :data:`TILE` columns over enough rows to hold about :data:`TILE`
    elements; its inner loop reads contiguous slices only, so that it vectorises.
    """
    rows, cols = x.shape
    span = min(cols, TILE)
    per_row = (cols + TILE - 1) // TILE
    block = max(1, TILE // max(cols, 1))
    n_items = ((rows + block - 1) // block) * per_row
    const_y = _constant(y, span)
    const_z = _constant(z, span)
    const_w = _constant(weight, span)
    const_s = _constant(scale, span)
    single = z.shape[0] == 1 and z.shape[1] == 1 and weight.shape[0] == 1 and weight.shape[1] == 1
    uniform = single and scale.shape[0] == 1 and scale.shape[1] == 1
    z0 = z[0, 0]
    w0 = weight[0, 0]
    g0 = scale[0, 0] * w0  # the loss-only loops pass it too, unused
    partial = np.zeros(n_items)
    for item in prange(n_items):
        b = item // per_row
        c0 = (item - b * per_row) * TILE
        c1 = min(c0 + TILE, cols)
        n = c1 - c0
        values = np.empty(n, x.dtype)
        buf_y = np.empty(n, x.dtype)
        buf_z = np.empty(n, x.dtype)
        buf_w = np.empty(n, x.dtype)
        buf_s = np.empty(n, x.dtype)
        acc = 0.0
        for r in range(b * block, min(b * block + block, rows)):
            xs = x[r, c0:c1]
            ys = _column(y, const_y, buf_y, r, c0, c1)
            zs = _column(z, const_z, buf_z, r, c0, c1)
            ws = _column(weight, const_w, buf_w, r, c0, c1)
            out = loss[r, c0:c1] if want_loss else values
            if want_dz:
                ss = _column(scale, const_s, buf_s, r, c0, c1)
                dxs = dx[r, c0:c1]
                dzs = dz[r, c0:c1]
                for i in range(n):
                    w = ws[i]
                    l, gx, gz = _scaled(kind, xs[i], ys[i], zs[i], ss[i] * w, p0, p1, p2)
                    out[i] = l * w
                    dxs[i] = gx
                    dzs[i] = gz
            elif want_dx and uniform:
                # z, weight and scale are single values: fewer pointers in the loop, so
                # LLVM's runtime alias checks stay under its limit and the loop vectorises.
                dxs = dx[r, c0:c1]
                for i in range(n):
                    l, gx, gz = _scaled(kind, xs[i], ys[i], z0, g0, p0, p1, p2)
                    out[i] = l * w0
                    dxs[i] = gx
            elif want_dx:
                ss = _column(scale, const_s, buf_s, r, c0, c1)
                dxs = dx[r, c0:c1]
                for i in range(n):
                    w = ws[i]
                    l, gx, gz = _scaled(kind, xs[i], ys[i], zs[i], ss[i] * w, p0, p1, p2)
                    out[i] = l * w
                    dxs[i] = gx
            elif uniform:
                for i in range(n):
                    l, gx, gz = _scaled(kind, xs[i], ys[i], z0, g0, p0, p1, p2)
                    out[i] = l * w0
            else:
                for i in range(n):
                    l, gx, gz = _scaled(kind, xs[i], ys[i], zs[i], g0, p0, p1, p2)
                    out[i] = l * ws[i]
            acc += sum_float64(out)
        partial[item] = acc
    return sum_float64(partial)


def _two_d(shape, operands):
    """The (rows, cols) view of ``shape`` for the kernel: one long row when every
    operand is full-size or a single value, else (rows, last axis)."""
    size = math.prod(shape)
    if not shape or all(a is None or a.size in (1, size) for a in operands):
        return 1, size
    return size // shape[-1], shape[-1]


@functools.cache
def _one(dtype):
    """1 as a read-only (1, 1) operand of ``dtype``: an absent operand's value."""
    return read_only(np.ones((1, 1), dtype))


def _pack(a, shape, two_d):
    """Operand ``a`` broadcast to ``shape`` as a read-only C-contiguous 2-D array of
    shape ``two_d``, (1, cols), (rows, 1) or (1, 1) (see :func:`_column`)."""
    if a.size == 1 and a.ndim <= len(shape):  # one value, which broadcasts to any shape of as many axes
        return read_only(np.reshape(a, (1, 1)))
    full = a if a.shape == shape else np.broadcast_to(a, shape)
    view = reshape_view(full, two_d)
    view = np.reshape(full, two_d) if view is None else view
    rows, cols = two_d
    if cols > 1 and view.strides[1] == 0:
        view = view[:, :1]
    if rows > 1 and view.strides[0] == 0:
        view = view[:1]
    return read_only(np.ascontiguousarray(view))


def elementwise_loss(kind, x, y, z=None, weight=None, params=(0.0, 0.0, 0.0), *, reduction,
                     grad, grad_output, grad_out, dz_like=None, denominator=None, backend):
    """Run kernel ``kind`` and assemble the result as every elementwise loss returns it.

    ``x``, ``y``, ``z``, ``weight`` are validated arrays of the compute dtype (``y``,
    ``z``, ``weight`` broadcastable to ``x``). ``dz_like`` asks for the gradient with
    respect to ``z`` too (shaped like ``dz_like``, reduced over broadcast axes).
    ``denominator`` of the mean defaults to ``x.size``; ``grad_out`` receives the gradient for ``x``.
    ``backend`` (a :class:`~fastloss._core.backends.Backend`) holds the driver,
    ``elementwise_tiles``, and its twin of the scalar kernel under the kernel's name.
    """
    kernels = backend.kernels("elementwise")
    driver, kind = kernels.elementwise_tiles, kernels.KINDS[kind.name]
    dtype = x.dtype
    shape = x.shape
    one = _one(dtype)
    scale = loss_scale(reduction, grad_output, shape, x.size if denominator is None else denominator,
                       dtype) if grad else None
    two_d = _two_d(shape, (y, z, weight, scale))
    x2 = read_only(np.ascontiguousarray(np.reshape(x, two_d)))
    operands = [one if a is None else _pack(a, shape, two_d) for a in (y, z, weight, scale)]
    denominator = x.size if denominator is None else denominator
    want_loss = keeps_losses(reduction)
    loss = np.empty(shape, dtype) if want_loss else np.empty((0, 0), dtype)
    loss2 = loss.reshape(two_d) if want_loss else loss
    empty = np.empty((0, 0), dtype)
    dx_buf = None
    dx2 = dz2 = empty
    if grad:
        dx_buf = GradientBuffer(x, dtype, grad_out, reads=(y, z, weight, scale))
        dx2 = dx_buf.contiguous(two_d)
        if dz_like is not None:
            dz2 = np.empty(two_d, dtype)
    y2, z2, w2, s2 = operands
    params = tuple(dtype.type(p) for p in params)
    total = driver(kind, x2, y2, z2, w2, *params, s2, loss2, dx2, dz2, want_loss, grad, grad and dz_like is not None)
    result = finish(total, loss, reduction, denominator, dtype)
    if not grad:
        return result
    dx = dx_buf.result()
    if dz_like is None:
        return result, dx
    return result, (dx, sum_to_shape(dz2.reshape(shape), np.shape(dz_like)).astype(dtype, copy=False))

