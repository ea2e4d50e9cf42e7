"""The CPU kernels of :mod:`fastloss.extras`: Numba functions, compiled just in time;
the wrappers that validate and call them are in ``fastloss/extras/__init__.py``."""
from __future__ import annotations

import numpy as np

from .._core.jit import REDUCE, jit, prange
from .._core.numerics import NORMALIZE_EPS, exp_fast, log1p_unit, log_fast, maxnum, sigmoid, sum_float64, typed

# ---------------------------------------------------------------- kernels

@jit()
def _sigmoid_row(row, p, e):
    """p = sigmoid(row) and e = exp(-|row|) (for the softplus), vectorised."""
    for c in range(row.shape[0]):
        x = row[c]
        ee = exp_fast(-abs(x))
        q = typed(1, x) / (typed(1, x) + ee)
        e[c] = ee
        p[c] = q if x >= 0 else ee * q


@jit()
def _largest_other(p, t):
    """max_{c != t} p_c, at least 0: the reference's max of p times the non-target mask,
    which is NaN when any p is (the target's too: NaN * 0). Two vectorised loops: the
    maximum by ``maxnum`` (NaN skipped), then whether any p is NaN (a compare-and-keep
    that passes NaN on, or both in one loop, LLVM does not vectorise)."""
    zero = typed(0, p[0])
    top = zero
    for c in range(p.shape[0]):
        top = maxnum(top, p[c] if c != t else zero)
    nans = 0
    for c in range(p.shape[0]):
        nans += 1 if p[c] != p[c] else 0
    return top if nans == 0 else typed(np.nan, zero)


@jit()
def _anchor_terms(row, p, e, t, q_pos, q_neg, gamma_pos, gamma_neg, poison, s, terms, grad, want_grad):
    """Per class: terms[c] = (modulating factor) * BCE, and the gradient times ``s`` (vectorised).
    ``poison`` is 0, or NaN to make every term and gradient NaN (a NaN anchor); the
    incoming gradient ``s`` reaches the gradient only, never the terms.

    The BCE is torch's ``binary_cross_entropy_with_logits`` (the reference calls it),
    (1 - y) x + log(1 + e^-x), whose infinite logits give NaN as torch's do; a factor of
    exponent 0 is 1 with gradient 0, as torch's pow, whatever its base."""
    one = typed(1, s)
    zero = poison
    for c in range(row.shape[0]):
        x = row[c]
        pc = p[c]
        is_target = c == t
        y = one if is_target else zero
        bce = (one - y) * x + (max(-x, zero) + log1p_unit(e[c]))
        base = one - pc + q_neg if is_target else one + pc - q_pos
        gamma = gamma_pos if is_target else gamma_neg
        factor = exp_fast(gamma * log_fast(base)) if gamma != 0 else one
        terms[c] = factor * bce
        if want_grad:
            dbase = -pc * (one - pc) if is_target else pc * (one - pc)
            dfactor = gamma * factor / base * dbase if gamma != 0 else zero
            grad[c] = s * (dfactor * bce + factor * (pc - y))


@jit(parallel=True)
def anchor_rows(logits, target, gamma_pos, gamma_neg, slack, scale, loss, grad, want_grad):
    """Anchor loss over (N, C) logits, as Ryou et al.'s reference implementation.

    With p = sigmoid(x), binary cross-entropies b_c against the one-hot target, and
    anchors held constant, q_pos = max(p_t - slack, 0), q_neg = min(max_{c != t} p_c
    + slack, 1): loss = (1 - p_t + q_neg)^gamma_pos b_t + sum_{c != t} (1 + p_c -
    q_pos)^gamma_neg b_c. The gradient treats q_pos and q_neg as constants. Every
    pass over a row vectorises (:func:`exp_fast`, :func:`log_fast`).
    """
    n_rows, n_classes = logits.shape
    unused = np.empty(n_classes, logits.dtype)
    for n in prange(n_rows):
        row = logits[n]
        t = target[n]
        p = np.empty(n_classes, logits.dtype)
        e = np.empty(n_classes, logits.dtype)
        terms = np.empty(n_classes, logits.dtype)  # a buffer of its own: aliasing p would stop vectorisation
        _sigmoid_row(row, p, e)
        q_neg = min(_largest_other(p, t) + slack, typed(1, slack))  # NaN passes, as torch's clamp
        q_pos = max(p[t] - slack, slack * 0) if p[t] == p[t] else p[t]
        # A NaN anchor makes the reference's factor NaN in every column, masked by a multiplication by 0.
        poison = slack * 0
        if (gamma_pos != 0 and q_neg != q_neg) or (gamma_neg != 0 and q_pos != q_pos):
            poison = q_neg + q_pos
        s = (scale[n] if want_grad else slack * 0) + poison
        _anchor_terms(row, p, e, t, q_pos, q_neg, gamma_pos, gamma_neg, poison, s, terms,
                      grad[n] if want_grad else unused, want_grad)
        loss[n] = sum_float64(terms)


