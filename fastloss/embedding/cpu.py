"""The CPU kernels of :mod:`fastloss.embedding`: Numba functions, compiled just in time;
the wrappers that validate and call them are in ``fastloss/embedding/__init__.py``."""
from __future__ import annotations

import numpy as np

from .._core.jit import REDUCE, jit, prange
from .._core.numerics import typed

# Row kinds of the kernel: torch's cosine_embedding_loss, the contrastive loss, the triplet
# hinge on L_p distances, and the triplet hinge on the cosine distance 1 - cos.
COSINE, CONTRASTIVE, TRIPLET, TRIPLET_COSINE = range(4)

# torch's cosine_embedding_loss adds this to both squared norms (ATen Loss.cpp, EPSILON).
COSINE_EMBEDDING_EPS = 1e-12
# torch.nn.functional.cosine_similarity's default eps: each norm is clamped below at it.
_SIMILARITY_EPS = 1e-8


# ---------------------------------------------------------------- row helpers

@jit(fastmath=REDUCE)
def _dot(u, v, zero):
    s = zero
    for i in range(u.shape[0]):
        s += u[i] * v[i]
    return s


@jit()
def _scaled_product(x, y, kx, ky):
    """(x / kx) (y / ky) in that order: compiled without reassociation, which could turn it
    into (x y) / (kx ky) and overflow where torch does not; inlined into the REDUCE sum below."""
    return (x / kx) * (y / ky)


@jit(fastmath=REDUCE)
def _cosine_sum(u, v, ku, kv, zero):
    """sum_i (u_i / ku) (v_i / kv): torch's cosine_similarity after its norms are clamped."""
    s = zero
    for i in range(u.shape[0]):
        s += _scaled_product(u[i], v[i], ku, kv)
    return s


@jit()
def _shifted_difference(x, y, eps):
    """(x - y) + eps in that order: compiled without reassociation, which would turn it into
    (x + eps) - y and round eps away; LLVM inlines it into the REDUCE loop below, flags kept."""
    return x - y + eps


@jit(fastmath=REDUCE)
def _square_sum(u, v, eps):
    """sum_i (u_i - v_i + eps)^2: :func:`_power_sum` at p = 2, small enough to be inlined."""
    s = typed(0, eps)
    for i in range(u.shape[0]):
        a = _shifted_difference(u[i], v[i], eps)
        s += a * a
    return s


@jit(fastmath=REDUCE)
def _power_sum(u, v, eps, p):
    """sum_i |u_i - v_i + eps|^p (p = 1 without a pow; p = 2 is :func:`_square_sum`)."""
    s = typed(0, eps)
    for i in range(u.shape[0]):
        a = abs(_shifted_difference(u[i], v[i], eps))
        if p == 1:
            s += a
        else:
            s += a ** p
    return s


@jit(inline="always")
def _norm(u, v, eps, p):
    """torch.linalg.vector_norm(u - v + eps, p) of one row, for any real p and +-inf: the
    count of nonzero entries for p = 0 (NaN counts), the largest or smallest |entry| for
    p = +-inf (NaN propagated), else (sum |entry|^p)^(1/p); of one entry, its |entry| for
    every p but 0, without the overflow of a power (as torch). +-inf needs a nonempty row.

    The Euclidean distance of rows of several entries, the default, is inlined into the
    row kernels; the other cases are a call (which costs a row kernel more than the
    distance of a short row: a call that takes a row view counts references to it)."""
    if p == 2 and u.shape[0] != 1:
        return np.sqrt(_square_sum(u, v, eps))
    return _norm_other(u, v, eps, p)


@jit()
def _norm_other(u, v, eps, p):
    """:func:`_norm` of every p but 2 (and of p = 2 over one entry)."""
    zero = typed(0, p)
    if u.shape[0] == 1 and p != 0:  # torch reduces nothing over one feature: |entry|, for any such p
        return abs(_shifted_difference(u[0], v[0], eps))
    if p == 1:
        return _power_sum(u, v, eps, p)
    if p == 0:
        count = zero
        for i in range(u.shape[0]):
            count += typed(1, p) if _shifted_difference(u[i], v[i], eps) != 0 else zero
        return count
    if np.isinf(p):
        m = abs(_shifted_difference(u[0], v[0], eps))
        for i in range(1, u.shape[0]):
            a = abs(_shifted_difference(u[i], v[i], eps))
            if m == m and (a != a or (a > m if p > 0 else a < m)):
                m = a
        return m
    return _power_sum(u, v, eps, p) ** (typed(1, p) / p)


