"""The CPU kernels of :mod:`fastloss.classification`: Numba functions, compiled just in time;
the wrappers that validate and call them are in ``fastloss/classification/__init__.py``."""
from __future__ import annotations

import math

import numpy as np

from .._core.blas import NO_TRANS, ROW_MAJOR, TRANS
from .._core.elementwise import register
from .._core.jit import REDUCE, jit, prange
from .._core.numerics import (
    c_layout,
    exp_fast,
    log1p_exp,
    log1p_fast,
    log_fast,
    maxnum,
    row_max,
    row_max_at,
    sigmoid,
    sum_exp_shifted,
    sum_float64,
    typed,
    weighted_nll_sum,
    weighted_target_sums,
)
from .._core.validation import scan_class_indices

# --------------------------------------------------------------------------- kernels

@jit()
def exp_shifted_into(logits, n, k, top, out, m, j):
    """out[m, j, c] = exp(logits[n, k, c] - top); returns their sum (:func:`sum_row_at`). A
    gradient pass then needs no second exp: one exp per logit.

    Rows by index, not as views: a view costs a reference count (two atomic operations)
    a row. ``out`` is a row of an array of C layout (the gradient's own row, or a scratch
    row), and the sum is a loop of its own over it, which stores nothing: one order for a
    given number of classes, whichever row. Summed as the exps were written, its
    vectorised order held only where LLVM's run-time check found ``out`` clear of
    ``logits`` (and a strided ``out`` took another loop); otherwise a scalar loop summed in
    another order, and a loss differed in its last bit between a call with a gradient and
    one without, with the arrays' addresses or the input's layout.
    """
    for c in range(logits.shape[2]):
        out[m, j, c] = exp_fast(logits[n, k, c] - top)
    return sum_row_at(out, m, j)


@jit(fastmath=REDUCE)
def sum_row_at(x, m, j):
    """sum_c x[m, j, c], vectorised (a loop that stores nothing: one order, whatever the addresses)."""
    s = typed(0, x[m, j, 0])
    for c in range(x.shape[2]):
        s += x[m, j, c]
    return s


@jit()
def scale_softmax_grad(a_over_s, spread_scale, weight, exps, m, j, grad, n, k, own_row):
    """grad[n, k, c] = a_over_s * exps[m, j, c] - spread_scale * weight[c], ``exps`` holding
    exp(row[c] - top) (vectorised); ``own_row``: ``exps[m, j]`` is ``grad[n, k]``. That case
    has a loop of its own, which reads and writes one row: with one loop for both cases (two
    rows the compiler cannot tell apart), 4096x1000 with a gradient took 2.3 ms instead
    of 2.0. The caller says which case it is: telling it here from ``exps.ctypes.data``
    cost two reference counts (atomic operations) a row, a quarter of a 10-class row's time."""
    if own_row:
        for c in range(grad.shape[2]):
            grad[n, k, c] = a_over_s * grad[n, k, c] - spread_scale * weight[c]
    else:
        for c in range(grad.shape[2]):
            grad[n, k, c] = a_over_s * exps[m, j, c] - spread_scale * weight[c]


@jit()
def _row_position(r, n_pos):
    """Flat row r of (N, K, C) rows as (n, k); K = 1 (an (N, C) input) without an integer division
    (tens of cycles). ``r`` as int64 first: a ``prange`` index may be unsigned, and the two
    branches must give one type."""
    r = np.int64(r)
    if n_pos == 1:
        return r, np.int64(0)
    n = r // n_pos
    return n, r - n * n_pos


@jit()
def _power(q, gamma):
    """q ** gamma, with the focal loss's default gamma = 2 (and its gamma - 1) as the one
    multiplication pow rounds to: ``pow`` took a fifth of a focal row's time (``perf``)."""
    if gamma == 2.0:
        return q * q
    if gamma == 1.0:
        return q
    return q ** gamma


@jit()
def focal_factors(nll, gamma):
    """A row's focal factor and gradient factor from its negative log-likelihood ``nll`` =
    -log p_t: ``((1 - p_t)^gamma, g)``, the loss ``(1 - p_t)^gamma nll`` and its gradient
    ``g (p - onehot(t))``, float64; ``(1, 1)`` for cross-entropy (``gamma = 0``). The GPU's
    row kernel calls it too (``math``, which compiles for the device, rather than NumPy), so both
    give the same numbers."""
    if gamma == 0:
        return 1.0, 1.0
    log_p = -np.float64(nll)
    q = -math.expm1(log_p)  # 1 - p_t, exact near p_t = 1
    focal = _power(q, gamma)
    # At q = 0 the second term's limit is 0 (q^(gamma-1) log p ~ -q^gamma).
    return focal, focal - gamma * math.exp(log_p) * _power(q, gamma - 1) * log_p if q > 0 else 0.0


