"""The device tail of the row and pair losses on the GPU: their arguments on the device, the
incoming gradient as the kernels read it, where the gradient goes, the reduction, and the
error a flagged row raises. Shared by the margin, embedding and extras families' ``cuda.py``
(each loss's kernels stay in its family); the CPU path's twins are in
:mod:`fastloss._core.layout`, :mod:`fastloss._core.reduction` and :mod:`fastloss._core.validation`.
Imported, as every GPU module, on the first call with a device array.
"""
from __future__ import annotations

import math

import numpy as np

from .cuda import block_size, first_flagged, is_device_array, to_device
from .cuda_blocks import block_sum, cuda
from .reduction import loss_scale
from .validation import as_float_array, as_index_array, class_index_error

#: Threads per block, and the slots of the shared buffers of the block reductions.
THREADS = block_size()


def device_floats(value, name, dtype=None):
    """``value`` as a float32 or float64 device array, in ``dtype`` when given: a device
    array as it is (TypeError for another dtype: converting it would be a copy the caller
    should see), a host value checked as the CPU path checks it and copied to the device."""
    if not is_device_array(value):
        return to_device(as_float_array(value, name, dtype))
    array = to_device(value)
    kind = np.dtype(array.dtype)
    if kind not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{name} is a device array of dtype {kind}; the GPU kernels take float32 or float64")
    if dtype is not None and kind != np.dtype(dtype):
        raise TypeError(f"{name} is a device array of dtype {kind}; expected {np.dtype(dtype)}, the dtype of the "
                        f"first input")
    return array


def device_indices(value, name):
    """Integer class indices on the device: a host value checked and copied (int64), a
    device array of any integer dtype as it is (its values are checked by the kernels)."""
    if not is_device_array(value):
        return to_device(as_index_array(value, name))
    array = to_device(value)
    if np.dtype(array.dtype).kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    return array


def rows_of(array, n_rows, n_cols, name):
    """``array`` viewed as (n_rows, n_cols) without a copy (TypeError where its strides
    allow no such view: a non-contiguous device array of another rank)."""
    if tuple(array.shape) == (n_rows, n_cols):
        return array
    if not array.is_c_contiguous():
        raise TypeError(f"{name} is a non-contiguous device array of shape {tuple(array.shape)}; the GPU kernels "
                        f"take it as ({n_rows}, {n_cols}) rows: pass a contiguous array")
    return array.reshape(n_rows, n_cols)


def device_scale(reduction, grad_output, loss_shape, denominator, dtype):
    """``grad_output`` as the kernels read it: ``(scale, stride, factor)``, the gradient of
    row n being multiplied by ``scale[n * stride] * factor``.

    A host ``grad_output`` (or None) gives :func:`fastloss._core.reduction.loss_scale`'s
    numbers, the CPU path's, factor 1. A device one stays on the device: for
    ``reduction="none"`` of the loss's shape (stride 1) or of one element (stride 0), for
    a reduced loss one element, the mean's ``1 / denominator`` then in ``factor``.
    """
    if not is_device_array(grad_output):
        scale = loss_scale(reduction, grad_output, loss_shape, denominator, dtype)
        if scale.size == 1:
            return to_device(scale.reshape(1)), 0, 1.0
        return to_device(np.broadcast_to(scale, loss_shape).reshape(-1)), 1, 1.0
    g = to_device(grad_output, dtype)
    shape = tuple(g.shape)
    if reduction != "none":
        if len(shape) != 0 and math.prod(shape) != 1:
            raise ValueError(f"grad_output must be a scalar for reduction={reduction!r}, got shape {shape}")
        return rows_of(g, 1, 1, "grad_output").reshape(1), 0, (1.0 / denominator if reduction == "mean" else 1.0)
    loss_shape = tuple(loss_shape)
    try:
        fits = np.broadcast_shapes(shape, loss_shape) == loss_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"grad_output has shape {shape}; expected the loss's shape {loss_shape}")
    if math.prod(shape) == 1:
        return rows_of(g, 1, 1, "grad_output").reshape(1), 0, 1.0
    if shape != loss_shape:
        raise TypeError(f"grad_output is a device array of shape {shape}, broadcast to the loss's shape "
                        f"{loss_shape}: on the GPU it must have the loss's shape or one element")
    n_rows = math.prod(loss_shape)
    return rows_of(g, n_rows, 1, "grad_output").reshape(n_rows), 1, 1.0