@jit()
def _sgn(x):
    """torch.sgn of a real: 1, -1, or 0 for 0 and for NaN (as torch's CPU kernel gives)."""
    one = typed(1, x)
    return one if x > 0 else (-one if x < 0 else typed(0, x))


@jit(inline="always")
def _norm_backward_factor(u, v, eps, p, d, c):
    """The per-row part of torch's norm backward (FunctionsManual.cpp, ``norm_backward``) for
    d = ||u - v + eps||_p and incoming gradient c, used by :func:`_norm_backward`: c itself
    for p = 0, 1, 2, inlined (see :func:`_norm`)."""
    if p == 0 or p == 1 or p == 2:
        return c
    return _norm_backward_factor_other(u, v, eps, p, d, c)


@jit()
def _norm_backward_factor_other(u, v, eps, p, d, c):
    """:func:`_norm_backward_factor` for p other than 0, 1 and 2."""
    zero = typed(0, p)
    if np.isinf(p):  # grad / (number of entries at the extreme |entry| or NaN)
        count = zero
        for i in range(u.shape[0]):
            a = abs(_shifted_difference(u[i], v[i], eps))
            count += typed(1, p) if (a == d or a != a) else zero
        return c / count
    if p < 1:
        return d ** (typed(1, p) - p)
    return c / d ** (p - typed(1, p)) if d != 0 else zero


@jit(inline="always")
def _norm_backward(p, w, d, c, r):
    """Entry w's gradient of c * ||row||_p (d the norm, r the row's factor from
    :func:`_norm_backward_factor`), as torch's norm backward writes it, branch by branch
    (every constant in the dtype of w: a float64 step would hide a float32 overflow)."""
    zero = typed(0, w)
    if p == 2:
        return c * (w / d if d != 0 else zero)
    if p == 1:
        return _sgn(w) * c
    if p == 0:
        return zero  # torch's backward gives no gradient for p = 0
    if np.isinf(p):
        return _sgn(w) * (r * (typed(1, w) if (abs(w) == d or w != w) else zero))
    if p < 1:
        return _sgn(w) * (abs(w) ** (p - typed(1, p)) if w != 0 else zero) * c * r
    if p < 2:
        return _sgn(w) * abs(w) ** (p - typed(1, p)) * r
    return w * abs(w) ** (p - typed(2, p)) * r


@jit()
def _clamp_min0(x):
    """torch.clamp_min(x, 0): NaN passes."""
    return typed(0, x) if x < 0 else x


@jit(inline="always")
def _hinge(margin, d_ap, d_an, d_pn, swap, s):
    """torch's triplet hinge from its distances (d_pn read only with ``swap``):
    ``clamp_min(margin + d_ap - minimum(d_an, d_pn), 0)``, and the gradients of s times it
    with respect to d_ap, d_an and d_pn by torch's backward formulas: clamp_min passes the
    gradient where its input is >= 0 (so not for NaN), torch.minimum propagates NaN and
    gives each side of a tie half."""
    zero = typed(0, s)
    d_neg = d_an
    if swap:
        d_neg = d_an if (d_an != d_an or not (d_pn < d_an)) else d_pn
    h = margin + d_ap - d_neg
    c = s if h >= 0 else zero
    if not swap:
        return _clamp_min0(h), c, -c, zero
    g = -c / typed(2, c) if d_an == d_pn else -c
    return _clamp_min0(h), c, (zero if d_an > d_pn else g), (zero if d_an < d_pn else g)


@jit(inline="always")
def _triplet_row(u, v, w, margin, p, eps, swap, s, want_grad, gu, gv, gw):
    """One triplet on L_p distances; writes the three gradient rows if ``want_grad``, reading
    entry i of u, v, w before writing entry i of gu, gv, gw. Returns the loss."""
    d_ap = _norm(u, v, eps, p)
    d_an = _norm(u, w, eps, p)
    d_pn = _norm(v, w, eps, p) if swap else d_an
    loss, c_ap, c_an, c_pn = _hinge(margin, d_ap, d_an, d_pn, swap, s)
    if not want_grad:
        return loss
    r_ap = _norm_backward_factor(u, v, eps, p, d_ap, c_ap)
    r_an = _norm_backward_factor(u, w, eps, p, d_an, c_an)
    r_pn = _norm_backward_factor(v, w, eps, p, d_pn, c_pn) if swap else r_an
    for i in range(u.shape[0]):
        x, y, z = u[i], v[i], w[i]
        e_ap = _norm_backward(p, _shifted_difference(x, y, eps), d_ap, c_ap, r_ap)
        e_an = _norm_backward(p, _shifted_difference(x, z, eps), d_an, c_an, r_an)
        g_y = -e_ap
        g_z = -e_an
        if swap:
            e_pn = _norm_backward(p, _shifted_difference(y, z, eps), d_pn, c_pn, r_pn)
            g_y += e_pn
            g_z -= e_pn
        gu[i] = e_ap + e_an
        gv[i] = g_y
        gw[i] = g_z
    return loss