@jit()
def row_block(rows):
    """Rows a parallel loop gives each of its iterations: up to 64, and one row where
    there are fewer than 32 rows, so that there are at least 16 iterations (or one a row):
    two threads (or more) share small inputs too."""
    return max(1, min(64, rows // 16))


@jit()
def _ignored_row_grad(row, weight_sum, out):
    """The gradient of a row whose target is ignored: 0, or NaN across the row where its
    log-softmax is NaN (a NaN or +inf logit, or every logit -inf) or, with smoothing,
    where a class weight is not finite (``weight_sum`` is then inf or NaN), as torch's
    backward gives ``0 * w_c - p * sum_c 0 * w_c``. ``out`` may be ``row`` itself."""
    top = row_max(row)
    value = typed(0, top) * sum_exp_shifted(row, top) * typed(weight_sum, top)
    for c in range(out.shape[0]):
        out[c] = value


#: Rows :func:`_softmax_few_classes_rows` computes side by side, one a vector lane.
LANES = 16
#: Up to this many classes the softmax rows go :data:`LANES` at a time
#: (:func:`_softmax_few_classes_rows`). Measured with the gradient on 4096 float32 rows
#: (2 cores, in blocks / row by row): 32 classes 176 / 197 µs, 40 classes 200 / 157 µs.
FEW_CLASSES = 32


@jit()
def _row_loss(top, x_t, total, w_t, weight_sum, keep, spread, gamma, scale_r, denominator):
    """One row's loss of :func:`softmax_cross_entropy_rows` (the module docstring's formula) but
    for the smoothing term over the classes, from its maximum ``top``, target logit ``x_t``,
    ``total`` (the sum of exp(row - top)) and target class weight ``w_t``: ``(value, log(total),
    a / total, spread_s, b)``, the last three the gradient's factors: the gradient is
    ``a / total * exp(row[c] - top) - spread_s * smooth_weight[c]``, less ``b`` at the target.
    Scalars only: an array argument would cost reference counts (atomic operations) a row.
    Per-row scalars are float64 (the options are); the factors of the per-class loops are in
    the logits' type."""
    log_total = np.log(total)
    nll = log_total + (top - x_t)
    focal, g = focal_factors(nll, gamma)
    s = scale_r / denominator
    b = keep * w_t * g * s
    a = b
    spread_s = 0.0  # not spread * s: without smoothing an infinite s must not make 0 * inf
    if spread != 0:
        a += spread * weight_sum * s
        spread_s = spread * s
    return keep * w_t * focal * nll, log_total, typed(a / total, top), typed(spread_s, top), b


@jit()
def _softmax_few_classes_rows(start, stop, logits, target, weight, smooth_weight, weight_sum, keep, spread, gamma,
                              ignore_index, scale, denominator, loss, grad, want_grad):
    """:func:`_softmax_cross_entropy_row_range` for rows of few classes, :data:`LANES` rows at a
    time: each block of rows is copied transposed (class by class) into a scratch array, so
    that the maxima, the exps with their sums and the gradients are loops over the rows of
    the block, which vectorise, where a row of 10 classes would be one vector and a scalar
    tail (perf: 46 ns a row at C=10, mostly latency of one row's chains). The per-row
    scalars (:func:`_row_loss`) stay a loop. Sums over the classes run in class order,
    as within a row."""
    n_classes = logits.shape[2]
    n_pos = logits.shape[1]
    x = np.empty((n_classes, LANES), logits.dtype)
    e = np.empty((n_classes, LANES), logits.dtype)
    lanes = np.empty((4, LANES), logits.dtype)  # maxima, sums, a / total, spread_s
    b = np.empty(LANES)
    kept = np.empty(LANES, np.int64)  # the target, or -1 for an ignored row
    for first in range(start, stop, LANES):
        count = min(LANES, stop - first)
        if n_pos == 1:  # (N, C) logits: a class's column of the block, row after row
            for c in range(n_classes):
                for j in range(count):
                    x[c, j] = logits[first + j, 0, c]
        else:
            for j in range(count):
                n, k = _row_position(first + j, n_pos)
                for c in range(n_classes):
                    x[c, j] = logits[n, k, c]
        for j in range(count):
            lanes[0, j] = x[0, j]
            lanes[1, j] = 0
        for c in range(1, n_classes):
            for j in range(count):
                lanes[0, j] = maxnum(lanes[0, j], x[c, j])
        for c in range(n_classes):
            for j in range(count):
                v = exp_fast(x[c, j] - lanes[0, j])
                e[c, j] = v
                lanes[1, j] += v
        for j in range(count):
            r = first + j
            n, k = _row_position(r, n_pos)
            t = target[n, k]
            kept[j] = -1
            lanes[2, j] = 0
            lanes[3, j] = 0
            if t == ignore_index:
                loss[r] = 0
                if want_grad:
                    _ignored_row_grad(logits[n, k], weight_sum, grad[n, k])
                continue
            kept[j] = t
            value, log_total, a_over_s, spread_s, b[j] = _row_loss(lanes[0, j], x[t, j], lanes[1, j], weight[t],
                                                                   weight_sum, keep, spread, gamma,
                                                                   scale[r] if want_grad else 1.0, denominator)
            if spread != 0:
                value += spread * weighted_nll_sum(logits[n, k], smooth_weight, lanes[0, j], log_total)
            loss[r] = value
            if want_grad:
                lanes[2, j] = a_over_s
                lanes[3, j] = spread_s
        if want_grad:
            for c in range(n_classes):
                for j in range(count):
                    e[c, j] = lanes[2, j] * e[c, j] - lanes[3, j] * smooth_weight[c]
            if n_pos == 1:
                for c in range(n_classes):
                    for j in range(count):
                        if kept[j] >= 0:
                            grad[first + j, 0, c] = e[c, j]
            else:
                for j in range(count):
                    if kept[j] >= 0:
                        n, k = _row_position(first + j, n_pos)
                        for c in range(n_classes):
                            grad[n, k, c] = e[c, j]
            for j in range(count):
                if kept[j] >= 0:
                    n, k = _row_position(first + j, n_pos)
                    grad[n, k, kept[j]] -= b[j]


@jit()
def _softmax_cross_entropy_row_range(start, stop, logits, target, weight, smooth_weight, weight_sum, keep, spread,
                                     gamma, ignore_index, scale, denominator, loss, grad, want_grad, scratch):
    """Rows ``start`` to ``stop`` of :func:`softmax_cross_entropy_rows`: writes their losses
    (and gradients).

    One exp per logit: :func:`exp_shifted_into` keeps them in the gradient's row when the
    gradient is an array of its own of C layout (so that the gradient's memory is read for
    ownership while the exps are computed: through a scratch row, 65536x1000 took 33.4 ms
    instead of 30.0), else in ``scratch`` (1, 1, C), the calling thread's own row, and sums
    them there: both rows of C layout, so the same code sums them, and a call with a
    gradient gives the loss of a call without, to the bit.

    A range of rows a call, not a row: a function's array arguments cost a reference
    count each (an atomic increment and decrement), paid here once a range. Called or
    inlined once a row, they were a third of a row's time at C=10 (``perf``: 123 ns a
    row, 35% in ``NRT_incref``/``NRT_decref``).
    """
    if logits.shape[2] <= FEW_CLASSES:
        _softmax_few_classes_rows(start, stop, logits, target, weight, smooth_weight, weight_sum, keep, spread, gamma,
                                  ignore_index, scale, denominator, loss, grad, want_grad)
        return
    own = want_grad and c_layout(grad) and grad.ctypes.data != logits.ctypes.data  # not in place
    for r in range(start, stop):
        n, k = _row_position(r, logits.shape[1])
        t = target[n, k]
        if t == ignore_index:
            loss[r] = 0
            if want_grad:
                _ignored_row_grad(logits[n, k], weight_sum, grad[n, k])
            continue
        top = row_max_at(logits, n, k)
        x_t = logits[n, k, t]
        if own:
            total = exp_shifted_into(logits, n, k, top, grad, n, k)
        else:
            total = exp_shifted_into(logits, n, k, top, scratch, 0, 0)
        value, log_total, a_over_s, spread_s, b = _row_loss(top, x_t, total, weight[t], weight_sum, keep, spread,
                                                            gamma, scale[r] if want_grad else 1.0, denominator)
        if spread != 0:
            value += spread * weighted_nll_sum(logits[n, k], smooth_weight, top, log_total)
        loss[r] = value
        if want_grad:
            if own:
                scale_softmax_grad(a_over_s, spread_s, smooth_weight, grad, n, k, grad, n, k, True)
            else:
                scale_softmax_grad(a_over_s, spread_s, smooth_weight, scratch, 0, 0, grad, n, k, False)
            grad[n, k, t] -= b


@jit(parallel=True)
def softmax_cross_entropy_rows(logits, target, weight, smooth_weight, weighted_mean, weight_sum, keep, spread,
                               gamma, ignore_index, scale, mean, loss, grad, want_grad):
    """Fused softmax cross-entropy / focal loss over (N, K, C) logits, class targets.

    First checks the (N, K) targets (:func:`scan_class_indices`): on an index out of
    range it returns ``(0, position, 0)`` having written nothing. Otherwise it writes
    the per-row loss into ``loss`` (N*K,) and, if ``want_grad``, the gradient into
    ``grad`` (N, K, C), which may be ``logits`` itself; ``scale`` (N*K,) multiplies
    each row's gradient, divided by the mean's denominator if ``mean``: the sum of
    ``weight[t]`` (``weighted_mean``) or the count of kept targets. ``keep = 1 -
    label_smoothing``, ``spread = label_smoothing / C``; ``smooth_weight``, the class
    weights of the smoothing term, is ``weight`` with smoothing and zeros without (so
    that a NaN or infinite class weight reaches the rows of its own class only, as in
    torch); ``weight_sum`` is ``sum(smooth_weight)`` with smoothing, 1 without.
    Returns ``(float64 sum of the row losses, -1, denominator)``. See the module
    docstring for the formula.
    """
    bad, kept = scan_class_indices(target, logits.shape[2], True, ignore_index, weight, weighted_mean)
    if bad >= 0:
        return 0.0, bad, kept
    denominator = kept if mean else 1.0  # 0 when nothing is kept: it then divides no row
    rows = logits.shape[0] * logits.shape[1]
    step = row_block(rows)
    for b in prange((rows + step - 1) // step):
        # Numba hoists this allocation out of the loop: one scratch row per thread
        # (``parallel_diagnostics(level=4)`` lists it under "Allocation hoisting").
        scratch = np.empty((1, 1, logits.shape[2]), logits.dtype)
        _softmax_cross_entropy_row_range(b * step, min(rows, (b + 1) * step), logits, target, weight, smooth_weight,
                                         weight_sum, keep, spread, gamma, ignore_index, scale, denominator, loss,
                                         grad, want_grad, scratch)
    return sum_float64(loss), -1, kept  # after the loop: the same bits on any number of threads


@jit()
def softmax_cross_entropy_rows_serial(logits, target, weight, smooth_weight, weighted_mean, weight_sum, keep,
                                      spread, gamma, ignore_index, scale, mean, loss, grad, want_grad):
    """:func:`softmax_cross_entropy_rows` on the calling thread, for inputs so small that
    starting the parallel region (microseconds) would cost more than the work."""
    bad, kept = scan_class_indices(target, logits.shape[2], True, ignore_index, weight, weighted_mean)
    if bad >= 0:
        return 0.0, bad, kept
    denominator = kept if mean else 1.0
    scratch = np.empty((1, 1, logits.shape[2]), logits.dtype)
    _softmax_cross_entropy_row_range(0, logits.shape[0] * logits.shape[1], logits, target, weight, smooth_weight,
                                     weight_sum, keep, spread, gamma, ignore_index, scale, denominator, loss, grad,
                                     want_grad, scratch)
    return sum_float64(loss), -1, kept


@jit(parallel=True)
def linear_softmax_cross_entropy_rows(x, w, bias, target, weight, smooth_weight, weight_sum, keep, spread, gamma,
                                      ignore_index, margin, scale, loss, logits, d_x, late_d_x, d_w, accumulate,
                                      d_bias, want_grad, sub, classes, gemm):
    """One chunk of :func:`fastloss.classification.linear_softmax_chunks` with the GEMMs on
    this kernel's threads: ``gemm`` is numpy's ``cblas_?gemm`` (:mod:`fastloss._core.blas`,
    OpenBLAS set to one thread by the caller).

    1. In blocks of ``sub`` rows: the logits ``x W^T + bias`` into ``logits`` (R, 1, V),
       ``margin`` taken from the target's logit (CosFace's ``s m``), then
       :func:`_softmax_cross_entropy_row_range` (class targets, already checked; the
       options as :func:`softmax_cross_entropy_rows`'s, the mean's denominator in
       ``scale``) writes the losses and turns the logits in place into G = d loss / d Z,
       and, unless ``late_d_x``, ``d_x = G W`` while G is in cache.
    2. In blocks of ``classes`` classes: ``d_w = G^T x``, added to ``d_w`` if
       ``accumulate``; the column sums of G added to ``d_bias`` (0 elements: no bias).
    3. With ``late_d_x`` (``d_x`` is ``x``: gradient in place), ``d_x = G W`` after 2.'s
       last read of ``x``.

    Every block's numbers come from its own rows or classes alone, in a fixed order, so
    any thread count gives the same bits. Returns the float64 sum of the chunk's losses.
    """
    n, h = x.shape
    n_classes = w.shape[0]
    blocks = (n + sub - 1) // sub
    for b in prange(blocks):
        start = b * sub
        rows = min(n, start + sub) - start
        z = logits[start:start + rows]
        gemm(ROW_MAJOR, NO_TRANS, TRANS, rows, n_classes, h, 1.0, x[start:].ctypes, h, w.ctypes, h, 0.0, z.ctypes,
             n_classes)
        for r in range(rows):
            for c in range(bias.shape[0]):
                z[r, 0, c] += bias[c]
            t = target[start + r, 0]
            if margin != 0 and t != ignore_index:
                z[r, 0, t] -= margin
        scratch = np.empty((1, 1, n_classes), logits.dtype)
        _softmax_cross_entropy_row_range(0, rows, z, target[start:], weight, smooth_weight, weight_sum, keep, spread,
                                         gamma, ignore_index, scale[start:], 1.0, loss[start:], z, want_grad,
                                         scratch)
        if want_grad and not late_d_x:
            _gradient_rows(gemm, logits, w, d_x, start, rows)
    if want_grad:
        for b in prange((n_classes + classes - 1) // classes):
            first = b * classes
            count = min(n_classes, first + classes) - first
            gemm(ROW_MAJOR, TRANS, NO_TRANS, count, h, n, 1.0, logits[0, 0, first:].ctypes, n_classes, x.ctypes, h,
                 1.0 if accumulate else 0.0, d_w[first:].ctypes, h)
            if d_bias.shape[0]:
                columns = np.zeros(count)
                for r in range(n):
                    for c in range(count):
                        columns[c] += logits[r, 0, first + c]
                for c in range(count):
                    d_bias[first + c] += columns[c]
        if late_d_x:
            for b in prange(blocks):
                start = b * sub
                _gradient_rows(gemm, logits, w, d_x, start, min(n, start + sub) - start)
    return sum_float64(loss)


@jit()
def _gradient_rows(gemm, g, w, d_x, start, rows):
    """d_x[start:start + rows] = G W for those rows of G (``g``, (R, 1, V)), on this thread:
    step 1 or 3 of :func:`linear_softmax_cross_entropy_rows`."""
    n_classes, h = w.shape
    gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, rows, h, n_classes, 1.0, g[start:].ctypes, n_classes, w.ctypes, h, 0.0,
         d_x[start:].ctypes, h)


@jit(inline="always")
def _soft_target_grad(row, y, weight, keep, spread, top, factor, s, out):
    """out[c] = factor * exp(row[c] - top) - s * w_c (keep y_c + spread): the probability-target
    gradient p_c sum_j v_j - v_c times ``s``, with ``factor = s sum_j v_j / sum_c exp(row[c] - top)``.
    ``out`` may be ``row``. Shared by :func:`softmax_cross_entropy_soft_rows` and its
    vocabulary-block twin :func:`softmax_cross_entropy_soft_block_grad_rows`."""
    for c in range(out.shape[0]):
        out[c] = factor * exp_fast(row[c] - top) - s * weight[c] * (keep * y[c] + spread)


@jit(parallel=True)
def softmax_cross_entropy_soft_rows(logits, target, weight, keep, spread, scale, loss, grad, want_grad):
    """Fused softmax cross-entropy with probability targets over (N, K, C) rows.

    With q = keep * target + spread: loss = sum_c w_c q_c (-log p_c) (each term as
    torch's, so an infinite target gives an infinite loss) and
    d loss / d x_c = p_c * sum_j w_j q_j - w_c q_c.
    """
    n_batch, n_pos = logits.shape[0], logits.shape[1]
    for r in prange(n_batch * n_pos):
        n, k = _row_position(r, n_pos)
        row = logits[n, k]
        y = target[n, k]
        top = row_max(row)
        total = sum_exp_shifted(row, top)
        mass, value = weighted_target_sums(row, y, weight, keep, spread, top, np.log(total))
        loss[r] = value
        if want_grad:
            s = scale[r]
            _soft_target_grad(row, y, weight, keep, spread, top, mass * s / total, s, grad[n, k])
    return sum_float64(loss)


@jit(parallel=True)
def nll_rows(log_probs, target, weight, ignore_index, scale, mean, loss, grad, want_grad):
    """Negative log-likelihood over (N, K, C) log-probabilities: loss = -w_t x_t.

    Targets are checked first and the result is returned as by
    :func:`softmax_cross_entropy_rows`. Reads ``log_probs[n, k, t]`` before zeroing
    the gradient row, so ``grad`` may be ``log_probs`` itself.
    """
    bad, kept = scan_class_indices(target, log_probs.shape[2], True, ignore_index, weight, True)
    if bad >= 0:
        return 0.0, bad, kept
    denominator = kept if mean else 1.0
    n_batch, n_pos, n_classes = log_probs.shape
    for r in prange(n_batch * n_pos):
        n, k = _row_position(r, n_pos)
        t = target[n, k]
        kept_row = t != ignore_index
        value = -weight[t] * log_probs[n, k, t] if kept_row else typed(0, log_probs[n, k, 0])
        loss[r] = value
        if want_grad:
            g = -weight[t] * (scale[r] / denominator) if kept_row else typed(0, value)  # torch's order: w (g / sum w)
            for c in range(n_classes):  # each entry written once (g is 0 in an ignored row)
                grad[n, k, c] = g if c == t else typed(0, value)
    return sum_float64(loss), -1, kept


# ---------------------------------------------------------------- scalar kernels

@jit()
def _bce_point(x, y, unused, p0, p1, p2):
    """torch's BCE: logs clamped at -100; gradient (x - y) / max(x (1 - x), 1e-12)."""
    floor = typed(-100, x)
    one = typed(1, x)
    loss = (y - one) * max(log1p_fast(-x), floor) - y * max(log_fast(x), floor)
    # torch's EPSILON is the float 1e-12 = 9.999999960041972e-13 in float64 as well.
    return loss, (x - y) / max((one - x) * x, typed(9.999999960041972e-13, x)), typed(0, x)


@jit()
def _bce_logits_point(x, y, unused, p0, p1, p2):
    """torch's (1 - y) x - log sigmoid(x), as softplus; gradient sigmoid(x) - y. No
    positive-class weight, not even 1: torch's (pw - 1) y would make 0 * inf for y = inf."""
    return (typed(1, x) - y) * x + log1p_exp(-x), sigmoid(x) - y, typed(0, x)


@jit()
def _bce_logits_pos_weight_point(x, y, pos_weight, p0, p1, p2):
    """(1 - y) x + lw softplus(-x) with lw = (pw - 1) y + 1; gradient (pw y + 1 - y) sigmoid(x) - pw y
    (torch's formulas)."""
    one = typed(1, x)
    t = pos_weight * y
    loss = (one - y) * x + ((pos_weight - one) * y + one) * log1p_exp(-x)
    return loss, (t + one - y) * sigmoid(x) - t, typed(0, x)


@jit()
def _kl_div_point(x, y, unused, log_target, p1, p2):
    """y (log y - x), 0 where y = 0 (torch's xlogy); or exp(y) (y - x) for log targets."""
    if log_target != 0:
        e = exp_fast(y)
        return e * (y - x), -e, typed(0, x)
    xlogy = y * log_fast(y) if y != 0 else typed(0, y)
    return xlogy - y * x, -y, typed(0, x)


@jit()
def _sigmoid_focal_point(x, y, unused, alpha, gamma, p2):
    """torchvision.ops.sigmoid_focal_loss, its formula step by step, and its derivative."""
    one = typed(1, x)
    p = sigmoid(x)
    ce = (one - y) * x + log1p_exp(-x)
    p_t = p * y + (one - p) * (one - y)
    q = one - p_t
    # q ** gamma: vectorisable for q > 0; q < 0 (targets outside [0, 1], which torchvision
    # accepts) takes pow's sign rules, real for integer gamma as in torch.
    if gamma == 0:
        modulator = one
    elif q > 0:
        modulator = exp_fast(gamma * log_fast(q))
    else:
        modulator = q ** gamma
    dce = p - y
    dq = -p * (one - p) * (y + y - one)
    if gamma == 0 or q == 0:
        dmod = typed(0, x)
    elif q > 0:
        dmod = gamma * (modulator / q) * dq
    else:
        dmod = gamma * q ** (gamma - one) * dq
    loss = ce * modulator
    dloss = dce * modulator + ce * dmod
    if alpha >= 0:
        a_t = alpha * y + (one - alpha) * (one - y)
        loss = a_t * loss
        dloss = a_t * dloss
    return loss, dloss, typed(0, x)


_BCE = register(_bce_point)
_BCE_LOGITS = register(_bce_logits_point)
_BCE_LOGITS_POS_WEIGHT = register(_bce_logits_pos_weight_point)
_KL_DIV = register(_kl_div_point)
_SIGMOID_FOCAL = register(_sigmoid_focal_point)


# ---------------------------------------------------------------- vocabulary blocks
# The kernels of the vocabulary-blocked path of fastloss.classification.linear_softmax_chunks:
# a chunk's logits arrive one block of classes at a time, (rows, width) with the block's first
# class ``start``. The value kernels fold each block into a per-row state (float64, columns
# below) with an online log-sum-exp, and write the losses with the last block; the gradient
# kernels turn a block's logits, computed again, into its gradient in place from the finished
# state. Same formulas as softmax_cross_entropy_rows (gamma = 0) and
# softmax_cross_entropy_soft_rows, same NaN and inf results.

#: Columns of the state: the running max m of the logits; the sum of exp(x - m); the running
#: log-sum-exp R = m + log(sum); the weight mass sum_c v_c of the smoothing (or probability)
#: weights v seen; sum_c v_c (R - x_c) over the classes seen, i.e. sum_c v_c (-log p_c) once R
#: is the row's log-sum-exp; the target's logit.
BLOCK_TOP, BLOCK_SUM, BLOCK_LSE, BLOCK_MASS, BLOCK_NLL, BLOCK_TARGET = range(6)
BLOCK_STATE = 6


def block_state(rows):
    """A fresh state for ``rows`` rows: no class seen (max -inf, sums 0)."""
    state = np.zeros((rows, BLOCK_STATE))
    state[:, BLOCK_TOP] = -np.inf
    state[:, BLOCK_LSE] = -np.inf
    return state


@jit(inline="always")
def _block_sum_exp(row):
    """``(max, shift, sum_c exp(row[c] - shift))`` of one row of a block. The shift is the
    max, or 0 when every logit of the block is -inf: the sum is then 0 (NaN with a NaN logit),
    and the block adds nothing, where the max itself would make exp(-inf + inf) = NaN; the row
    is NaN only if all its blocks are -inf (:func:`_block_finish_sum`), as one row's kernel gives."""
    top = row_max(row)
    shift = top if top > -np.inf else typed(0, top)
    return top, shift, sum_exp_shifted(row, shift)


@jit(inline="always")
def _block_log(total):
    """log of a block's sum of exp, 0 for an empty sum (every logit -inf): the block's
    terms v_c (log - (x_c - shift)) are then v_c * inf, as one row's kernel gives them."""
    return np.log(total) if total != 0 else typed(0, total)


@jit(inline="always")
def _block_merge(state, top, shift, total, mass, terms, want_sums):
    """Folds one block into a row's ``state``: its max ``top``, its ``total`` = sum exp(x -
    shift) and, with ``want_sums``, its weight ``mass`` and ``terms`` = sum_c v_c (log total -
    (x_c - shift)).

    1. Online log-sum-exp: m' = max(m, top); sum' = sum e^(m - m') + total e^(top - m')
       (the running sum rescaled when the max grows; e^(top - m') is 0 for a block of -inf,
       whose shift is 0, and NaN for +inf, which makes the row NaN as torch does).
    2. The weighted sum of -log p over the classes seen stays relative to the running
       log-sum-exp R: when R grows to R', the classes seen before gain mass (R' - R); the
       block's terms are relative to its own log-sum-exp r = shift + log total and gain
       mass_b (R' - r). Every added term is >= 0: no cancellation, and an infinite weight or
       a -inf logit gives inf as in one pass (each guard skips a product that could only be
       0 * inf).
    """
    old_top = state[BLOCK_TOP]
    block_top = np.float64(top)
    # Not max(): spelled out, a NaN block max (all NaN) keeps m whatever Numba's max does; its sum is NaN.
    new_top = block_top if block_top > old_top else old_top  # noqa: FURB136
    if new_top == -np.inf:
        new_sum = state[BLOCK_SUM] + total  # nothing finite yet: 0, or NaN
    else:
        new_sum = state[BLOCK_SUM] * np.exp(old_top - new_top) + total * np.exp(block_top - new_top)
    state[BLOCK_TOP] = new_top
    state[BLOCK_SUM] = new_sum
    if want_sums:
        old_lse = state[BLOCK_LSE]
        new_lse = new_top + np.log(new_sum)
        nll = state[BLOCK_NLL] + terms
        if old_lse > -np.inf and new_lse > old_lse:
            nll += state[BLOCK_MASS] * (new_lse - old_lse)
        block_lse = np.float64(shift) + np.log(np.float64(total))
        if block_lse > -np.inf:  # -inf: a block of -inf logits, whose terms are already v_c * inf
            nll += mass * (new_lse - block_lse)
        state[BLOCK_NLL] = nll
        state[BLOCK_MASS] += mass
        state[BLOCK_LSE] = new_lse


@jit(inline="always")
def _block_finish_sum(state):
    """The row's final sum of exp (relative to its max), NaN when every logit is -inf, as
    one row's kernel gives (its max -inf makes exp(-inf + inf) = NaN); stored back for the
    gradient kernels."""
    total = state[BLOCK_SUM] if state[BLOCK_TOP] > -np.inf else np.nan
    state[BLOCK_SUM] = total
    return total


@jit(parallel=True)
def softmax_cross_entropy_block_rows(logits, start, target, weight, smooth_weight, weighted_mean, weight_sum, keep,
                                     spread, gamma, ignore_index, state, loss, last):
    """The value pass of one vocabulary block, class-index targets: folds the block's
    (rows, width) ``logits`` (classes ``start`` to ``start + width``) into each row's
    ``state`` (:func:`block_state`), picking up the target's logit when it falls in the
    block; with ``last``, writes the row losses into ``loss`` and returns their float64
    sum (else 0). ``target`` (rows, 1) holds checked indices; the options are those of
    :func:`softmax_cross_entropy_rows` (``gamma`` must be 0; ``weighted_mean`` is unused:
    the mean's denominator is in the gradient's scale). Ignored rows get loss 0, and a
    state (max, sum) for their gradient's NaN pattern."""
    n_rows, width = logits.shape
    smooth = smooth_weight[start:start + width]
    mass = sum_float64(smooth) if spread != 0 else 0.0
    for r in prange(n_rows):
        row = logits[r]
        row_state = state[r]
        t = target[r, 0]
        kept = t != ignore_index
        top, shift, total = _block_sum_exp(row)
        want_sums = kept and spread != 0
        terms = weighted_nll_sum(row, smooth, shift, _block_log(total)) if want_sums else typed(0, total)
        _block_merge(row_state, top, shift, total, mass, terms, want_sums)
        if kept and start <= t < start + width:
            row_state[BLOCK_TARGET] = row[t - start]
        if last:
            s = _block_finish_sum(row_state)
            if kept:
                nll = np.log(s) + (row_state[BLOCK_TOP] - row_state[BLOCK_TARGET])
                value = keep * weight[t] * nll
                if spread != 0:
                    value += spread * row_state[BLOCK_NLL]
                loss[r] = value
            else:
                loss[r] = 0
    return sum_float64(loss) if last else 0.0


@jit(parallel=True)
def softmax_cross_entropy_block_grad_rows(logits, start, target, weight, smooth_weight, weighted_mean, weight_sum,
                                          keep, spread, gamma, ignore_index, state, scale):
    """The gradient pass of one vocabulary block, class-index targets: turns the block's
    logits in place into d loss / d logits times ``scale`` (rows,), from the state that
    :func:`softmax_cross_entropy_block_rows` finished: A p_c - B [c = t] - spread s w_c as
    in :func:`softmax_cross_entropy_rows`, and for ignored rows 0 or NaN as its
    :func:`_ignored_row_grad`."""
    n_rows, width = logits.shape
    smooth = smooth_weight[start:start + width]
    for r in prange(n_rows):
        row = logits[r]
        t = target[r, 0]
        total = state[r, BLOCK_SUM]
        if t == ignore_index:
            value = typed(0, row[0]) * typed(total, row[0]) * typed(weight_sum, row[0])
            for c in range(width):
                row[c] = value
            continue
        s = scale[r]
        b = keep * weight[t] * s
        a = b
        spread_s = 0.0  # not spread * s: without smoothing an infinite s must not make 0 * inf
        if spread != 0:
            a += spread * weight_sum * s
            spread_s = spread * s
        factor = typed(a / total, row[0])
        top = typed(state[r, BLOCK_TOP], row[0])
        spread_t = typed(spread_s, row[0])
        for c in range(width):
            row[c] = factor * exp_fast(row[c] - top) - spread_t * smooth[c]
        if start <= t < start + width:
            row[t - start] -= b


@jit(parallel=True)
def softmax_cross_entropy_soft_block_rows(logits, start, target, weight, keep, spread, state, loss, last):
    """The value pass of one vocabulary block, probability targets: ``target`` is the
    block's (rows, width) slice of the probabilities; folds the block into ``state`` as
    :func:`softmax_cross_entropy_block_rows` does, with v_c = w_c (keep y_c + spread), and
    with ``last`` writes the losses sum_c v_c (-log p_c) and returns their float64 sum."""
    n_rows, width = logits.shape
    block_weight = weight[start:start + width]
    for r in prange(n_rows):
        row = logits[r]
        row_state = state[r]
        top, shift, total = _block_sum_exp(row)
        mass, terms = weighted_target_sums(row, target[r], block_weight, keep, spread, shift, _block_log(total))
        _block_merge(row_state, top, shift, total, mass, terms, True)
        if last:
            s = _block_finish_sum(row_state)
            loss[r] = row_state[BLOCK_NLL] if not np.isnan(s) else s
    return sum_float64(loss) if last else 0.0


@jit(parallel=True)
def softmax_cross_entropy_soft_block_grad_rows(logits, start, target, weight, keep, spread, state, scale):
    """The gradient pass of one vocabulary block, probability targets: in place,
    p_c sum_j v_j - v_c times ``scale``, as :func:`softmax_cross_entropy_soft_rows`."""
    n_rows, width = logits.shape
    block_weight = weight[start:start + width]
    for r in prange(n_rows):
        row = logits[r]
        y = target[r]
        s = scale[r]
        factor = typed(state[r, BLOCK_MASS] * s / state[r, BLOCK_SUM], row[0])
        _soft_target_grad(row, y, block_weight, keep, spread, typed(state[r, BLOCK_TOP], row[0]), factor, s, row)
