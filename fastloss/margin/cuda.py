r"""The GPU kernels of :mod:`fastloss.margin`, in the ``numba.cuda`` dialect: the row
losses ``multi_margin_loss``, ``multilabel_margin_loss`` and the multi-class ``hinge_loss``.

One block per row of (N, C) scores: the block's threads stride over the row's classes,
reduce what the row needs in shared memory (:func:`block_sum`, :func:`block_max`), and
only then write the row's gradient, each thread its own classes, so that the gradient
may be written over the scores (``grad_out=input``). Arithmetic is done in float64 and
each result stored in the input's dtype (the CPU kernels compute float32 in float32: the
two agree to float32's rounding). A class index out of range is caught in the kernel,
which never reads with it: the row's loss and gradient are NaN and the row is flagged
(:func:`fastloss._core.cuda.new_flag`); the call then raises the CPU path's ValueError.

This module also holds the device tail that every row loss of this branch shares
(:func:`device_floats`, :func:`device_indices`, :func:`device_scale`,
:func:`gradient_rows`, :func:`reduced`, the kernel :func:`sum_rows`), used by
:mod:`fastloss.embedding.cuda` and :mod:`fastloss.extras.cuda` too.
"""
from __future__ import annotations

import math

import numpy as np

from .._core.cuda import block_size, first_flagged, is_device_array, new_flag, to_device
from .._core.cuda_blocks import block_max, block_sum, cuda
from .._core.reduction import check_options, loss_scale
from .._core.validation import (
    as_class_weight,
    as_float_array,
    as_index_array,
    check_class_indices,
    check_option,
    class_index_error,
)
from . import check_multilabel_shape, check_multilabel_targets, check_power, check_target_rows, class_shape

#: Threads per block, and the slots of the shared buffers of the block reductions.
THREADS = block_size()

# ---------------------------------------------------------------- the rows' device tail


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


# ---------------------------------------------------------------- device functions


@cuda.jit(device=True)
def invalid_row(n, loss, grad, want_grad, flag, item):
    """Row n's loss and gradient NaN, item ``item`` flagged (by thread 0)."""
    for c in range(cuda.threadIdx.x, grad.shape[1] if want_grad else 0, cuda.blockDim.x):
        grad[n, c] = math.nan
    if cuda.threadIdx.x == 0:
        loss[n] = math.nan
        cuda.atomic.min(flag, 0, item)


@cuda.jit(device=True)
def first_index(buffer, index, limit):
    """The smallest of the threads' ``index`` (each at most ``limit``), for every thread:
    :func:`block_max` of ``limit - index``, exact in float64."""
    return limit - int(block_max(buffer, np.float64(limit - index)))


# ---------------------------------------------------------------- kernels


