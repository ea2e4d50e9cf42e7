# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
r"""The row kernels of :mod:`fastloss.classification`, compiled ahead of time.

Each function here has the name, the arguments and the results of the Numba kernel it
replaces (read its docstring there for the formulas): ``softmax_cross_entropy_rows``
(cross-entropy with class indices, weights, ``ignore_index``, label smoothing, and
the focal loss), ``softmax_cross_entropy_soft_rows`` (probability targets) and
``nll_rows``; and the vocabulary-block kernels of ``linear_cross_entropy``
(``softmax_cross_entropy_block_rows`` and ``softmax_cross_entropy_soft_block_rows``, with
their ``*_block_grad_rows``). float32 and float64 are one template (Cython's ``floating``).

Rows run in parallel (OpenMP, one static block of rows per thread), each row read
once from memory: its max, then its sum of exponentials, then its gradient, by the
vectorised loops of ``fastmath.h``. Each row writes its own loss; the total is their
float64 sum after the parallel loop, so results do not depend on the thread count.
Class indices are checked before any row is read: a kernel never indexes out of
bounds, and on a bad index it returns its position having written nothing.

Rows whose classes are not adjacent in memory (spatial inputs (N, C, d1, ...) seen as
(N, K, C)) are copied into a per-thread buffer first, and their gradient is written
there and copied out.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY, NAN, exp, expm1, isnan, log, pow

import numpy as np

include "threads.pxi"

from .fastmath cimport (fl_max_threads, libm_log, row_max, sum_exp_shifted, sum_to_double, weighted_nll_sum,
                        weighted_target_sums, write_soft_target_grad, write_softmax_grad)

# Inputs with fewer logits run on the calling thread (fastloss.classification.SERIAL_BELOW).
cdef Py_ssize_t SERIAL_BELOW = 1 << 14


cdef int _threads(Py_ssize_t rows, Py_ssize_t logits) noexcept nogil:
    """Threads for ``rows`` rows holding ``logits`` values in all."""
    if logits < SERIAL_BELOW:
        return 1
    return <int>min(<Py_ssize_t>fl_max_threads(), rows)


cdef inline const floating *_gather(const floating *src, Py_ssize_t stride, Py_ssize_t n,
                                    floating *scratch) noexcept nogil:
    """The ``n`` values ``stride`` bytes apart from ``src`` as a contiguous row: ``src``
    itself when they are adjacent, else a copy in ``scratch``."""
    cdef Py_ssize_t c
    if stride == sizeof(floating):
        return src
    for c in range(n):
        scratch[c] = (<const floating *>(<const char *>src + c * stride))[0]
    return scratch


cdef inline void _scatter(const floating *values, floating *dst, Py_ssize_t stride, Py_ssize_t n) noexcept nogil:
    """Write a contiguous row to ``n`` places ``stride`` bytes apart (nothing if it is already there)."""
    cdef Py_ssize_t c
    if values == dst:
        return
    for c in range(n):
        (<floating *>(<char *>dst + c * stride))[0] = values[c]


cdef inline void _fill(floating *dst, Py_ssize_t stride, Py_ssize_t n, floating value) noexcept nogil:
    cdef Py_ssize_t c
    for c in range(n):
        (<floating *>(<char *>dst + c * stride))[0] = value


cdef Py_ssize_t _scan_class_indices(const Py_ssize_t[:, :] target, Py_ssize_t n_classes, Py_ssize_t ignore_index,
                                    const floating[::1] weight, bint weighted, double *kept) noexcept nogil:
    """The flat position of the first target outside [0, n_classes) that is not
    ``ignore_index``, or -1; ``kept``: the sum of ``weight[t]`` over the other targets
    (their count if not ``weighted``), torch's denominator of a mean."""
    cdef Py_ssize_t n, k, t, n_pos = target.shape[1]
    kept[0] = 0
    for n in range(target.shape[0]):
        for k in range(n_pos):
            t = target[n, k]
            if t == ignore_index:
                continue
            if t < 0 or t >= n_classes:
                return n * n_pos + k
            kept[0] += weight[t] if weighted else 1.0
    return -1


