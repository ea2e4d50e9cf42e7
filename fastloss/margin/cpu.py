"""The CPU kernels of :mod:`fastloss.margin`: Numba functions, compiled just in time;
the wrappers that validate and call them are in ``fastloss/margin/__init__.py``."""
from __future__ import annotations

import numpy as np

from .._core.elementwise import register
from .._core.jit import REDUCE, jit, prange
from .._core.numerics import exp_fast, log1p_exp, log1p_unit, maxnum, sigmoid, typed

# ---------------------------------------------------------------- row kernels
# As torch's kernels, a hinge h that is NaN counts as inactive (its test h > 0 fails),
# and the gradient is multiplied by grad_output last, so that a NaN or infinite
# grad_output reaches every entry of the row.

@jit(fastmath=REDUCE)
def _hinge_sums(row, skip, base, power, unit, weight):
    """torch's sums over the hinges h_c = base + row[c], c != skip, that are > 0 (a NaN
    one is not): (sum_c h_c^power * weight, sum_c dh_c * weight) with dh_c = unit
    (power 1) or 2 unit h_c (power 2), each term weighted as torch weights it. The terms
    share the sign of ``weight``, so the order of the sums cannot make a NaN."""
    zero = typed(0, base)
    total = zero
    slope = zero
    for c in range(row.shape[0]):
        h = base + row[c]
        active = h > zero and c != skip
        if power == 1:
            total += h * weight if active else zero
            slope += unit * weight if active else zero
        else:
            total += h * h * weight if active else zero
            slope += (unit + unit) * h * weight if active else zero
    return total, slope


@jit()
def _write_hinge_grad(row, base, power, unit, weight, s, out):
    """out[c] = dh_c * weight * s for h_c = base + row[c] (see :func:`_hinge_sums`): torch's
    per-term gradient, then grad_output ``s``. Reads row[c] before it writes out[c]."""
    zero = typed(0, base)
    for c in range(row.shape[0]):
        h = base + row[c]
        d = (unit if power == 1 else (unit + unit) * h) * weight if h > zero else zero
        out[c] = d * s


@jit(inline="always")
def _worst_competitor(row, t):
    """(index, value) of the largest score other than ``row[t]``, the first index on
    ties; the value is NaN if any competitor is (as ``torch.max`` and ``numpy.max``),
    and the index then the first competitor. Three vectorised passes: the maximum by
    ``maxnum`` (NaN skipped), the count of NaNs, then the first index holding the
    maximum. (The count in the maximum's loop kept LLVM from vectorising it: the
    4096x1000 Crammer-Singer hinge with its gradient took 4.2 ms, now 1.35.)"""
    n = row.shape[0]
    low = typed(-np.inf, row[0])
    m = low
    for c in range(n):
        m = maxnum(m, row[c] if c != t else low)
    nans = 0
    for c in range(n):
        nans += 1 if row[c] != row[c] and c != t else 0
    at = n
    for c in range(n):
        at = min(at, c if row[c] == m and c != t else n)
    if nans > 0 or at == n:
        return (0 if t != 0 else 1), typed(np.nan, m)
    return at, m


@jit(parallel=True)
def class_margin_rows(scores, target, weight, margin, power, worst_only, divisor, unit, scale, loss, grad,
                      want_grad):
    """Multi-class hinge over (N, C) scores with h_i = margin - x_t + x_i, i != t.

    ``worst_only=False``: loss = sum_{i != t} max(0, h_i)^power w_t / divisor
    (``multi_margin_loss``: divisor C), as torch's kernel computes it: NaN hinges count
    as 0, each term is weighted; the gradient is torch's, in units of ``unit`` (torch's
    1 / C, or 1 / (N C) for a mean), multiplied by ``scale[n]`` (grad_output) last.
    ``worst_only=True``: loss = clamp(h_j, min=0) with j the largest competitor, NaN if
    h_j is (Crammer-Singer, power 1); its gradient is the composition's (clamp_min, max,
    gather): ``unit * scale[n]`` (``unit`` 1, or 1 / N for a mean) passes to x_j and
    x_t where h_j >= 0, every other entry is 0.
    Writes the per-row loss and, if ``want_grad``, its gradient; row n of ``scores`` is
    read whole before row n of ``grad`` is written (``grad`` may be ``scores``).
    """
    n_rows, n_classes = scores.shape
    zero = typed(0, margin)
    for n in prange(n_rows):
        row = scores[n]
        t = target[n]
        base = margin - row[t]
        if worst_only:
            j, worst = _worst_competitor(row, t)
            h = base + worst
            loss[n] = h if not (h < zero) else zero
            if want_grad:
                g = grad[n]
                for c in range(n_classes):
                    g[c] = zero
                if h >= zero:
                    g[j] = unit * scale[n]
                    g[t] = -(unit * scale[n])
            continue
        w = weight[t]
        total, slope = _hinge_sums(row, t, base, power, unit, w)
        loss[n] = total / divisor
        if want_grad:
            s = scale[n]
            _write_hinge_grad(row, base, power, unit, w, s, grad[n])
            grad[n, t] = -slope * s