@jit()
def _similarity_norm(u, zero):
    """(||u||_2, max(||u||_2, eps)): torch's cosine_similarity clamps the norm below at its
    eps without a gradient for the clamp (NaN passes)."""
    n = abs(u[0]) if u.shape[0] == 1 else np.sqrt(_dot(u, u, zero))  # one feature: no square (see _norm)
    eps = typed(_SIMILARITY_EPS, zero)
    return n, (eps if n < eps else n)


@jit()
def _similarity_norm_grads(g, u, v, ku, kv, zero):
    """The gradients of g * sum_i (u_i / ku) (v_i / kv) with respect to the clamped norms ku
    and kv, as torch's division backward sums them over the entries."""
    g_ku = zero
    g_kv = zero
    for i in range(u.shape[0]):
        a = u[i] / ku
        b = v[i] / kv
        g_ku -= (g * b) * (a / ku)
        g_kv -= (g * a) * (b / kv)
    return g_ku, g_kv


@jit()
def _similarity_grad(g, g_kx, x, y, nx, kx, ky, zero):
    """Entry x's gradient of g * cosine_similarity(., other) (y the other's entry, g_kx from
    :func:`_similarity_norm_grads`): the division's own term, then the norm backward of
    ||x|| (the clamp to eps has no gradient in torch)."""
    return (g * (y / ky)) / kx + g_kx * (x / nx if nx != 0 else zero)


@jit()
def _triplet_cosine_row(u, v, w, margin, swap, s, want_grad, gu, gv, gw):
    """One triplet on the cosine distance 1 - cosine_similarity (torch's, eps 1e-8), as
    :func:`_triplet_row`."""
    zero = typed(0, s)
    one = typed(1, s)
    nu, ku = _similarity_norm(u, zero)
    nv, kv = _similarity_norm(v, zero)
    nw, kw = _similarity_norm(w, zero)
    cos_ap = _cosine_sum(u, v, ku, kv, zero)
    cos_an = _cosine_sum(u, w, ku, kw, zero)
    cos_pn = _cosine_sum(v, w, kv, kw, zero) if swap else cos_an
    loss, c_ap, c_an, c_pn = _hinge(margin, one - cos_ap, one - cos_an, one - cos_pn, swap, s)
    if not want_grad:
        return loss
    g_ap, g_an, g_pn = -c_ap, -c_an, -c_pn  # d = 1 - cos
    ap_u, ap_v = _similarity_norm_grads(g_ap, u, v, ku, kv, zero)
    an_u, an_w = _similarity_norm_grads(g_an, u, w, ku, kw, zero)
    pn_v, pn_w = _similarity_norm_grads(g_pn, v, w, kv, kw, zero) if swap else (zero, zero)
    for i in range(u.shape[0]):
        x, y, z = u[i], v[i], w[i]
        g_x = _similarity_grad(g_ap, ap_u, x, y, nu, ku, kv, zero)
        g_x += _similarity_grad(g_an, an_u, x, z, nu, ku, kw, zero)
        g_y = _similarity_grad(g_ap, ap_v, y, x, nv, kv, ku, zero)
        g_z = _similarity_grad(g_an, an_w, z, x, nw, kw, ku, zero)
        if swap:
            g_y += _similarity_grad(g_pn, pn_v, y, z, nv, kv, kw, zero)
            g_z += _similarity_grad(g_pn, pn_w, z, y, nw, kw, kv, zero)
        gu[i] = g_x
        gv[i] = g_y
        gw[i] = g_z
    return loss


