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

from .._core.cuda import grid, is_device_array, load, new_flag, to_device
from .._core.cuda_blocks import block_max, block_sum, cuda
from .._core.cuda_elementwise import broadcasts, device_input, divide_into, launch, plumbing, row_sums, secondary
from .._core.cuda_rows import (
    THREADS,
    device_floats,
    device_indices,
    device_scale,
    gradient_rows,
    index_error,
    raise_flagged,
    reduced,
    rows_of,
    sum_rows,
)
from .._core.reduction import check_options
from .._core.validation import (
    as_class_weight,
    as_grad_output,
    as_index_array,
    check_broadcast,
    check_class_indices,
    check_option,
    common_shape,
)
from . import check_multilabel_shape, check_multilabel_targets, check_power, check_target_rows, class_shape, cpu

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
        t = to_device(host)
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


# ---------------------------------------------------------------- the elementwise losses of this family
# Scalar kernels of cpu.py run by the one GPU elementwise driver (fastloss._core.cuda_elementwise).

def _input_and_target(input, target, name="input"):
    """margin's ``_input_and_target`` on the device: a target broadcasting to the input."""
    x = device_input(input, name)
    y = secondary(target, "target", x.dtype)
    check_broadcast(y.shape, x.shape, "target")
    return x, y


def margin_ranking_loss(input1, input2, target, margin=0.0, *, reduction="mean", grad=False, grad_output=None,
                        grad_out=None, backend=None):
    """:func:`fastloss.margin_ranking_loss` on the GPU: the elementwise driver with its kernel,
    each input's gradient summed over its broadcast axes on the device."""

    check_options(reduction, grad)
    margin = check_option("margin_ranking_loss", "margin", margin)
    x1 = device_input(input1, "input1")
    y = secondary(target, "target", x1.dtype)
    x2 = secondary(input2, "input2", x1.dtype)
    if not x1.ndim == x2.ndim == y.ndim:
        raise ValueError(f"input1, input2 and target must have the same number of dimensions, as in torch; got "
                         f"shapes {tuple(x1.shape)}, {tuple(x2.shape)} and {tuple(y.shape)}")
    full = common_shape([("input1", x1.shape), ("input2", x2.shape), ("target", y.shape)])
    return launch(cpu._MARGIN_RANKING, x1, y, x2, None, (margin, 0.0, 0.0), dz_like=tuple(x2.shape),
                   shape=full, **plumbing(reduction, grad, grad_output, grad_out))


def hinge_embedding_loss(input, target, margin=1.0, *, reduction="mean", grad=False, grad_output=None, grad_out=None,
                         backend=None):
    """:func:`fastloss.hinge_embedding_loss` on the GPU: the elementwise driver with its kernel."""

    check_options(reduction, grad)
    margin = check_option("hinge_embedding_loss", "margin", margin)
    x, y = _input_and_target(input, target)
    return launch(cpu._HINGE_EMBEDDING, x, y, params=(margin, 0.0, 0.0),
                   **plumbing(reduction, grad, grad_output, grad_out))


def soft_margin_loss(input, target, *, reduction="mean", grad=False, grad_output=None, grad_out=None, backend=None):
    """:func:`fastloss.soft_margin_loss` on the GPU: the elementwise driver with its kernel."""

    check_options(reduction, grad)
    x, y = _input_and_target(input, target)
    return launch(cpu._SOFT_MARGIN, x, y, **plumbing(reduction, grad, grad_output, grad_out))


def multilabel_soft_margin_loss(input, target, weight=None, *, reduction="mean", grad=False, grad_output=None,
                                grad_out=None, backend=None):
    """:func:`fastloss.multilabel_soft_margin_loss` on the GPU: the elementwise driver with
    its kernel and the weight over the number of classes (divided on the device for a
    device weight), then, for "none", :func:`row_sums` over the class axis; the input's
    gradient summed back to its shape where input, target and weight broadcast beyond it."""

    check_options(reduction, grad)
    x = device_input(input, "input")
    if x.ndim == 0:
        raise ValueError("input must be (N, C) or (C,), got a scalar")
    dtype = np.dtype(x.dtype)
    y = secondary(target, "target", dtype)
    w = None if weight is None else secondary(weight, "weight", dtype)
    full = common_shape([("input", x.shape), ("target", y.shape)] + ([] if w is None else [("weight", w.shape)]))
    axis = x.ndim - 1
    n_classes = x.shape[axis]  # the simulator's shapes refuse negative indices
    if w is None:
        w = np.full((), 1.0 / n_classes, dtype)
    elif is_device_array(w):
        divided = load().device_array(w.size, dtype)
        divide_into[grid(w.size)](w.reshape(w.size), dtype.type(n_classes), divided)
        w = divided.reshape(w.shape)
    else:
        w = (w / dtype.type(n_classes)).astype(dtype)
    if axis != len(full) - 1:
        raise TypeError(f"multilabel_soft_margin_loss on the GPU sums over the last axis; the arguments broadcast to "
                        f"{full}, beyond the input's {tuple(x.shape)} axes: call it with host arrays")
    row_shape = full[:axis]
    n_rows = int(np.prod(row_shape, dtype=np.int64))
    go = grad_output
    if reduction == "none" and grad and grad_output is not None:
        if is_device_array(grad_output):
            if not broadcasts(grad_output.shape, row_shape):
                raise ValueError(f"grad_output of shape {tuple(grad_output.shape)} does not broadcast to the input's "
                                 f"shape {row_shape}")
            go = grad_output.reshape(tuple(grad_output.shape) + (1,))
        else:
            go = as_grad_output(grad_output, dtype)
            check_broadcast(go.shape, row_shape, "grad_output")
            go = np.expand_dims(np.broadcast_to(go, row_shape), axis)
    result = launch(cpu._MULTILABEL_SOFT_MARGIN, x, y, None, w, reduction=reduction, grad=grad, grad_output=go,
                     grad_out=grad_out, denominator=n_rows if reduction != "none" else None, shape=full)
    if reduction != "none":
        return result
    value, dx = result if grad else (result, None)
    rows = load().device_array(row_shape, dtype)
    row_sums[grid(n_rows)](value.reshape(value.size), np.int64(full[axis]), rows.reshape(n_rows))
    return (rows, dx) if grad else rows
