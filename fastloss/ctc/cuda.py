r"""The GPU kernels of :mod:`fastloss.ctc`, in the ``numba.cuda`` dialect, and the device
entry point :func:`ctc_loss` that the dispatcher calls with device arrays.

One block per sample (:func:`ctc_alpha_beta_rows`), as the CPU kernel gives one thread
per sample, with the CPU's algorithm (see ``fastloss/ctc/__init__.py``): the block's
threads stride over the extended labels' states ``s`` of a frame and synchronise once
per frame, since frame t needs frame t - 1 whole.

1. The sample's lengths and labels are checked first (they are values only the kernel
   sees): a length out of range, a target running past its row (padded) or past the
   concatenated targets, a label outside [0, C) or equal to the blank flags the sample
   and makes its loss and gradient NaN; the entry point then raises the CPU path's
   ValueError. No index is read before it is known to be in range.
2. Forward sweep: per frame, the log-softmax normaliser (``from_logits``: a block max
   and a block sum) and the shift (the largest emission of the band among the target's
   classes, :func:`fastloss.ctc.cpu._gather_shifted_emissions`) by block reductions,
   then alpha over the band of states that can still reach the end, in log space,
   into a table in global memory: T x (2 S + 5) cells per sample (two rolling rows
   without the gradient), S = the longest possible target, at most T. No limit on
   lengths other than memory.
3. Backward sweep (``grad=True``): beta in two rolling rows, the posteriors of the
   frame's band, their blank mass by a block sum, then the gradient row: the dense
   part (``scale * softmax`` or zeros) by every thread, and each class of the target
   its posteriors subtracted by one thread, in ascending s (the chain of a class's
   repeats is precomputed once per sample), so the result does not depend on the order
   the threads run in: no atomics, deterministic. A gradient written over the input
   (``grad_out`` is ``log_probs``) is safe: a frame is written only after the block's
   last read of it.

Values are computed in the input's dtype as on the CPU; sums (normalisers, the blank
mass, the log-likelihood's shifts, the reductions) accumulate in float64. A target
longer than every frame (L > T, possible only with concatenated targets or padded rows
longer than T) is infeasible without a forward sweep: +inf (0 with ``zero_infinity``),
even where the CPU's sweep would carry a NaN of the input into its loss.
"""
from __future__ import annotations

import math

import numpy as np
from numba import types

from .._core.cuda import as_device, block_size, first_flagged, grid, is_device_array, new_flag, threads_for, to_device
from .._core.cuda_blocks import block_max, block_sum, cuda
from .._core.reduction import check_options
from .._core.validation import as_float_array, as_grad_output, check_bool
from . import _check_lengths_shape, _ctc_arrays, _ctc_shape, _targets_padded
from .cpu import _PAD

#: Threads per block, and so the slots of the shared reduction buffer (a constant: a
#: shared array's size must be known when the kernel is compiled).
_THREADS = block_size()


# ----------------------------------------------------------------- device functions

@cuda.jit(device=True)
def _log_add3(a, b, c, one):
    """log(e^a + e^b + e^c), as :func:`fastloss.ctc.cpu._log_add3` (NaN among the terms
    stays NaN; all -inf gives -inf), in the dtype of ``one``."""
    hi = a if a > b else b
    lo = b if a > b else a
    m = hi if hi > c else c
    other = c if hi > c else hi
    shift = m if m != -math.inf else one - one
    return m + math.log(one + math.exp(lo - shift) + math.exp(other - shift))


@cuda.jit(device=True)
def _frame_value(x, batch_first, b, t, c):
    """log_probs (or logit) of class c at frame t of sample b, in either layout."""
    return x[b, t, c] if batch_first else x[t, b, c]


@cuda.jit(device=True)
def _label(targets, row, start, k):
    """Label k of the sample whose labels start at ``targets[row, start]``."""
    return targets[row, start + k]