# Positions per parallel work item of the Dice kernels: the item's probabilities
# (C rows of DICE_CHUNK) stay in cache between the loops that make and sum them.
# Loops run over slices from 0, never over k0 + i: Numba's negative-index wraparound
# of an index of unknown sign would keep them from vectorising.
DICE_CHUNK = 2048


@jit()
def _sigmoid_into(x, out):
    """out = sigmoid(x) (vectorised)."""
    for i in range(x.shape[0]):
        out[i] = sigmoid(x[i])


@jit()
def _softmax_into(x, k0, probs, o0, top, norm):
    """probs[:, o0:o0 + m] = the softmax over the rows of x[:, k0:k0 + m], m = len(top);
    ``top`` and ``norm`` are scratch of length m. Loops run along positions, so they vectorise."""
    m = top.shape[0]
    first = x[0, k0:k0 + m]
    for i in range(m):
        top[i] = first[i]
        norm[i] = 0
    for c in range(1, x.shape[0]):
        row = x[c, k0:k0 + m]
        for i in range(m):
            v = row[i]
            top[i] = v if v > top[i] else top[i]
    for c in range(x.shape[0]):
        row = x[c, k0:k0 + m]
        out = probs[c, o0:o0 + m]
        for i in range(m):
            e = exp_fast(row[i] - top[i])
            out[i] = e
            norm[i] += e
    for i in range(m):
        norm[i] = typed(1, top[i]) / norm[i]
    for c in range(x.shape[0]):
        out = probs[c, o0:o0 + m]
        for i in range(m):
            out[i] *= norm[i]


@jit(fastmath=REDUCE)
def _binary_overlap(p, y):
    """(sum p y, sum p + y, count of y outside [0, 1]), the sums in float64."""
    inter = 0.0
    total = 0.0
    bad = 0
    for i in range(p.shape[0]):
        q = np.float64(p[i])
        t = np.float64(y[i])
        inter += q * t
        total += q + t
        bad += (t < 0.0) | (t > 1.0)
    return inter, total, bad


@jit(fastmath=REDUCE)
def _class_overlap(p, labels, c):
    """(sum p [label = c], sum p + [label = c]), in float64."""
    inter = 0.0
    total = 0.0
    for i in range(p.shape[0]):
        q = np.float64(p[i])
        y = 1.0 if labels[i] == c else 0.0
        inter += q * y
        total += q + y
    return inter, total


@jit()
def _count_outside(labels, n_classes):
    """How many labels lie outside [0, n_classes)."""
    bad = 0
    for i in range(labels.shape[0]):
        v = labels[i]
        bad += (v < 0) | (v >= n_classes)
    return bad


@jit()
def _soft_dice_sums_item(item, x, labels, soft, binary, inter, total, probs, want_probs):
    """Work item ``item`` of :func:`soft_dice_sums`: one chunk of one sample's positions.
    Returns its count of targets out of range."""
    n_classes, n_pos = x.shape[1:]
    n_chunks = inter.shape[1]
    n = item // n_chunks
    j = item - n * n_chunks
    k0 = j * DICE_CHUNK
    m = min(DICE_CHUNK, n_pos - k0)
    dst = probs[n] if want_probs else np.empty((n_classes, m), x.dtype)
    o0 = k0 if want_probs else 0
    if binary:
        p = dst[0, o0:o0 + m]
        _sigmoid_into(x[n, 0, k0:k0 + m], p)
        inter[n, j, 0], total[n, j, 0], bad = _binary_overlap(p, soft[n, k0:k0 + m])
        return bad
    _softmax_into(x[n], k0, dst, o0, np.empty(m, x.dtype), np.empty(m, x.dtype))
    lab = labels[n, k0:k0 + m]
    for c in range(n_classes):
        inter[n, j, c], total[n, j, c] = _class_overlap(dst[c, o0:o0 + m], lab, c)
    return _count_outside(lab, n_classes)


@jit(parallel=True)
def soft_dice_sums(x, labels, soft, binary, inter, total, probs, want_probs):
    """Per (sample, chunk of positions, class): the sums of p y and of p + y.

    ``x`` is (N, C, K) logits; targets are ``soft`` (N, K) (binary, C = 1) or the
    class indices ``labels`` (N, K). ``inter`` and ``total`` are (N, chunks, C).
    With ``want_probs`` the probabilities are also written to ``probs`` (N, C, K),
    for :func:`soft_dice_grad`. Targets are only compared, never used as indices:
    the kernel returns how many lie outside [0, 1] (binary) or [0, C), and the
    caller raises when that is not 0.
    """
    n_bad = 0
    for item in prange(inter.shape[0] * inter.shape[1]):
        n_bad += _soft_dice_sums_item(item, x, labels, soft, binary, inter, total, probs, want_probs)
    return n_bad