cdef double _softmax_cross_entropy_row(const floating *row, Py_ssize_t n_classes, Py_ssize_t t,
                                       const floating *weight, const floating *smooth_weight, double weight_sum,
                                       double keep, double spread, double gamma, double s, floating *out,
                                       bint want_grad) noexcept nogil:
    """One kept row: its loss, and with ``want_grad`` its gradient times ``s`` in ``out``
    (contiguous, possibly ``row`` itself). The formula is in fastloss.classification."""
    cdef floating top = row_max(row, n_classes)
    cdef floating total = sum_exp_shifted(row, n_classes, top)
    cdef floating log_total = libm_log(total)
    cdef floating nll = log_total + (top - row[t])
    cdef floating w_t = weight[t]
    # Per-row scalars are double (the options are); per-class loops stay in the logits' type.
    cdef double g = 1.0, focal = 1.0, log_p, q, value, a, b, spread_s
    if gamma != 0:
        log_p = -<double>nll
        q = -expm1(log_p)  # 1 - p_t, exact near p_t = 1
        focal = pow(q, gamma)
        # At q = 0 the second term's limit is 0 (q^(gamma-1) log p ~ -q^gamma).
        g = focal - gamma * exp(log_p) * pow(q, gamma - 1) * log_p if q > 0 else 0.0
    value = keep * w_t * focal * nll
    if spread != 0:
        value += spread * weighted_nll_sum(row, smooth_weight, n_classes, top, log_total)
    if want_grad:
        b = keep * w_t * g * s
        a = b
        spread_s = 0.0  # not spread * s: without smoothing an infinite s must not make 0 * inf
        if spread != 0:
            a = a + spread * weight_sum * s
            spread_s = spread * s
        write_softmax_grad(row, n_classes, top, <floating>(a / total), <floating>spread_s, smooth_weight, out)
        out[t] = <floating>(out[t] - b)
    return value


cdef void _softmax_cross_entropy_loop(const floating[:, :, :] logits, const Py_ssize_t[:, :] target,
                                      const floating[::1] weight, const floating[::1] smooth_weight,
                                      double weight_sum, double keep, double spread, double gamma,
                                      Py_ssize_t ignore_index, const floating[::1] scale, double denominator,
                                      floating[::1] loss, floating[:, :, :] grad, bint want_grad,
                                      floating *scratch, int threads) noexcept nogil:
    cdef Py_ssize_t n_pos = logits.shape[1], n_classes = logits.shape[2]
    cdef Py_ssize_t x_stride = logits.strides[2], g_stride = grad.strides[2]
    cdef Py_ssize_t r, n, k, t
    cdef const floating *row
    cdef floating *buf
    cdef floating *out
    cdef floating top
    for r in prange(logits.shape[0] * n_pos, schedule="static", num_threads=threads):
        n = r // n_pos
        k = r - n * n_pos
        t = target[n, k]
        buf = scratch + threadid() * n_classes if scratch != NULL else NULL
        if t == ignore_index:
            loss[r] = 0
            if want_grad:
                # 0, or NaN across the row (see the Numba twin's _ignored_row_grad)
                row = _gather(&logits[n, k, 0], x_stride, n_classes, buf)
                top = row_max(row, n_classes)
                _fill(&grad[n, k, 0], g_stride, n_classes,
                      <floating>(0 * sum_exp_shifted(row, n_classes, top) * weight_sum))
        elif want_grad:
            row = _gather(&logits[n, k, 0], x_stride, n_classes, buf)
            out = &grad[n, k, 0] if g_stride == sizeof(floating) else buf
            loss[r] = <floating>_softmax_cross_entropy_row(row, n_classes, t, &weight[0], &smooth_weight[0],
                                                          weight_sum, keep, spread, gamma, scale[r] / denominator,
                                                          out, True)
            _scatter(out, &grad[n, k, 0], g_stride, n_classes)
        else:
            row = _gather(&logits[n, k, 0], x_stride, n_classes, buf)
            loss[r] = <floating>_softmax_cross_entropy_row(row, n_classes, t, &weight[0], &smooth_weight[0],
                                                          weight_sum, keep, spread, gamma, 0.0, buf, False)