@cuda.jit(device=True)
def _ext(targets, row, start, blank, s):
    """Class of state s of the extended target: the blank at even s, label (s - 1) / 2 at odd s."""
    return blank if s % 2 == 0 else _label(targets, row, start, (s - 1) // 2)


@cuda.jit(device=True)
def _skip(targets, row, start, width, s, zero, neg_inf):
    """The additive mask of the s - 2 -> s transition: 0 where allowed (s a label that
    differs from the previous label), -inf elsewhere, the pads past the end included."""
    if s % 2 == 1 and 3 <= s < width:
        k = (s - 1) // 2
        if _label(targets, row, start, k) != _label(targets, row, start, k - 1):
            return zero
    return neg_inf


@cuda.jit(device=True)
def _fill_frames(grad, batch_first, b, t0, t1, n_classes, value):
    """grad[frames t0..t1) of sample b] = value, the block's threads striding over the cells."""
    tid = cuda.threadIdx.x
    n_cells = (t1 - t0) * n_classes
    for i in range(tid, n_cells, cuda.blockDim.x):
        t = t0 + i // n_classes
        c = i % n_classes
        if batch_first:
            grad[b, t, c] = value
        else:
            grad[t, b, c] = value


# ----------------------------------------------------------------- kernels

@cuda.jit
def ctc_check_samples(x_shape, blank, targets, padded, input_lengths, target_lengths, starts, flag):
    """Check sample ``blockIdx.x``'s lengths and labels; ``starts[b]`` = where its labels
    start in its row of ``targets`` (2-D: (N, S) padded rows, or (1, total) concatenated
    labels, the start then the sum of the lengths before it), or -1 for an invalid
    sample, which is flagged in ``flag``. ``x_shape`` = (N, T, C)."""
    b = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    buffer = cuda.shared.array(_THREADS, np.float64)
    n_frames = input_lengths[b]
    n_labels = target_lengths[b]
    start = 0
    if not padded:  # the lengths before this sample's (a negative one makes this start wrong: checked below)
        partial = 0.0
        for i in range(tid, b, cuda.blockDim.x):
            partial += target_lengths[i]
        start = int(block_sum(buffer, partial))
    bad = n_frames < 0 or n_frames > x_shape[1] or n_labels < 0 or start < 0 or start + n_labels > targets.shape[1]
    # the concatenated targets must be used up by the last sample (the CPU checks the lengths' sum)
    bad = bad or (not padded and b == cuda.gridDim.x - 1 and start + n_labels != targets.shape[1])
    wrong = 0.0
    if not bad:  # no label is read before its position is known to be in range
        for k in range(tid, n_labels, cuda.blockDim.x):
            label = _label(targets, b if padded else 0, start, k)
            if label < 0 or label >= x_shape[2] or label == blank:
                wrong = 1.0
    wrong = block_max(buffer, wrong)  # by every thread: it synchronises the block
    if tid == 0:
        starts[b] = -1 if bad or wrong > 0.0 else start
        if bad or wrong > 0.0:
            cuda.atomic.min(flag, 0, b)


@cuda.jit
def ctc_frame_shifts(x, batch_first, from_logits, blank, targets, padded, starts, input_lengths, target_lengths,
                     max_labels, shifts, log_norm):
    """Each frame ``t`` of a valid sample ``b``, t below its input length (a block per
    frame, the grid striding over the N T frames): with ``from_logits`` the log-softmax normaliser's two parts into
    ``log_norm[b, t]`` (max, log of the sum of exp(z - max)); and the frame's shift into
    ``shifts[b, t]``: the largest emission (relative to the normaliser) among the classes
    of the states the forward sweep computes at t, when finite, else the normaliser
    (see :func:`fastloss.ctc.cpu._gather_shifted_emissions`). Every frame at once: the
    sweeps then read these instead of reducing over the classes frame after frame."""
    n_time = shifts.shape[1]
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    buffer = cuda.shared.array(_THREADS, np.float64)
    for frame in range(cuda.blockIdx.x, shifts.shape[0] * n_time, cuda.gridDim.x):  # a grid-stride loop over frames
        b = frame // n_time
        t = frame % n_time
        start = starts[b]
        n_frames = input_lengths[b]
        n_labels = target_lengths[b]
        if start < 0 or t >= n_frames or n_labels > max_labels:  # uniform over the block: no barrier is split
            continue
        row = b if padded else 0
        top = 0.0
        log_sum = 0.0
        if from_logits:
            partial_max = -math.inf  # NaN skipped here, as row_max skips it; the sum then is NaN
            for c in range(tid, x.shape[2], threads):
                v = _frame_value(x, batch_first, b, t, c)
                partial_max = v if v > partial_max else partial_max
            # Every thread writes the same maximum and reads it back in x's dtype: the exps
            # below then run in that dtype (float32 exp, not float64), as on the CPU.
            log_norm[b, t, 0] = block_max(buffer, partial_max)
            top = log_norm[b, t, 0]
            partial = 0.0
            for c in range(tid, x.shape[2], threads):
                partial += math.exp(_frame_value(x, batch_first, b, t, c) - top)
            log_norm[b, t, 1] = math.log(block_sum(buffer, partial))
            log_sum = log_norm[b, t, 1]
        width = 2 * n_labels + 1
        lo = max(0, width - 2 * (n_frames - t)) if t else 0
        hi = width - 1 if t else min(1, width - 1)  # torch's first row: the first blank and label
        partial_max = -math.inf
        for s in range(lo + tid, hi + 1, threads):
            v = _frame_value(x, batch_first, b, t, _ext(targets, row, start, blank, s))
            partial_max = v if v > partial_max else partial_max
        band_top = block_max(buffer, partial_max)
        if tid == 0:
            shifts[b, t] = band_top if abs(band_top) < math.inf else top + log_sum


@cuda.jit
def ctc_alpha_beta_rows(x, batch_first, from_logits, blank, targets, padded, starts, input_lengths, target_lengths,
                        max_labels, zero_infinity, one, neg_inf, shifts, log_norm, table, beta, links, grad_scale,
                        scale_factor, per_length, loss, grad, want_grad):
    """CTC loss of sample ``blockIdx.x`` of ``x`` ((N, T, C) with ``batch_first``, else
    (T, N, C)) and, with ``want_grad``, its gradient into ``grad`` (same layout), after
    :func:`ctc_check_samples` (``starts``) and :func:`ctc_frame_shifts` (``shifts``,
    ``log_norm``).

    ``max_labels`` bounds the labels stored: ``table`` (N, rows, 2 max_labels + 5) holds
    alpha (T rows, or 2 rolling rows without the gradient), ``beta`` (N, 3, ...) two
    rolling beta rows and the frame's posteriors, ``links`` (N, max_labels, 2) for each
    label whether it is its class's first and its next repeat. The gradient is
    multiplied by ``grad_scale[b]`` (or ``[0]`` when it has one entry) times
    ``scale_factor``, divided by the clamped target length if ``per_length``.
    ``loss[b]`` gets the negative log-likelihood (+inf infeasible, then 0 with
    ``zero_infinity``); an invalid sample NaN, and a NaN gradient.
    """
    b = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    n_time = x.shape[1] if batch_first else x.shape[0]
    n_classes = x.shape[2]
    zero = one - one
    start = starts[b]
    if start < 0:  # flagged by ctc_check_samples
        if tid == 0:
            loss[b] = math.nan
        if want_grad:
            _fill_frames(grad, batch_first, b, 0, n_time, n_classes, math.nan)
        return
    n_frames = input_lengths[b]
    n_labels = target_lengths[b]
    row = b if padded else 0
    width = 2 * n_labels + 1
    rows = table.shape[1]
    # 1. the forward sweep, one barrier per frame
    log_scale = 0.0  # the sum over frames of (shift - norm), in float64
    shifted_lik = zero
    if n_frames == 0:
        nll = 0.0 if n_labels == 0 else math.inf
    elif n_labels > max_labels:  # L > T: no path fits (see the module docstring)
        nll = math.inf
    else:
        for t in range(n_frames):
            shift = shifts[b, t]
            if from_logits:
                log_scale += (shift - log_norm[b, t, 0]) - log_norm[b, t, 1]
            else:
                log_scale += shift
            hi = width - 1 if t else min(1, width - 1)
            cur = table[b, t % rows]
            if t == 0:
                for p in range(tid, cur.shape[0], threads):
                    s = p - _PAD
                    cur[p] = (_frame_value(x, batch_first, b, 0, _ext(targets, row, start, blank, s)) - shift
                              if 0 <= s <= hi else neg_inf)
            else:
                prev = table[b, (t - 1) % rows]
                if tid < _PAD:
                    cur[tid] = neg_inf
                for s in range(max(0, width - 2 * (n_frames - t)) + tid, width, threads):
                    p = s + _PAD
                    jump = prev[p - 2] + _skip(targets, row, start, width, s, zero, neg_inf)
                    emit = _frame_value(x, batch_first, b, t, _ext(targets, row, start, blank, s)) - shift
                    cur[p] = _log_add3(prev[p], prev[p - 1], jump, one) + emit
            cuda.syncthreads()
        last = table[b, (n_frames - 1) % rows]
        if n_labels == 0:
            shifted_lik = last[_PAD]
        else:
            shifted_lik = _log_add3(last[width - 1 + _PAD], last[width - 2 + _PAD], neg_inf, one)
        log_lik = shifted_lik + log_scale
        # torch's log-sum-exp gives NaN when its largest term is +inf (inf - inf).
        nll = -log_lik if log_lik != math.inf else math.nan
    infinite = nll == math.inf
    if tid == 0:
        loss[b] = 0.0 if infinite and zero_infinity else nll
    if not want_grad:
        return
    # 2. the backward sweep
    _fill_frames(grad, batch_first, b, n_frames, n_time, n_classes, zero)
    if not nll < math.inf:  # +inf or NaN: zeros if zeroed, NaN otherwise (torch)
        _fill_frames(grad, batch_first, b, 0, n_frames, n_classes, 0.0 if infinite and zero_infinity else math.nan)
        return
    s_b = grad_scale[b if grad_scale.shape[0] > 1 else 0] * scale_factor
    if per_length:
        s_b /= max(n_labels, 1)
    for k in range(tid, n_labels, threads):  # each label: the first of its class? its next repeat
        label = _label(targets, row, start, k)
        first = 1
        for j in range(k):
            if _label(targets, row, start, j) == label:
                first = 0
                break
        following = -1
        for j in range(k + 1, n_labels):
            if _label(targets, row, start, j) == label:
                following = j
                break
        links[b, k, 0] = first
        links[b, k, 1] = following
    for p in range(tid, beta.shape[2], threads):
        beta[b, 0, p] = neg_inf
        beta[b, 1, p] = neg_inf
    cuda.syncthreads()
    buffer = cuda.shared.array(_THREADS, np.float64)
    post = beta[b, 2]
    for t in range(n_frames - 1, -1, -1):
        lo = max(0, width - 2 * (n_frames - t))
        hi = min(2 * t + 1, width - 1)
        cur = beta[b, t & 1]
        nxt = beta[b, (t + 1) & 1]
        alpha = table[b, t]
        shift = shifts[b, t]
        blank_part = 0.0
        for s in range(lo + tid, hi + 1, threads):
            p = s + _PAD
            if t == n_frames - 1:  # b = 0 on the final cells, -inf below
                rest = zero if s >= hi - 1 else neg_inf
            else:
                jump = nxt[p + 2] + _skip(targets, row, start, width, s + 2, zero, neg_inf)
                rest = _log_add3(nxt[p], nxt[p + 1], jump, one)
            # beta = rest + emission; the posterior from rest, never beta - emission (see the CPU kernel)
            cur[p] = rest + (_frame_value(x, batch_first, b, t, _ext(targets, row, start, blank, s)) - shift)
            post[p] = math.exp(alpha[p] + rest - shifted_lik)
            if s % 2 == 0:
                blank_part += post[p]
        if tid < 2:  # the two cells below the band, read by the next (earlier) step
            cur[lo + tid] = neg_inf
        blank_mass = block_sum(buffer, blank_part)  # its barriers: every read of frame t is done
        for c in range(tid, n_classes, threads):
            dense = zero
            if from_logits:
                dense = s_b * math.exp((_frame_value(x, batch_first, b, t, c) - log_norm[b, t, 0]) - log_norm[b, t, 1])
            if batch_first:
                grad[b, t, c] = dense
            else:
                grad[t, b, c] = dense
        cuda.syncthreads()
        for k in range(tid, n_labels, threads):
            if links[b, k, 0]:  # the first label of its class subtracts all of the class's posteriors
                c = _label(targets, row, start, k)
                value = _frame_value(grad, batch_first, b, t, c)
                j = k
                while j >= 0:
                    s = 2 * j + 1
                    if lo <= s <= hi:
                        value -= s_b * post[s + _PAD]
                    j = links[b, j, 1]
                if batch_first:
                    grad[b, t, c] = value
                else:
                    grad[t, b, c] = value
        if tid == 0:
            value = _frame_value(grad, batch_first, b, t, blank) - s_b * blank_mass
            if batch_first:
                grad[b, t, blank] = value
            else:
                grad[t, b, blank] = value
        cuda.syncthreads()  # the posteriors are rewritten by the next frame


@cuda.jit
def ctc_reduce(loss, target_lengths, per_length, denominator, out):
    """out[0] = the sum over b of loss[b] (divided by the clamped target length if
    ``per_length``), accumulated in float64, divided by ``denominator`` (NaN when it is
    0): one block."""
    buffer = cuda.shared.array(_THREADS, np.float64)
    partial = 0.0
    for b in range(cuda.threadIdx.x, loss.shape[0], cuda.blockDim.x):
        value = 1.0 * loss[b]
        if per_length:
            value /= max(target_lengths[b], 1)
        partial += value
    total = block_sum(buffer, partial)
    if cuda.threadIdx.x == 0:
        out[0] = total / denominator if denominator != 0.0 else math.nan


# ----------------------------------------------------------------- entry point

def _frames(array, batched):
    """A (T, N, C) / (N, T, C) device array as it is; an unbatched (T, C) one as (1, T, C)."""
    return array if batched else array.reshape(1, *array.shape)


def _device_grad_out(grad_out, like):
    """``grad_out`` checked as :class:`fastloss._core.layout.GradientBuffer` checks a host one."""
    if not is_device_array(grad_out):
        raise TypeError(f"grad_out must be a device array for a device input, got {type(grad_out).__name__}")
    grad_out = as_device(grad_out)
    if grad_out.shape != like.shape:
        raise ValueError(f"grad_out has shape {grad_out.shape}; expected the input's shape {like.shape}")
    if np.dtype(grad_out.dtype) != np.dtype(like.dtype):
        raise TypeError(f"grad_out has dtype {grad_out.dtype}; the gradient is computed in {np.dtype(like.dtype)}")
    return grad_out


def _grad_scale(grad_output, reduction, n, batched, dtype):
    """``grad_output`` on the device as a 1-D array of 1 or N entries, checked as
    :func:`fastloss._core.reduction.loss_scale` checks it."""
    if grad_output is None:
        return to_device(np.ones(1, dtype))
    # on the device already: its shape only is checked here, its values read by the kernel
    g = to_device(grad_output) if is_device_array(grad_output) else as_grad_output(grad_output, dtype)
    shape = tuple(g.shape)
    loss_shape = (n,) if batched else ()
    if reduction == "none":
        if shape not in ((), (1,), loss_shape) or (shape == (1,) and not batched):
            raise ValueError(f"grad_output has shape {shape}; expected the loss's shape {loss_shape}")
    elif shape != ():
        raise ValueError(f"grad_output must be a scalar for reduction={reduction!r}, got shape {shape}")
    return to_device(g).reshape(max(1, int(np.prod(shape, dtype=np.int64))))


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False, *,
             from_logits=False, batch_first=False, grad=False, grad_output=None, grad_out=None, backend=None):
    """:func:`fastloss.ctc_loss` on device arrays: the same value and gradient, as device
    arrays (a reduced loss 0-d), by :func:`ctc_check_samples` (a block per sample),
    :func:`ctc_frame_shifts` (a block per frame), :func:`ctc_alpha_beta_rows` (a block per
    sample) and, for "mean" and "sum", :func:`ctc_reduce` (one block). ``targets`` and the lengths
    may be host arrays (copied to the device). Raises the CPU path's ValueError for
    lengths or labels that the kernel finds invalid, after one read of its flag (none
    with ``fastloss.set_device_checks(False)``: the invalid samples are then NaN)."""
    check_options(reduction, grad)
    zero_infinity, from_logits = check_bool(zero_infinity, "zero_infinity"), check_bool(from_logits, "from_logits")
    batch_first = check_bool(batch_first, "batch_first")
    dtype = np.dtype(log_probs.dtype)
    if dtype not in (np.float32, np.float64):
        as_float_array(np.empty(0, dtype), "log_probs")  # the host path's TypeError for integers
        raise TypeError(f"log_probs on the device must be float32 or float64, got {dtype}")
    batched, (n, n_time, n_classes), blank = _ctc_shape(tuple(log_probs.shape), blank, batch_first)
    # dtypes and shapes checked first, host arrays copied to the device after
    in_len, tg_len, targets_d = (as_device(v) if is_device_array(v) else np.asarray(v)
                                 for v in (input_lengths, target_lengths, targets))
    _check_lengths_shape(in_len, n, "input_lengths", batched)
    _check_lengths_shape(tg_len, n, "target_lengths", batched)
    padded = _targets_padded(targets_d, n, batched, tuple(log_probs.shape))
    in_len, tg_len, targets_d = to_device(in_len), to_device(tg_len), to_device(targets_d)
    labels = targets_d.reshape(1, targets_d.shape[0]) if targets_d.ndim == 1 else targets_d
    # Labels stored per sample: no target longer than T frames fits them.
    max_labels = min(labels.shape[1], n_time)
    in_len, tg_len = in_len.reshape(n), tg_len.reshape(n)
    x = _frames(log_probs, batched)
    frames_first = batch_first or not batched
    padded_width = 2 * max_labels + 1 + 2 * _PAD
    threads = threads_for(max(n_classes, padded_width))
    scale = _grad_scale(grad_output, reduction, n, batched, dtype) if grad else to_device(np.ones(1, dtype))
    if grad:
        gradient = cuda.device_array(log_probs.shape, dtype) if grad_out is None else _device_grad_out(grad_out,
                                                                                                        log_probs)
        grad_frames = _frames(gradient, batched)
    else:
        gradient = None
        grad_frames = cuda.device_array((0, 0, 0), dtype)
    loss = cuda.device_array(n, dtype)
    flag = new_flag(n)
    if n:
        starts = cuda.device_array(n, np.int64)
        ctc_check_samples[n, threads]((n, n_time, n_classes), blank, labels, padded, in_len, tg_len, starts, flag)
        shifts = cuda.device_array((n, n_time), dtype)
        log_norm = cuda.device_array((n, n_time, 2) if from_logits else (0, 0, 2), dtype)
        if n_time:
            blocks, _ = grid(n * n_time, 1)  # a block per frame, up to the grid's cap
            ctc_frame_shifts[blocks, threads](x, frames_first, from_logits, blank, labels, padded, starts, in_len,
                                                  tg_len, max_labels, shifts, log_norm)
        table = cuda.device_array((n, max(n_time, 1) if grad else 2, padded_width), dtype)
        beta = cuda.device_array((n if grad else 0, 3, padded_width), dtype)
        links = cuda.device_array((n if grad else 0, max_labels, 2), np.int32)
        ctc_alpha_beta_rows[n, threads](x, frames_first, from_logits, blank, labels, padded, starts, in_len, tg_len,
                                        max_labels, zero_infinity, dtype.type(1), dtype.type(-np.inf), shifts,
                                        log_norm, table, beta, links, scale, 1.0 / n if reduction == "mean" else 1.0,
                                        reduction == "mean", loss, grad_frames, grad)
    if reduction == "none":
        result = loss if batched else loss.reshape(())
    else:
        total = cuda.device_array(1, dtype)
        ctc_reduce[1, threads_for(n)](loss, tg_len, reduction == "mean", float(n) if reduction == "mean" else 1.0, total)
        result = total.reshape(())
    bad = first_flagged(flag, n)  # the call's one read of the device, after every launch
    if bad is not None:
        _raise_host_error(log_probs.shape, dtype, targets_d, in_len, tg_len, blank, batch_first, bad)
    return (result, gradient) if grad else result