@cuda.jit
def class_margin_rows(scores, target, weight, margin, power, worst_only, divisor, unit, scale, stride, loss, grad,
                      want_grad, flag):
    """The multi-class hinge of row n = blockIdx.x of (N, C) ``scores``, h_i = margin - x_t + x_i.

    ``worst_only=False`` (``multi_margin_loss``): loss = sum_{i != t} max(0, h_i)^power w_t
    / divisor, a NaN hinge counting as 0; gradient torch's, in units of ``unit``, times
    grad_output ``scale[n * stride]`` last. ``worst_only=True`` (Crammer-Singer
    ``hinge_loss``): loss = clamp(h_j, min=0), j the largest competitor (the first on
    ties; NaN if any competitor is); ``unit * scale`` passes to x_j and -x_t where h_j >= 0.
    The CPU kernel :func:`fastloss.margin.cpu.class_margin_rows` is the reference, step by
    step. A target outside [0, C) makes the row NaN and flags it.
    """
    buffer = cuda.shared.array(THREADS, np.float64)
    n = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    n_classes = scores.shape[1]
    t = target[n]
    if t < 0 or t >= n_classes:  # the same for the whole block: it returns together
        invalid_row(n, loss, grad, want_grad, flag, n)
        return
    base = np.float64(margin) - np.float64(scores[n, t])
    s = np.float64(scale[n * stride]) if want_grad else 0.0
    if worst_only:
        # 1. the largest competitor, NaN skipped but counted; 2. the first index holding it.
        top = -math.inf
        nans = 0.0
        for c in range(tid, n_classes, cuda.blockDim.x):
            v = np.float64(scores[n, c])
            if c != t:
                nans += 1.0 if v != v else 0.0
                top = v if v > top else top
        top = block_max(buffer, top)
        nans = block_sum(buffer, nans)
        at = n_classes
        for c in range(tid, n_classes, cuda.blockDim.x):
            if c != t and np.float64(scores[n, c]) == top and c < at:
                at = c
        j = first_index(buffer, at, n_classes)
        if nans > 0 or j == n_classes:
            j = 0 if t != 0 else 1
            top = math.nan
        h = base + top
        if tid == 0:
            loss[n] = h if not (h < 0) else 0.0
        if want_grad:  # every read of the row is behind the reductions' barriers
            d = unit * s if h >= 0 else 0.0
            for c in range(tid, n_classes, cuda.blockDim.x):
                grad[n, c] = d if c == j else (-d if c == t else 0.0)
        return
    w = np.float64(weight[t])
    total = 0.0
    slope = 0.0
    for c in range(tid, n_classes, cuda.blockDim.x):
        h = base + np.float64(scores[n, c])
        if h > 0 and c != t:
            total += (h if power == 1 else h * h) * w
            slope += (unit if power == 1 else (unit + unit) * h) * w
    total = block_sum(buffer, total)
    slope = block_sum(buffer, slope)
    if tid == 0:
        loss[n] = total / divisor
    if want_grad:
        for c in range(tid, n_classes, cuda.blockDim.x):
            h = base + np.float64(scores[n, c])
            d = (unit if power == 1 else (unit + unit) * h) * w if h > 0 else 0.0
            grad[n, c] = -slope * s if c == t else d * s


@cuda.jit
def multilabel_margin_rows(scores, target, is_target, hits, unit, scale, stride, loss, grad, want_grad, flag):
    """torch's multilabel_margin_loss of row n = blockIdx.x of (N, C) ``scores``.

    The targets are target[n, :k], k the first index holding a negative entry (C if none);
    loss = sum_{j target} sum_{i not} max(0, 1 - x_j + x_i) / C, a NaN hinge counting as 0;
    gradient: the count of active pairs of each class (+1 for i, -1 for j) times ``unit``
    times grad_output ``scale[n * stride]``. Scratch, (N, C) each: ``is_target``, the
    membership of each class, and ``hits``, the counts (written only ``if want_grad``),
    kept there until the whole row has been read. A target index outside [0, C) flags
    item n, an end marker other than -1 item N + n (so the first bad index over all rows
    is found first, as the CPU path reports it); the row is then NaN. Reference: the CPU
    kernel :func:`fastloss.margin.cpu.multilabel_margin_rows`.
    """
    buffer = cuda.shared.array(THREADS, np.float64)
    n = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    n_classes = scores.shape[1]
    # 1. the number of targets, and their validity.
    end = n_classes
    for k in range(tid, n_classes, cuda.blockDim.x):
        if target[n, k] < 0 and k < end:
            end = k
    count = first_index(buffer, end, n_classes)
    bad = 0.0
    for k in range(tid, count, cuda.blockDim.x):
        bad = 1.0 if target[n, k] >= n_classes else bad
    if block_max(buffer, bad) > 0:
        invalid_row(n, loss, grad, want_grad, flag, n)
        return
    if count < n_classes and target[n, count] != -1:
        invalid_row(n, loss, grad, want_grad, flag, scores.shape[0] + n)
        return
    # 2. which classes are targets.
    for c in range(tid, n_classes, cuda.blockDim.x):
        is_target[n, c] = 0
    cuda.syncthreads()
    for k in range(tid, count, cuda.blockDim.x):
        is_target[n, target[n, k]] = 1
    cuda.syncthreads()
    # 3. per class: its hinges as a non-target (value and count), or its active pairs as a
    # target (times its copies in the target list, as the CPU's loop over the list counts them).
    total = 0.0
    for c in range(tid, n_classes, cuda.blockDim.x):
        x = np.float64(scores[n, c])
        count_c = 0
        if is_target[n, c] == 0:
            for k in range(count):
                h = (1.0 - np.float64(scores[n, target[n, k]])) + x
                if h > 0:
                    total += h
                    count_c += 1
        elif want_grad:
            copies = 0
            for k in range(count):
                copies += 1 if target[n, k] == c else 0
            for i in range(n_classes):
                if is_target[n, i] == 0 and (1.0 - x) + np.float64(scores[n, i]) > 0:
                    count_c -= copies
        if want_grad:
            hits[n, c] = count_c
    total = block_sum(buffer, total)  # also the barrier after the last read of the row
    if tid == 0:
        loss[n] = total / n_classes
    if want_grad:
        s = np.float64(scale[n * stride])
        for c in range(tid, n_classes, cuda.blockDim.x):
            grad[n, c] = np.float64(hits[n, c]) * unit * s