def softmax_cross_entropy_rows(const floating[:, :, :] logits, const Py_ssize_t[:, :] target,
                               const floating[::1] weight, const floating[::1] smooth_weight, bint weighted_mean,
                               double weight_sum, double keep, double spread, double gamma, Py_ssize_t ignore_index,
                               const floating[::1] scale, bint mean, floating[::1] loss, floating[:, :, :] grad,
                               bint want_grad):
    """Fused softmax cross-entropy / focal loss over (N, K, C) logits and (N, K) class
    indices: ``fastloss.classification.softmax_cross_entropy_rows``, compiled ahead of
    time. Returns ``(0, position, 0)`` for a bad class index, having written nothing;
    else ``(float64 sum of the row losses, -1, denominator of the mean)``."""
    cdef double kept, denominator, total
    cdef int threads
    cdef floating[:, ::1] scratch_rows
    cdef floating *scratch = NULL
    cdef Py_ssize_t bad, rows = logits.shape[0] * logits.shape[1]
    with nogil:
        bad = _scan_class_indices(target, logits.shape[2], ignore_index, weight, weighted_mean, &kept)
    if bad >= 0:
        return 0.0, bad, kept
    if rows == 0:
        return 0.0, -1, kept
    threads = _threads(rows, rows * logits.shape[2])
    # A contiguous row per thread, only for strided class axes (contiguous rows are read and
    # written in place): the allocation would cost a small call a tenth of its time.
    if logits.strides[2] != sizeof(floating) or (want_grad and grad.strides[2] != sizeof(floating)):
        scratch_rows = np.empty((threads, logits.shape[2]), np.float32 if floating is float else np.float64)
        scratch = &scratch_rows[0, 0]
    denominator = kept if mean else 1.0  # 0 when nothing is kept: it then divides no row
    with nogil:
        _softmax_cross_entropy_loop(logits, target, weight, smooth_weight, weight_sum, keep, spread, gamma,
                                    ignore_index, scale, denominator, loss, grad, want_grad, scratch, threads)
        total = sum_to_double(&loss[0], rows)
    return total, -1, kept


# Numba has a serial twin for small inputs; here the thread count follows the size.
softmax_cross_entropy_rows_serial = softmax_cross_entropy_rows


cdef void _soft_loop(const floating[:, :, :] logits, const floating[:, :, :] target, const floating[::1] weight,
                     floating keep, floating spread, const floating[::1] scale, floating[::1] loss,
                     floating[:, :, :] grad, bint want_grad, floating[:, :, ::1] scratch,
                     int threads) noexcept nogil:
    cdef Py_ssize_t n_pos = logits.shape[1], n_classes = logits.shape[2]
    cdef Py_ssize_t x_stride = logits.strides[2], y_stride = target.strides[2], g_stride = grad.strides[2]
    cdef Py_ssize_t r, n, k, tid
    cdef const floating *row
    cdef const floating *y
    cdef floating *out
    cdef floating top, total, mass, s
    for r in prange(logits.shape[0] * n_pos, schedule="static", num_threads=threads):
        n = r // n_pos
        k = r - n * n_pos
        tid = threadid()
        row = _gather(&logits[n, k, 0], x_stride, n_classes, &scratch[tid, 0, 0])
        y = _gather(&target[n, k, 0], y_stride, n_classes, &scratch[tid, 1, 0])
        top = row_max(row, n_classes)
        total = sum_exp_shifted(row, n_classes, top)
        mass, loss[r] = weighted_target_sums(row, y, &weight[0], n_classes, keep, spread, top, libm_log(total))
        if want_grad:
            s = scale[r]
            out = &grad[n, k, 0] if g_stride == sizeof(floating) else &scratch[tid, 0, 0]
            write_soft_target_grad(row, y, &weight[0], n_classes, top, mass * s / total, s, keep, spread, out)
            _scatter(out, &grad[n, k, 0], g_stride, n_classes)