@jit()
def _cosine_embedding_row(u, v, y, margin, ku, kv, s, want_grad, gu, gv):
    """torch's cosine_embedding_loss of one pair (ATen Loss.cpp): 1 - cos where y == 1,
    clamp_min(cos - margin, 0) where y == -1, 0 for any other y; the gradient by torch's
    backward of each step (where, clamp_min, the division, sqrt, the sums of products).

    ``ku`` (``kv``): how many copies of each of its own features ``u`` (``v``) holds, D
    for a single feature broadcast over the other input's D, else 1. torch takes each
    squared norm over the input's own features, so a row of copies counts 1/k of each."""
    zero = typed(0, s)
    one = typed(1, s)
    eps = typed(COSINE_EMBEDDING_EPS, s)
    prod = _dot(u, v, zero)
    m_u = (_dot(u, u, zero) if ku == one else _cosine_sum(u, u, ku, one, zero)) + eps
    m_v = (_dot(v, v, zero) if kv == one else _cosine_sum(v, v, kv, one, zero)) + eps
    denom = np.sqrt(m_u * m_v)
    cos = prod / denom
    loss = (one - cos if y == 1 else zero) + (_clamp_min0(cos - margin) if y == -1 else zero)
    if not want_grad:
        return loss
    g_cos = (-s if y == 1 else zero) + (s if (y == -1 and cos - margin >= 0) else zero)
    g_prod = g_cos / denom
    g_denom = -g_cos * (cos / denom)
    g_m = g_denom / (denom + denom)  # of m_u * m_v, through the sqrt
    g_mu = g_m * m_v / ku
    g_mv = g_m * m_u / kv
    for i in range(u.shape[0]):
        a, b = u[i], v[i]
        gu[i] = g_prod * b + (g_mu * a + g_mu * a)
        gv[i] = g_prod * a + (g_mv * b + g_mv * b)
    return loss


@jit()
def _contrastive_row(u, v, y, margin, s, want_grad, gu, gv):
    """y d^2 + (1 - y) clamp_min(margin - d, 0)^2 with d = ||u - v||_2; the gradient by
    torch's backward of that composition (pow, clamp_min, the norm)."""
    zero = typed(0, s)
    one = typed(1, s)
    two = typed(2, s)
    d = _norm(u, v, zero, two)
    gap = _clamp_min0(margin - d)
    loss = y * (d * d) + (one - y) * (gap * gap)
    if not want_grad:
        return loss
    g_gap = (s * (one - y)) * (two * gap) if margin - d >= 0 else zero
    g_d = (s * y) * (two * d) - g_gap
    for i in range(u.shape[0]):
        e = _norm_backward(two, u[i] - v[i], d, g_d, g_d)
        gu[i] = e
        gv[i] = -e
    return loss


@jit(parallel=True)
def embedding_pair_rows(kind, a, b, c, target, margin, p, eps, swap, scale, loss, ga, gb, gc, want_grad):
    """Per-row embedding loss over (N, D) rows ``a``, ``b`` (and ``c`` for triplets).

    ``kind`` COSINE: torch's cosine_embedding_loss (:func:`_cosine_embedding_row`; ``p``
    and ``eps`` are there the copy counts ``ku``, ``kv`` of a feature-broadcast input).
    CONTRASTIVE: y d^2 + (1 - y) max(0, margin - d)^2, d = ||a - b||_2. TRIPLET:
    max(0, margin + d(a, b) - d(a, c)) with L_p distances ||u - v + eps||_p (``swap``:
    d(a, c) replaced by d(b, c) when smaller). TRIPLET_COSINE: the same hinge with
    d = 1 - cosine similarity. Writes the per-row loss and, if ``want_grad``,
    ``scale[n]`` times the gradients into ``ga``, ``gb``, ``gc``: row n of each is
    written only after row n of every input has been read, entry by entry (see the module
    docstring), so ``ga`` may be ``a`` itself.
    """
    n_rows = a.shape[0]
    zero = typed(0, margin)
    for n in prange(n_rows):
        s = scale[n] if want_grad else zero
        if kind == COSINE:
            loss[n] = _cosine_embedding_row(a[n], b[n], target[n], margin, p, eps, s, want_grad, ga[n], gb[n])
        elif kind == CONTRASTIVE:
            loss[n] = _contrastive_row(a[n], b[n], target[n], margin, s, want_grad, ga[n], gb[n])
        elif kind == TRIPLET:
            loss[n] = _triplet_row(a[n], b[n], c[n], margin, p, eps, swap, s, want_grad, ga[n], gb[n], gc[n])
        else:
            loss[n] = _triplet_cosine_row(a[n], b[n], c[n], margin, swap, s, want_grad, ga[n], gb[n], gc[n])