@jit()
def soft_dice_sums_serial(x, labels, soft, binary, inter, total, probs, want_probs):
    """:func:`soft_dice_sums` on the calling thread, for inputs so small that starting
    the parallel region (microseconds) would cost more than the work."""
    n_bad = 0
    for item in range(inter.shape[0] * inter.shape[1]):
        n_bad += _soft_dice_sums_item(item, x, labels, soft, binary, inter, total, probs, want_probs)
    return n_bad


@jit()
def _soft_dice_grad_item(item, labels, soft, binary, coef, offset, grad):
    """Work item ``item`` of :func:`soft_dice_grad`, as in :func:`soft_dice_sums`."""
    n_classes, n_pos = grad.shape[1:]
    n_chunks = (n_pos + DICE_CHUNK - 1) // DICE_CHUNK
    n = item // n_chunks
    k0 = (item - n * n_chunks) * DICE_CHUNK
    k1 = min(k0 + DICE_CHUNK, n_pos)
    if binary:
        out = grad[n, 0, k0:k1]
        y = soft[n, k0:k1]
        a = coef[n, 0]
        b = offset[n, 0]
        one = typed(1, a)
        for i in range(k1 - k0):
            p = out[i]
            out[i] = (a * y[i] + b) * p * (one - p)
        return
    lab = labels[n, k0:k1]
    dot = np.zeros(k1 - k0, grad.dtype)
    for c in range(n_classes):
        p = grad[n, c, k0:k1]
        a = coef[n, c]
        b = offset[n, c]
        for i in range(k1 - k0):
            dot[i] += p[i] * ((a if lab[i] == c else a * 0) + b)
    for c in range(n_classes):
        out = grad[n, c, k0:k1]
        a = coef[n, c]
        b = offset[n, c]
        for i in range(k1 - k0):
            out[i] = out[i] * ((a if lab[i] == c else a * 0) + b - dot[i])


@jit(parallel=True)
def soft_dice_grad(labels, soft, binary, coef, offset, grad):
    """Gradient of the soft Dice loss with respect to the (N, C, K) logits, in place
    over the probabilities that :func:`soft_dice_sums` wrote into ``grad``.

    ``coef[n, c] y + offset[n, c]`` is d loss / d p_{nck}; it goes through the sigmoid
    (binary) or the softmax over C.
    """
    n_items = grad.shape[0] * ((grad.shape[2] + DICE_CHUNK - 1) // DICE_CHUNK)
    for item in prange(n_items):
        _soft_dice_grad_item(item, labels, soft, binary, coef, offset, grad)


@jit()
def soft_dice_grad_serial(labels, soft, binary, coef, offset, grad):
    """:func:`soft_dice_grad` on the calling thread (see :func:`soft_dice_sums_serial`)."""
    n_items = grad.shape[0] * ((grad.shape[2] + DICE_CHUNK - 1) // DICE_CHUNK)
    for item in range(n_items):
        _soft_dice_grad_item(item, labels, soft, binary, coef, offset, grad)


@jit(fastmath=REDUCE)
def _sum_squares(row):
    s = 0.0
    for i in range(row.shape[0]):
        s += np.float64(row[i]) * row[i]
    return s


@jit(fastmath=REDUCE)
def _dot64(a, b):
    s = 0.0
    for i in range(a.shape[0]):
        s += np.float64(a[i]) * b[i]
    return s


@jit(parallel=True)
def normalize_rows(x, scale, unit, norms):
    """unit[n] = scale * x[n] / max(||x[n]||, 1e-12) (``F.normalize`` times ``scale``); norms[n] the clamped norm."""
    for n in prange(x.shape[0]):
        norm = max(np.sqrt(_sum_squares(x[n])), NORMALIZE_EPS)
        norms[n] = norm
        factor = scale / norm
        row = x[n]
        out = unit[n]
        for i in range(row.shape[0]):
            out[i] = row[i] * factor


@jit(parallel=True)
def normalize_rows_backward(unit, norms, scale, g, out):
    """Gradient through x / max(||x||, eps) given u = x / max(||x||, eps) and the upstream
    ``scale * g``: (g - u (u . g)) / ||x||, or g / eps where the norm was clamped."""
    for n in prange(unit.shape[0]):
        u = unit[n]
        row = g[n]
        dst = out[n]
        norm = norms[n]
        radial = _dot64(u, row) if norm > NORMALIZE_EPS else 0.0
        factor = scale / norm
        for i in range(u.shape[0]):
            dst[i] = (row[i] - u[i] * radial) * factor