def softmax_cross_entropy_soft_rows(const floating[:, :, :] logits, const floating[:, :, :] target,
                                    const floating[::1] weight, floating keep, floating spread,
                                    const floating[::1] scale, floating[::1] loss, floating[:, :, :] grad,
                                    bint want_grad):
    """Fused softmax cross-entropy with probability targets over (N, K, C) rows:
    ``fastloss.classification.softmax_cross_entropy_soft_rows``, compiled ahead of time.
    Returns the float64 sum of the row losses."""
    cdef double total
    cdef int threads
    cdef floating[:, :, ::1] scratch
    cdef Py_ssize_t rows = logits.shape[0] * logits.shape[1]
    if rows == 0:
        return 0.0
    threads = _threads(rows, rows * logits.shape[2])
    scratch = np.empty((threads, 2, logits.shape[2]), np.float32 if floating is float else np.float64)
    with nogil:
        _soft_loop(logits, target, weight, keep, spread, scale, loss, grad, want_grad, scratch, threads)
        total = sum_to_double(&loss[0], rows)
    return total


cdef void _nll_loop(const floating[:, :, :] log_probs, const Py_ssize_t[:, :] target, const floating[::1] weight,
                    Py_ssize_t ignore_index, const floating[::1] scale, double denominator,
                    floating[::1] loss, floating[:, :, :] grad, bint want_grad, int threads) noexcept nogil:
    cdef Py_ssize_t n_pos = log_probs.shape[1], n_classes = log_probs.shape[2], g_stride = grad.strides[2]
    cdef Py_ssize_t r, n, k, t
    for r in prange(log_probs.shape[0] * n_pos, schedule="static", num_threads=threads):
        n = r // n_pos
        k = r - n * n_pos
        t = target[n, k]
        # Read before the gradient row is zeroed: grad may be log_probs itself.
        loss[r] = -weight[t] * log_probs[n, k, t] if t != ignore_index else 0
        if want_grad:
            _fill(&grad[n, k, 0], g_stride, n_classes, 0)
            if t != ignore_index:
                grad[n, k, t] = <floating>(-weight[t] * (scale[r] / denominator))  # torch's order: w (g / sum w)


def nll_rows(const floating[:, :, :] log_probs, const Py_ssize_t[:, :] target, const floating[::1] weight,
             Py_ssize_t ignore_index, const floating[::1] scale, bint mean, floating[::1] loss,
             floating[:, :, :] grad, bint want_grad):
    """Negative log-likelihood over (N, K, C) log-probabilities, loss = -w_t x_t:
    ``fastloss.classification.nll_rows``, compiled ahead of time; results as
    :func:`softmax_cross_entropy_rows`."""
    cdef double kept, denominator, total
    cdef Py_ssize_t bad, rows = log_probs.shape[0] * log_probs.shape[1]
    with nogil:
        bad = _scan_class_indices(target, log_probs.shape[2], ignore_index, weight, True, &kept)
    if bad >= 0:
        return 0.0, bad, kept
    if rows == 0:
        return 0.0, -1, kept
    denominator = kept if mean else 1.0
    with nogil:
        _nll_loop(log_probs, target, weight, ignore_index, scale, denominator, loss, grad, want_grad,
                  _threads(rows, rows * log_probs.shape[2]))
        total = sum_to_double(&loss[0], rows)
    return total, -1, kept


# ---------------------------------------------------------------- vocabulary blocks
# Twins of the block kernels of fastloss.classification.cpu (their docstrings there give the
# formulas, the state's columns and why each guard): the value pass folds a block of a chunk's
# logits into a per-row float64 state with an online log-sum-exp, the gradient pass turns a
# block of logits, computed again, into its gradient in place. A block's rows are contiguous
# (the engine's buffer); probability targets are a strided slice of the (N, V) targets.

cdef enum:
    BLOCK_TOP = 0
    BLOCK_SUM = 1
    BLOCK_LSE = 2
    BLOCK_MASS = 3
    BLOCK_NLL = 4
    BLOCK_TARGET = 5


cdef inline floating _block_log(floating total) noexcept nogil:
    """log of a block's sum of exp, 0 for an empty sum (every logit -inf)."""
    return libm_log(total) if total != 0 else 0