def _span(array):
    """(first byte, one past the last byte) of a device array's memory; None for an empty one."""
    shape, strides = tuple(array.shape), tuple(array.strides)
    if 0 in shape:
        return None
    # The simulator's device arrays keep their memory in a NumPy array.
    interface = array._ary.__array_interface__ if type(array).__name__ == "FakeCUDAArray" else \
        array.__cuda_array_interface__
    start = interface["data"][0]
    low = sum(min(0, (n - 1) * step) for n, step in zip(shape, strides))
    high = sum(max(0, (n - 1) * step) for n, step in zip(shape, strides))
    return start + low, start + high + np.dtype(array.dtype).itemsize


def _overlap(a, b):
    """Whether the memory spans of device arrays ``a`` and ``b`` meet."""
    span_a, span_b = _span(a), _span(b)
    return span_a is not None and span_b is not None and span_a[0] < span_b[1] and span_b[0] < span_a[1]


def gradient_rows(grad_out, like, dtype, n_rows, n_cols, reads=(), name="grad_out"):
    """Where a kernel writes the gradient of ``like`` (a device input): ``(array, rows)``,
    the array returned and its (n_rows, n_cols) view. A new device array, or the caller's
    device ``grad_out``: the input itself (an in-place gradient: the kernels read a row whole
    before they write its gradient) or memory apart from it and from the other device
    arrays the kernels read, ``reads`` (ValueError otherwise, as the CPU path's
    :func:`fastloss._core.layout.check_no_overlap`; spans are compared, so a strided
    interleaving counts as an overlap)."""
    shape = tuple(like.shape)
    if grad_out is None:
        array = cuda.device_array(shape, dtype)
    else:
        if not is_device_array(grad_out):
            raise TypeError(f"{name} must be a device array for an input on the GPU, got {type(grad_out).__name__}")
        array = to_device(grad_out)
        if tuple(array.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(array.shape)}; expected the input's shape {shape}")
        if np.dtype(array.dtype) != np.dtype(dtype):
            raise TypeError(f"{name} has dtype {array.dtype}; the gradient is computed in {np.dtype(dtype)}")
        if _overlap(array, like) and (_span(array) != _span(like) or tuple(array.strides) != tuple(like.strides)):
            raise ValueError(f"{name} overlaps the input without being it (a shifted or strided view of the same "
                             f"buffer); pass the input itself for an in-place gradient, or a separate array")
        if any(is_device_array(other) and _overlap(array, other) for other in reads):
            raise ValueError(f"{name} overlaps another argument, which the loss reads while it writes the "
                             f"gradient; pass a separate array")
    return array, rows_of(array, n_rows, n_cols, name)


@cuda.jit
def sum_rows(loss, divisor, out):
    """out[0] = sum(loss) / divisor, summed in float64 by one block (a grid-stride loop,
    then :func:`block_sum`): the reduced loss stays on the device."""
    buffer = cuda.shared.array(THREADS, np.float64)
    total = 0.0
    for i in range(cuda.threadIdx.x, loss.shape[0], cuda.blockDim.x):
        total += np.float64(loss[i])
    total = block_sum(buffer, total)
    if cuda.threadIdx.x == 0:
        out[0] = total / divisor


def reduced(loss, reduction, loss_shape, denominator):
    """The result of per-row losses ``loss`` (a device array): of ``loss_shape`` for
    ``reduction="none"``, else a 0-d device array, the sum, or the sum over
    ``denominator`` (NaN over nothing, as the CPU path's), by the kernel :func:`sum_rows`."""
    if reduction == "none":
        return loss.reshape(tuple(loss_shape))
    dtype = np.dtype(loss.dtype)
    if reduction == "mean" and denominator == 0:
        return cuda.to_device(np.full((), np.nan, dtype))
    out = cuda.device_array(1, dtype)
    sum_rows[1, THREADS](loss, float(denominator) if reduction == "mean" else 1.0, out)
    return out.reshape(())


def raise_flagged(flag, n_items, fail):
    """Call ``fail(item)``, which raises the CPU path's ValueError, for the first item a
    kernel flagged (nothing when none was, or when checks are off: see
    :func:`fastloss._core.cuda.first_flagged`)."""
    item = first_flagged(flag, n_items)
    if item is not None:
        fail(item)


def index_error(target, n_classes, name="target"):
    """The ``fail`` of :func:`raise_flagged` for a flagged row of class indices ``target``
    (a device array: the one bad index is copied to the host for the message)."""
    def fail(row):
        raise class_index_error(target, row, n_classes, name)
    return fail