# ---------------------------------------------------------------- entry points


def _row_targets(target, input_shape, n_rows, n_classes):
    """One class index per row, on the device as (N,), and its own shape (the unreduced
    loss's). A host target is checked whole on the host first, with the CPU path's errors."""
    if is_device_array(target):
        t = device_indices(target, "target")
        shape = tuple(t.shape)
    else:
        host = as_index_array(target, "target")
        shape = host.shape
        check_target_rows(shape, input_shape, n_rows)
        check_class_indices(host, n_classes, "target")
        t = to_device(host)  # a 0-d target arrives as (1,)
    check_target_rows(shape, input_shape, n_rows)
    return rows_of(t, n_rows, 1, "target").reshape(n_rows), shape


def _run_class_rows(kernel, x, n_rows, n_classes, loss_shape, divisor, reduction, grad, grad_output, grad_out, args,
                    n_items, fail):
    """Launch ``kernel`` (one block per row) over the scores ``x`` as (N, C) rows, then
    call ``fail(item)`` for a flagged item (of ``n_items``, see :func:`raise_flagged`) and reduce on the device.

    As on the CPU (:func:`fastloss.margin._run_class_rows`), the kernel forms the gradient
    in units of 1 / divisor (1 / (N divisor) for a mean) and multiplies it by grad_output last.
    """
    dtype = np.dtype(x.dtype)
    rows = rows_of(x, n_rows, n_classes, "input")
    loss = cuda.device_array(n_rows, dtype)
    flag = new_flag(n_items)
    unit = dtype.type(1.0 / (divisor * max(n_rows, 1) if reduction == "mean" else divisor))
    result_grad = None
    if grad:
        scale, stride, factor = device_scale(reduction, grad_output, loss_shape, 1, dtype)
        result_grad, grad_rows = gradient_rows(grad_out, x, dtype, n_rows, n_classes, (*args, scale))
    else:
        scale, stride = cuda.device_array(1, dtype), 0
        grad_rows = cuda.device_array((1, 1), dtype)
    if n_rows:
        kernel[n_rows, THREADS](rows, *args, unit, scale, stride, loss, grad_rows, grad, flag)
    raise_flagged(flag, n_items, fail)
    result = reduced(loss, reduction, loss_shape, n_rows)
    return (result, result_grad) if grad else result


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, *, reduction="mean", grad=False, grad_output=None,
                      grad_out=None, backend=None):
    """:func:`fastloss.multi_margin_loss` of device arrays: checks as the CPU path, then the
    kernel :func:`class_margin_rows` (one block per row; summed hinges), the reduction
    :func:`sum_rows`; a target outside [0, C) raises the CPU path's ValueError after the
    flag's one read."""
    check_options(reduction, grad)
    p = check_power(p)
    margin = check_option("multi_margin_loss", "margin", margin)
    x = device_floats(input, "input")
    dtype = np.dtype(x.dtype)
    n_rows, n_classes = class_shape(tuple(x.shape))
    t, loss_shape = _row_targets(target, tuple(x.shape), n_rows, n_classes)
    w = device_floats(as_class_weight(weight, n_classes, dtype) if not is_device_array(weight) else weight,
                      "weight", dtype)
    if tuple(w.shape) != (n_classes,):
        raise ValueError(f"weight must have shape ({n_classes},) (one entry per class), got {tuple(w.shape)}")
    args = (t, w, dtype.type(margin), p, False, dtype.type(n_classes))
    return _run_class_rows(class_margin_rows, x, n_rows, n_classes, loss_shape, n_classes, reduction, grad,
                           grad_output, grad_out, args, n_rows, index_error(t, n_classes))