cdef inline void _block_merge(double *state, double top, double shift, double total, double mass, double terms,
                              bint want_sums) noexcept nogil:
    """Folds one block into a row's state (Numba's _block_merge)."""
    cdef double old_top = state[BLOCK_TOP], new_top, new_sum, old_lse, new_lse, nll, block_lse
    new_top = top if top > old_top else old_top  # a NaN max (all NaN) keeps m; its sum is NaN
    if new_top == -INFINITY:
        new_sum = state[BLOCK_SUM] + total
    else:
        new_sum = state[BLOCK_SUM] * exp(old_top - new_top) + total * exp(top - new_top)
    state[BLOCK_TOP] = new_top
    state[BLOCK_SUM] = new_sum
    if want_sums:
        old_lse = state[BLOCK_LSE]
        new_lse = new_top + log(new_sum)
        nll = state[BLOCK_NLL] + terms
        if old_lse > -INFINITY and new_lse > old_lse:
            nll = nll + state[BLOCK_MASS] * (new_lse - old_lse)
        block_lse = shift + log(total)
        if block_lse > -INFINITY:
            nll = nll + mass * (new_lse - block_lse)
        state[BLOCK_NLL] = nll
        state[BLOCK_MASS] = state[BLOCK_MASS] + mass
        state[BLOCK_LSE] = new_lse


cdef inline double _block_finish_sum(double *state) noexcept nogil:
    """The row's final sum of exp, NaN when every logit is -inf; stored back."""
    cdef double total = state[BLOCK_SUM] if state[BLOCK_TOP] > -INFINITY else NAN
    state[BLOCK_SUM] = total
    return total


def softmax_cross_entropy_block_rows(const floating[:, ::1] logits, Py_ssize_t start, const Py_ssize_t[:, :] target,
                                     const floating[::1] weight, const floating[::1] smooth_weight,
                                     bint weighted_mean, double weight_sum, double keep, double spread, double gamma,
                                     Py_ssize_t ignore_index, double[:, ::1] state, floating[::1] loss, bint last):
    """The value pass of one vocabulary block, class-index targets:
    ``fastloss.classification.softmax_cross_entropy_block_rows``, compiled ahead of time.
    Returns the float64 sum of the row losses with ``last``, else 0."""
    cdef Py_ssize_t n_rows = logits.shape[0], width = logits.shape[1], r, t
    cdef const floating *smooth = &smooth_weight[start]
    cdef const floating *row
    cdef double mass = 0.0, s, value, result = 0.0
    cdef floating top, shift, total, terms
    cdef bint kept, want_sums
    cdef int threads
    if n_rows == 0:
        return 0.0
    if spread != 0:
        mass = sum_to_double(smooth, width)
    threads = _threads(n_rows, n_rows * width)
    with nogil:
        for r in prange(n_rows, schedule="static", num_threads=threads):
            row = &logits[r, 0]
            t = target[r, 0]
            kept = t != ignore_index
            top = row_max(row, width)
            shift = top if top > -INFINITY else 0
            total = sum_exp_shifted(row, width, shift)
            want_sums = kept and spread != 0
            terms = weighted_nll_sum(row, smooth, width, shift, _block_log(total)) if want_sums else 0
            _block_merge(&state[r, 0], top, shift, total, mass, terms, want_sums)
            if kept and start <= t < start + width:
                state[r, BLOCK_TARGET] = row[t - start]
            if last:
                s = _block_finish_sum(&state[r, 0])
                if kept:
                    value = keep * weight[t] * (log(s) + (state[r, BLOCK_TOP] - state[r, BLOCK_TARGET]))
                    if spread != 0:
                        value = value + spread * state[r, BLOCK_NLL]
                    loss[r] = <floating>value
                else:
                    loss[r] = 0
        if last:
            result = sum_to_double(&loss[0], n_rows)
    return result