def _raise_host_error(shape, dtype, targets, input_lengths, target_lengths, blank, batch_first, sample):
    """The CPU path's ValueError for the lengths or labels a kernel flagged: the small
    integer arrays are read back (this is the error path) and checked as on the host."""
    stand_in = np.broadcast_to(np.zeros((), dtype), shape)  # the shape, no values
    _ctc_arrays(stand_in, targets.copy_to_host(), input_lengths.copy_to_host(), target_lengths.copy_to_host(), blank,
                batch_first)
    raise ValueError(f"the lengths or labels of sample {sample} are invalid")  # the host check raises first


def _signatures(dtype):
    """The kernels' argument types for ``dtype`` with int64 targets and lengths."""
    x, ints, labels, flag, i64 = dtype[:, :, :], types.int64[:], types.int64[:, :], types.boolean, types.int64
    return [(ctc_check_samples, (types.UniTuple(i64, 3), i64, labels, flag, ints, ints, ints, ints)),
            (ctc_frame_shifts, (x, flag, flag, i64, labels, flag, ints, ints, ints, i64, dtype[:, :], x)),
            (ctc_alpha_beta_rows, (x, flag, flag, i64, labels, flag, ints, ints, ints, i64, flag, dtype, dtype,
                                   dtype[:, :], x, x, x, types.int32[:, :, :], dtype[:], types.float64, flag, dtype[:],
                                   x, flag)),
            (ctc_reduce, (dtype[:], ints, flag, types.float64, dtype[:]))]


#: (kernel, argument types) pairs that ``bench/gpu.py --compile`` compiles to PTX.
PTX_SIGNATURES = _signatures(types.float32) + _signatures(types.float64)