def multilabel_margin_loss(input, target, *, reduction="mean", grad=False, grad_output=None, grad_out=None,
                           backend=None):
    """:func:`fastloss.multilabel_margin_loss` of device arrays: checks as the CPU path, then
    the kernel :func:`multilabel_margin_rows` (one block per row), the reduction
    :func:`sum_rows`; a bad target entry raises the CPU path's ValueError after the flag's
    one read (its message made from the first bad row alone, copied to the host)."""
    check_options(reduction, grad)
    x = device_floats(input, "input")
    n_rows, n_classes = class_shape(tuple(x.shape))
    if is_device_array(target):
        t = device_indices(target, "target")
        shape = tuple(t.shape)
    else:
        host = as_index_array(target, "target")
        shape = host.shape
        check_multilabel_shape(shape, tuple(x.shape), n_classes)
        check_multilabel_targets(host.reshape(n_rows, n_classes), n_classes)
        t = to_device(host)
    check_multilabel_shape(shape, tuple(x.shape), n_classes)
    rows = rows_of(t, n_rows, n_classes, "target")
    is_target = cuda.device_array((n_rows, n_classes), np.int8)
    hits = cuda.device_array((n_rows, n_classes) if grad else (1, 1), np.int32)

    def fail(item):  # the row's first bad entry, the CPU path's message: see multilabel_margin_rows
        check_multilabel_targets(rows[item % n_rows].copy_to_host()[None, :], n_classes)

    return _run_class_rows(multilabel_margin_rows, x, n_rows, n_classes, (n_rows,) if len(shape) == 2 else (),
                           n_classes, reduction, grad, grad_output, grad_out, (rows, is_target, hits), 2 * n_rows,
                           fail)


def hinge_loss(input, target, margin=1.0, reduction="mean", *, grad=False, grad_output=None, grad_out=None,
               backend=None):
    """:func:`fastloss.hinge_loss` of device arrays, its multi-class (Crammer-Singer) form on
    (N, C) scores: the kernel :func:`class_margin_rows` with ``worst_only``, the reduction
    :func:`sum_rows`. The binary form, an elementwise loss, has no GPU kernel here: TypeError."""
    check_options(reduction, grad)
    margin = check_option("hinge_loss", "margin", margin)
    x = device_floats(input, "input")
    dtype = np.dtype(x.dtype)
    if x.ndim == 1:
        raise TypeError("hinge_loss of (N,) binary scores has no GPU kernel (it is an elementwise loss): "
                        "pass (N, C) class scores, or host arrays")
    if x.ndim != 2:
        raise ValueError(f"input must be (N,) binary scores or (N, C) class scores, got shape {tuple(x.shape)}")
    n_rows, n_classes = class_shape(tuple(x.shape))
    t, loss_shape = _row_targets(target, tuple(x.shape), n_rows, n_classes)
    if n_classes < 2:
        raise ValueError(f"multi-class hinge_loss needs at least 2 classes, got input shape {tuple(x.shape)}")
    args = (t, cuda.device_array(1, dtype), dtype.type(margin), 1, True, dtype.type(1))
    return _run_class_rows(class_margin_rows, x, n_rows, n_classes, loss_shape, 1, reduction, grad, grad_output,
                           grad_out, args, n_rows, index_error(t, n_classes))


#: (kernel, signature) of every kernel here, for a compile-only check (PTX) without a GPU.
PTX_SIGNATURES = [
    (kernel, f"void({signature})")
    for f, i in (("float32", "int64"), ("float64", "int64"))
    for kernel, signature in (
        (sum_rows, f"{f}[:], float64, {f}[:]"),
        (class_margin_rows, f"{f}[:, :], {i}[:], {f}[:], {f}, int64, boolean, {f}, {f}, {f}[:], int64, {f}[:], "
                            f"{f}[:, :], boolean, int64[:]"),
        (multilabel_margin_rows, f"{f}[:, :], {i}[:, :], int8[:, :], int32[:, :], {f}, {f}[:], int64, {f}[:], "
                                 f"{f}[:, :], boolean, int64[:]"),
    )
]