def softmax_cross_entropy_block_grad_rows(floating[:, ::1] logits, Py_ssize_t start, const Py_ssize_t[:, :] target,
                                          const floating[::1] weight, const floating[::1] smooth_weight,
                                          bint weighted_mean, double weight_sum, double keep, double spread,
                                          double gamma, Py_ssize_t ignore_index, const double[:, ::1] state,
                                          const floating[::1] scale):
    """The gradient pass of one vocabulary block, class-index targets, in place:
    ``fastloss.classification.softmax_cross_entropy_block_grad_rows``, compiled ahead of time."""
    cdef Py_ssize_t n_rows = logits.shape[0], width = logits.shape[1], r, t
    cdef const floating *smooth = &smooth_weight[start]
    cdef floating *row
    cdef double total, s, a, b, spread_s
    cdef int threads
    if n_rows == 0:
        return
    threads = _threads(n_rows, n_rows * width)
    with nogil:
        for r in prange(n_rows, schedule="static", num_threads=threads):
            row = &logits[r, 0]
            t = target[r, 0]
            total = state[r, BLOCK_SUM]
            if t == ignore_index:
                # 0, or NaN across the row (see the Numba twin's _ignored_row_grad)
                _fill(row, sizeof(floating), width, <floating>0 * <floating>total * <floating>weight_sum)
            else:
                s = scale[r]
                b = keep * weight[t] * s
                a = b
                spread_s = 0.0  # not spread * s: without smoothing an infinite s must not make 0 * inf
                if spread != 0:
                    a = a + spread * weight_sum * s
                    spread_s = spread * s
                write_softmax_grad(row, width, <floating>state[r, BLOCK_TOP], <floating>(a / total),
                                   <floating>spread_s, smooth, row)
                if start <= t < start + width:
                    row[t - start] = <floating>(row[t - start] - b)


def softmax_cross_entropy_soft_block_rows(const floating[:, ::1] logits, Py_ssize_t start,
                                          const floating[:, :] target, const floating[::1] weight, floating keep,
                                          floating spread, double[:, ::1] state, floating[::1] loss, bint last):
    """The value pass of one vocabulary block, probability targets (``target``: the block's
    slice): ``fastloss.classification.softmax_cross_entropy_soft_block_rows``, compiled ahead
    of time. Returns the float64 sum of the row losses with ``last``, else 0."""
    cdef Py_ssize_t n_rows = logits.shape[0], width = logits.shape[1], y_stride = target.strides[1], r
    cdef const floating *row
    cdef const floating *y
    cdef double s, result = 0.0
    cdef floating top, shift, total, mass, terms
    cdef floating[:, ::1] scratch
    cdef int threads
    if n_rows == 0:
        return 0.0
    threads = _threads(n_rows, n_rows * width)
    scratch = np.empty((threads, width), np.float32 if floating is float else np.float64)
    with nogil:
        for r in prange(n_rows, schedule="static", num_threads=threads):
            row = &logits[r, 0]
            y = _gather(&target[r, 0], y_stride, width, &scratch[threadid(), 0])
            top = row_max(row, width)
            shift = top if top > -INFINITY else 0
            total = sum_exp_shifted(row, width, shift)
            mass, terms = weighted_target_sums(row, y, &weight[start], width, keep, spread, shift, _block_log(total))
            _block_merge(&state[r, 0], top, shift, total, mass, terms, True)
            if last:
                s = _block_finish_sum(&state[r, 0])
                loss[r] = <floating>(state[r, BLOCK_NLL] if not isnan(s) else s)
        if last:
            result = sum_to_double(&loss[0], n_rows)
    return result


def softmax_cross_entropy_soft_block_grad_rows(floating[:, ::1] logits, Py_ssize_t start,
                                               const floating[:, :] target, const floating[::1] weight,
                                               floating keep, floating spread, const double[:, ::1] state,
                                               const floating[::1] scale):
    """The gradient pass of one vocabulary block, probability targets, in place:
    ``fastloss.classification.softmax_cross_entropy_soft_block_grad_rows``, compiled ahead of time."""
    cdef Py_ssize_t n_rows = logits.shape[0], width = logits.shape[1], y_stride = target.strides[1], r
    cdef floating *row
    cdef const floating *y
    cdef floating s
    cdef floating[:, ::1] scratch
    cdef int threads
    if n_rows == 0:
        return
    threads = _threads(n_rows, n_rows * width)
    scratch = np.empty((threads, width), np.float32 if floating is float else np.float64)
    with nogil:
        for r in prange(n_rows, schedule="static", num_threads=threads):
            row = &logits[r, 0]
            y = _gather(&target[r, 0], y_stride, width, &scratch[threadid(), 0])
            s = scale[r]
            write_soft_target_grad(row, y, &weight[start], width, <floating>state[r, BLOCK_TOP],
                                   <floating>(state[r, BLOCK_MASS] * s / state[r, BLOCK_SUM]), s, keep, spread, row)