@jit(parallel=True)
def multilabel_margin_rows(scores, target, unit, scale, loss, grad, want_grad):
    """torch's multilabel_margin_loss over (N, C) scores.

    The targets of row n are target[n, :k] with k the first index holding -1 (all C
    if none); loss = sum_{j in targets} sum_{i not a target} max(0, 1 - x_j + x_i) / C,
    a NaN hinge counting as 0, as torch's kernel. The gradient counts the active pairs
    of each class while it reads the row, and is written after (``grad`` may be
    ``scores``): the count times ``unit`` (torch's 1 / C, or 1 / (N C) for a mean),
    multiplied by ``scale[n]`` (grad_output) last.
    """
    n_rows, n_classes = scores.shape
    for n in prange(n_rows):
        row = scores[n]
        labels = target[n]
        is_target = np.zeros(n_classes, np.bool_)
        hits = np.zeros(n_classes, np.int64)  # active pairs: +1 per pair for i, -1 for j
        count = 0
        while count < n_classes and labels[count] >= 0:
            is_target[labels[count]] = True
            count += 1
        zero = typed(0, row[0])
        one = typed(1, row[0])
        total = zero
        for k in range(count):
            j = labels[k]
            base = one - row[j]
            for i in range(n_classes):
                if not is_target[i]:
                    h = base + row[i]
                    if h > zero:
                        total += h
                        hits[i] += 1
                        hits[j] -= 1
        loss[n] = total / typed(n_classes, zero)
        if want_grad:
            g = grad[n]
            s = scale[n]
            for c in range(n_classes):
                g[c] = typed(hits[c], zero) * unit * s


# ---------------------------------------------------------------- scalar kernels
# Each follows torch's composition step by step, so that NaN and inf come out where
# torch's do: clamp_min keeps a NaN and passes its gradient where the hinge is >= 0;
# ``where`` passes the incoming gradient g or an exact 0, whatever g is (the
# ``takes_grad`` kernels of fastloss._core.elementwise, which apply g themselves).

@jit()
def _margin_ranking_point(x1, y, x2, g, margin, p1, p2):
    """clamp_min(-y (x1 - x2) + margin, 0); d/dx1 = where(hinge >= 0, g, 0) * -y, d/dx2 its negative."""
    zero = typed(0, x1)
    v = margin - y * (x1 - x2)
    d = (g if v >= zero else zero) * -y
    return (v if not (v < zero) else zero), d, -d


@jit()
def _hinge_embedding_point(x, y, unused, g, margin, p1, p2):
    """torch's where(y != 1, clamp_min(margin - x, 0), 0) + where(y != -1, x, 0): x for
    y = 1, max(0, margin - x) for y = -1, their sum for any other y."""
    zero = typed(0, x)
    v = margin - x
    hinge = v if not (v < zero) else zero
    loss = (hinge if y != 1 else zero) + (x if y != -1 else zero)
    d = (g if y != -1 else zero) - (g if y != 1 and v >= zero else zero)
    return loss, d, zero


#: log of the largest float64: exp overflows above it.
_EXP_OVERFLOW = 709.782712893384


@jit()
def _soft_margin_point(x, y, unused, p0, p1, p2):
    """torch's log(1 + exp(-y x)), computed as a softplus that does not overflow; but
    where torch's exp(-y x) overflows in float64, inf with a NaN gradient, as torch's.
    Gradient -y sigmoid(-y x)."""
    v = -y * x
    if np.float64(v) > _EXP_OVERFLOW:
        return typed(np.inf, x), typed(np.nan, x), typed(0, x)
    return log1p_exp(v), -y * sigmoid(v), typed(0, x)  # one exp(-|v|) serves both


@jit()
def _multilabel_soft_margin_point(x, y, unused, g, p0, p1, p2):
    """torch's -(y logsigmoid(x) + (1 - y) logsigmoid(-x)), logsigmoid(a) = min(a, 0) -
    log1p(exp(-|a|)), and its gradient through both logsigmoids in torch's order."""
    zero = typed(0, x)
    one = typed(1, x)
    e = exp_fast(-abs(x))
    tail = log1p_unit(e)
    ls_pos = min(x, zero) - tail
    ls_neg = min(-x, zero) - tail
    loss = -(y * ls_pos + (one - y) * ls_neg)
    q = e / (one + e)
    d_pos = one - q if x < zero else q  # d logsigmoid(x) / dx
    d_neg = one - q if -x < zero else q  # d logsigmoid(a) / da at a = -x
    return loss, d_pos * (-g * y) - d_neg * (-g * (one - y)), zero


_MARGIN_RANKING = register(_margin_ranking_point, takes_grad=True)
_HINGE_EMBEDDING = register(_hinge_embedding_point, takes_grad=True)
_SOFT_MARGIN = register(_soft_margin_point)
_MULTILABEL_SOFT_MARGIN = register(_multilabel_soft_margin_point, takes_grad=True)
