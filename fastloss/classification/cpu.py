"""The CPU kernels of :mod:`fastloss.classification`: Numba functions, compiled just in time;
the wrappers that validate and call them are in ``fastloss/classification/__init__.py``."""
from __future__ import annotations

import numpy as np

from .._core.elementwise import register
from .._core.jit import REDUCE, jit, prange
from .._core.numerics import (
    exp_fast,
    log1p_exp,
    log1p_fast,
    log_fast,
    row_max,
    sigmoid,
    sum_exp_shifted,
    sum_float64,
    typed,
    weighted_nll_sum,
    weighted_target_sums,
)
from .._core.validation import scan_class_indices

# --------------------------------------------------------------------------- kernels

@jit(fastmath=REDUCE)
def exp_shifted_into(row, top, out):
    """out[c] = exp(row[c] - top); returns their sum, as :func:`sum_exp_shifted` sums them
    (vectorised). A gradient pass then needs no second exp: one exp per logit.

    ``out`` must not be ``row``: given one array, the loop compiles differently, and the
    loss with an in-place gradient was seen to differ in its last bit from the loss
    without a gradient.
    """
    s = typed(0, top)
    for c in range(row.shape[0]):
        e = exp_fast(row[c] - top)
        out[c] = e
        s += e
    return s


@jit(inline="always")
def _scale_loop(a_over_s, spread_scale, weight, exps, out):
    for c in range(out.shape[0]):
        out[c] = a_over_s * exps[c] - spread_scale * weight[c]


@jit()
def _scale_softmax_grad(a_over_s, spread_scale, weight, exps, out):
    """out[c] = a_over_s * exps[c] - spread_scale * weight[c], ``exps`` holding exp(row[c] - top)
    (vectorised); ``exps`` may be ``out``, as in :func:`exp_shifted_into`."""
    if out.ctypes.data == exps.ctypes.data:
        _scale_loop(a_over_s, spread_scale, weight, out, out)
    else:
        _scale_loop(a_over_s, spread_scale, weight, exps, out)


@jit()
def _row_position(r, n_pos):
    """Flat row r of (N, K, C) rows as (n, k)."""
    n = r // n_pos
    return n, r - n * n_pos


@jit()
def _zero(out):
    for c in range(out.shape[0]):
        out[c] = 0


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


@jit(inline="always")
def _softmax_cross_entropy_row(r, logits, target, weight, smooth_weight, weight_sum, keep, spread, gamma,
                               ignore_index, scale, denominator, loss, grad, want_grad, scratch):
    """Row ``r`` of :func:`softmax_cross_entropy_rows`: writes its loss (and gradient).

    One exp per logit: :func:`exp_shifted_into` keeps them in the gradient row, or in
    ``scratch`` (C,), the calling thread's own row, when there is no gradient or when the
    gradient row is the logits (in place). The value is then summed by the same loop,
    from and into different arrays, with or without a gradient: the same bits.

    Inlined into both drivers at Numba IR level: called, it sets up its array
    arguments for every row, which for rows of a few classes (N=32, C=10) cost as
    much as the row's arithmetic (85 -> 62 ns a row at C=10).
    """
    n, k = _row_position(r, logits.shape[1])
    row = logits[n, k]
    t = target[n, k]
    if t == ignore_index:
        loss[r] = 0
        if want_grad:
            _ignored_row_grad(row, weight_sum, grad[n, k])
        return
    top = row_max(row)
    x_t = row[t]
    exps = grad[n, k] if want_grad and grad[n, k].ctypes.data != row.ctypes.data else scratch
    total = exp_shifted_into(row, top, exps)
    log_total = np.log(total)
    nll = log_total + (top - x_t)
    w_t = weight[t]
    # Per-row scalars are float64 (the options are); per-class loops stay in the logits' type.
    g = 1.0
    focal = 1.0
    if gamma != 0:
        log_p = -np.float64(nll)
        q = -np.expm1(log_p)  # 1 - p_t, exact near p_t = 1
        focal = q ** gamma
        # At q = 0 the second term's limit is 0 (q^(gamma-1) log p ~ -q^gamma).
        g = focal - gamma * np.exp(log_p) * q ** (gamma - 1) * log_p if q > 0 else 0.0
    value = keep * w_t * focal * nll
    if spread != 0:
        value += spread * weighted_nll_sum(row, smooth_weight, top, log_total)
    loss[r] = value
    if want_grad:
        s = scale[r] / denominator
        b = keep * w_t * g * s
        a = b
        spread_s = 0.0  # not spread * s: without smoothing an infinite s must not make 0 * inf
        if spread != 0:
            a += spread * weight_sum * s
            spread_s = spread * s
        _scale_softmax_grad(typed(a / total, top), typed(spread_s, top), smooth_weight, exps, grad[n, k])
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
    for r in prange(logits.shape[0] * logits.shape[1]):
        # Numba hoists this allocation out of the loop: one scratch row per thread
        # (``parallel_diagnostics(level=4)`` lists it under "Allocation hoisting").
        scratch = np.empty(logits.shape[2], logits.dtype)
        _softmax_cross_entropy_row(r, logits, target, weight, smooth_weight, weight_sum, keep, spread, gamma,
                                   ignore_index, scale, denominator, loss, grad, want_grad, scratch)
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
    scratch = np.empty(logits.shape[2], logits.dtype)
    for r in range(logits.shape[0] * logits.shape[1]):
        _softmax_cross_entropy_row(r, logits, target, weight, smooth_weight, weight_sum, keep, spread, gamma,
                                   ignore_index, scale, denominator, loss, grad, want_grad, scratch)
    return sum_float64(loss), -1, kept


@jit(parallel=True)
def softmax_cross_entropy_soft_rows(logits, target, weight, keep, spread, scale, loss, grad, want_grad):
    """Fused softmax cross-entropy with probability targets over (N, K, C) rows.

    With q = keep * target + spread: loss = sum_c w_c q_c (-log p_c) (each term as
    torch's, so an infinite target gives an infinite loss) and
    d loss / d x_c = p_c * sum_j w_j q_j - w_c q_c.
    """
    n_batch, n_pos, n_classes = logits.shape
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
            out = grad[n, k]
            factor = mass * s / total
            for c in range(n_classes):
                out[c] = factor * exp_fast(row[c] - top) - s * weight[c] * (keep * y[c] + spread)
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
            _zero(grad[n, k])
            if kept_row:
                grad[n, k, t] = -weight[t] * (scale[r] / denominator)  # torch's order: w (g / sum w)
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
