r"""Embedding losses over pairs and triplets of rows: value and gradient fused.

One parallel kernel, :func:`embedding_pair_rows`, serves the four losses of this
family; per row it computes the needed similarities (a cosine, or L_p distances
:math:`\lVert u - v + \varepsilon \rVert_p` as ``torch.pairwise_distance`` defines
them) and writes the gradient of every input in the same pass.

Two rules hold in every row:

* Exactness in the corners: each gradient is torch's backward formula, step by step
  (``clamp_min`` passes its gradient at 0 and none for NaN, ``torch.minimum`` splits a
  tie in halves, the norm's backward masks a zero norm), so that NaN and inf
  propagate exactly as through torch's autograd, and never as ``0 * inf``.
* In place: a row is read whole for its distances, then one pass over its elements
  reads element i of every input before it writes element i of the gradients, so the
  gradient buffer may be the input itself (``grad_out=anchor``); any other overlap is
  refused by :class:`fastloss._layout.GradientBuffer`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, overload

import numpy as np

from ._backend import require_numba
from ._core.table import LOSSES
from ._jit import REDUCE, jit, prange
from ._layout import GradientBuffer, read_only, sum_to_shape
from ._math import sum_float64, typed
from ._reduction import check_options, finish, loss_scale
from ._validation import as_float_array, as_target_array, check_bool, check_real, check_shape, common_shape

if TYPE_CHECKING:
    from typing import Any, Literal

    from numpy.typing import NDArray

    from ._typing import ArrayLike, Backend, Grad2, Grad3, Loss, Reduction, WithGrad


# Row kinds of the kernel: torch's cosine_embedding_loss, the contrastive loss, the triplet
# hinge on L_p distances, and the triplet hinge on the cosine distance 1 - cos.
COSINE, CONTRASTIVE, TRIPLET, TRIPLET_COSINE = range(4)

# torch's cosine_embedding_loss adds this to both squared norms (ATen Loss.cpp, EPSILON).
_COSINE_EPS = 1e-12
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
def _power_sum(u, v, eps, p):
    """sum_i |u_i - v_i + eps|^p (p = 1 and 2 without a pow)."""
    s = typed(0, eps)
    for i in range(u.shape[0]):
        a = abs(_shifted_difference(u[i], v[i], eps))
        if p == 2:
            s += a * a
        elif p == 1:
            s += a
        else:
            s += a ** p
    return s


@jit()
def _norm(u, v, eps, p):
    """torch.linalg.vector_norm(u - v + eps, p) of one row, for any real p and +-inf: the
    count of nonzero entries for p = 0 (NaN counts), the largest or smallest |entry| for
    p = +-inf (NaN propagated), else (sum |entry|^p)^(1/p); of one entry, its |entry| for
    every p but 0, without the overflow of a power (as torch). +-inf needs a nonempty row."""
    zero = typed(0, p)
    if u.shape[0] == 1 and p != 0:  # torch reduces nothing over one feature: |entry|, for any such p
        return abs(_shifted_difference(u[0], v[0], eps))
    if p == 2:
        return np.sqrt(_power_sum(u, v, eps, p))
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


@jit()
def _norm_backward_factor(u, v, eps, p, d, c):
    """The per-row part of torch's norm backward (FunctionsManual.cpp, ``norm_backward``) for
    d = ||u - v + eps||_p and incoming gradient c, used by :func:`_norm_backward`."""
    zero = typed(0, p)
    if p == 0 or p == 1 or p == 2:
        return c
    if np.isinf(p):  # grad / (number of entries at the extreme |entry| or NaN)
        count = zero
        for i in range(u.shape[0]):
            a = abs(_shifted_difference(u[i], v[i], eps))
            count += typed(1, p) if (a == d or a != a) else zero
        return c / count
    if p < 1:
        return d ** (typed(1, p) - p)
    return c / d ** (p - typed(1, p)) if d != 0 else zero


@jit()
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


@jit()
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


@jit()
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
def _cosine_embedding_row(u, v, y, margin, s, want_grad, gu, gv):
    """torch's cosine_embedding_loss of one pair (ATen Loss.cpp): 1 - cos where y == 1,
    clamp_min(cos - margin, 0) where y == -1, 0 for any other y; the gradient by torch's
    backward of each step (where, clamp_min, the division, sqrt, the sums of products)."""
    zero = typed(0, s)
    one = typed(1, s)
    eps = typed(_COSINE_EPS, s)
    prod = _dot(u, v, zero)
    m_u = _dot(u, u, zero) + eps
    m_v = _dot(v, v, zero) + eps
    denom = np.sqrt(m_u * m_v)
    cos = prod / denom
    loss = (one - cos if y == 1 else zero) + (_clamp_min0(cos - margin) if y == -1 else zero)
    if not want_grad:
        return loss
    g_cos = (-s if y == 1 else zero) + (s if (y == -1 and cos - margin >= 0) else zero)
    g_prod = g_cos / denom
    g_denom = -g_cos * (cos / denom)
    g_m = g_denom / (denom + denom)  # of m_u * m_v, through the sqrt
    g_mu = g_m * m_v
    g_mv = g_m * m_u
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

    ``kind`` COSINE: torch's cosine_embedding_loss (:func:`_cosine_embedding_row`).
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
            loss[n] = _cosine_embedding_row(a[n], b[n], target[n], margin, s, want_grad, ga[n], gb[n])
        elif kind == CONTRASTIVE:
            loss[n] = _contrastive_row(a[n], b[n], target[n], margin, s, want_grad, ga[n], gb[n])
        elif kind == TRIPLET:
            loss[n] = _triplet_row(a[n], b[n], c[n], margin, p, eps, swap, s, want_grad, ga[n], gb[n], gc[n])
        else:
            loss[n] = _triplet_cosine_row(a[n], b[n], c[n], margin, swap, s, want_grad, ga[n], gb[n], gc[n])


# ---------------------------------------------------------------- wrappers

def _triplet_margin(margin):
    """torch's one check of the triplet losses' margin: > 0 (NaN passes it, as in torch)."""
    margin = check_real(margin, "margin", finite=False)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    return margin


def _run_pairs(kind, inputs, target, params, reduction, grad, grad_output, grad_out):
    """Lay out the rows, run :func:`embedding_pair_rows`, reduce; gradients for every input.

    The inputs (of one number of dimensions) and ``target`` (one label per row) broadcast
    together, as in torch; the gradient of an input broadcast along an axis is summed over
    it, back to the input's own shape."""
    x = inputs[0]
    dtype = x.dtype
    full = x.shape
    if x.ndim:
        full = common_shape([(f"input {k}", a.shape) for k, a in enumerate(inputs)] + [("target", target.shape + (1,))])
    loss_shape = full[:-1]
    shape = (math.prod(loss_shape), full[-1] if full else 1)  # a 0-d input is one feature
    rows = [read_only(np.ascontiguousarray(np.broadcast_to(a, full).reshape(shape))) for a in inputs]
    c = rows[2] if len(rows) == 3 else rows[0]
    y = read_only(np.ascontiguousarray(np.broadcast_to(target, loss_shape).reshape(-1)))
    loss = np.empty(shape[0], dtype)
    none = np.empty((shape[0], 0), dtype)  # rows of nothing: what the kernel is given for no gradient
    if grad:
        scale = np.ascontiguousarray(np.broadcast_to(loss_scale(reduction, grad_output, loss_shape, shape[0], dtype),
                                                     loss_shape), dtype).reshape(-1)
        buffers = [GradientBuffer(inputs[0], dtype, grad_out, reads=(*inputs[1:], target, scale))]
        buffers += [GradientBuffer(a, dtype, None) for a in inputs[1:]]

        def rows_of(array):
            if array.shape == full and array.flags.c_contiguous:
                return array.reshape(shape)
            return np.empty(shape, dtype)  # written back by back_to (summed over broadcast axes)

        def back_to(v, s):
            return sum_to_shape(v.reshape(full), s)

        views = [buf.view(rows_of, back_to) for buf in buffers]
        args = (scale, loss, views[0], views[1], views[2] if len(views) == 3 else none, True)
    else:
        args = (np.empty(0, dtype), loss, none, none, none, False)
    margin, p, eps, swap = params
    embedding_pair_rows(kind, rows[0], rows[1], c, y, dtype.type(margin), dtype.type(p), dtype.type(eps), swap,
                        *args)
    total = sum_float64(loss) if reduction != "none" else 0.0
    result = finish(total, loss.reshape(loss_shape), reduction, shape[0], dtype)
    if not grad:
        return result
    return result, tuple(buf.result() for buf in buffers)


def _pair_inputs(names, arrays, ranks=None, broadcast=False):
    """The inputs as float arrays of the first one's compute dtype; ``ranks``: the numbers
    of dimensions allowed (any when None, as torch's triplet losses). Of the first one's
    shape, or with ``broadcast`` of its number of dimensions and shapes that broadcast
    together (as torch requires of them)."""
    first = as_float_array(arrays[0], names[0])
    if ranks is not None and first.ndim not in ranks:
        raise ValueError(f"{names[0]} must be (N, D) or (D,), got shape {first.shape}")
    rest = [as_float_array(a, name, first.dtype) for name, a in zip(names[1:], arrays[1:])]
    for name, a in zip(names[1:], rest):
        if not broadcast:
            check_shape(a.shape, first.shape, name, names[0])
        elif a.ndim != first.ndim:
            raise ValueError(f"{name} has shape {a.shape}; expected {first.ndim} dimensions as {names[0]} has "
                             f"({first.shape}): torch broadcasts these inputs only among equal numbers of dimensions")
    if broadcast:
        common_shape(zip(names, (a.shape for a in [first] + rest)))
    return [first] + rest


def _labels(target, x, name="target"):
    y = as_target_array(target, name, x.dtype)
    check_shape(y.shape, x.shape[:-1], name, f"input of shape {x.shape} (one label per row)")
    return y


def _cosine_labels(target, x1, x2, name="target"):
    """One label per row of the inputs (0-d for 1-D inputs, 1-D for 2-D inputs, as torch
    requires), broadcasting with their rows."""
    y = as_target_array(target, name, x1.dtype)
    if y.ndim != x1.ndim - 1:
        raise ValueError(f"{name} has shape {y.shape}; expected {x1.ndim - 1} dimensions, one label per row of "
                         f"input1 of shape {x1.shape}")
    common_shape([("input1", x1.shape[:-1]), ("input2", x2.shape[:-1]), (name, y.shape)])
    if x1.shape[-1] != x2.shape[-1]:
        # torch broadcasts the features of a single-feature input in the product but takes
        # each norm over the input's own features: not a cosine, and not reproduced here.
        raise ValueError(f"input2 has shape {x2.shape}; expected {x1.shape[-1]} features as input1 of shape "
                         f"{x1.shape} (the rows may broadcast, the feature axis may not)")
    return y


@overload
def cosine_embedding_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ..., *,
                          reduction: Reduction = ..., grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                          grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...


@overload
def cosine_embedding_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ..., *,
                          reduction: Reduction = ..., grad: Literal[True], grad_output: ArrayLike | None = ...,
                          grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[Grad2]: ...


@overload
def cosine_embedding_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ..., *,
                          reduction: Reduction = ..., grad: bool, grad_output: ArrayLike | None = ...,
                          grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[Grad2]: ...


def cosine_embedding_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = 0.0, *,
                          reduction: Reduction = "mean", grad: bool = False, grad_output: ArrayLike | None = None,
                          grad_out: NDArray[Any] | None = None, backend: Backend = None) -> Loss | WithGrad[Grad2]:
    r"""Cosine embedding loss, as ``torch.nn.functional.cosine_embedding_loss``.

    .. math::

        \ell = \begin{cases} 1 - \cos(x_1, x_2) & y = 1 \\ \max(0, \cos(x_1, x_2) - \mathrm{margin}) & y = -1
        \\ 0 & \text{any other } y \end{cases}, \qquad
        \cos = \frac{x_1 \cdot x_2}{\sqrt{(\lVert x_1\rVert^2 + 10^{-12})(\lVert x_2\rVert^2 + 10^{-12})}}

    Inputs (N, D) or (D,), targets (N,) or (): any real values, as in torch (only 1
    and -1 select a term). The rows of the inputs and the targets broadcast together, as
    in torch (a (1, D) input against (N, D), say; each gradient is summed back to its
    input's shape); the feature axis does not (torch's norms of a broadcast single feature
    make no cosine). ``grad=True`` gives ``(loss, (d/d input1, d/d input2))``.

    References
    ----------
    PyTorch ``torch.nn.CosineEmbeddingLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> x = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> y = np.array([1, -1])  # pull the first pair together (cos 0), push the second apart (cos 1)
    >>> round(float(fastloss.cosine_embedding_loss(x, np.array([[0.0, 1.0], [1.0, 1.0]]), y)), 9)
    1.0
    """
    require_numba("cosine_embedding_loss", backend)
    check_options(reduction, grad)
    margin = check_real(margin, "margin", finite=False)
    x1, x2 = _pair_inputs(("input1", "input2"), (input1, input2), (1, 2), broadcast=True)
    y = _cosine_labels(target, x1, x2)
    return _run_pairs(COSINE, (x1, x2), y, (margin, 2.0, 0.0, False), reduction, grad, grad_output, grad_out)


def _triplet_inputs(anchor, positive, negative, p=2.0, broadcast=False):
    """The three triplet inputs, any equal shapes (D = the last axis; a 0-d input is one
    feature), or with ``broadcast`` any shapes of one number of dimensions that broadcast
    together; torch's norm of no features is refused for p < 0 and p = +-inf, as there."""
    a, pos, neg = _pair_inputs(("anchor", "positive", "negative"), (anchor, positive, negative), broadcast=broadcast)
    if a.ndim and 0 in (a.shape[-1], pos.shape[-1], neg.shape[-1]) and (p < 0 or math.isinf(p)):
        raise ValueError(f"p={p}: the L_p norm of zero features is not defined for p < 0 or infinite p, and "
                         f"anchor has shape {a.shape}")
    return a, pos, neg


@overload
def triplet_margin_loss(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike, margin: float = ...,
                        p: float = ..., eps: float = ..., swap: bool = ..., *, reduction: Reduction = ...,
                        grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                        grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...


@overload
def triplet_margin_loss(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike, margin: float = ...,
                        p: float = ..., eps: float = ..., swap: bool = ..., *, reduction: Reduction = ...,
                        grad: Literal[True], grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                        backend: Backend = ...) -> WithGrad[Grad3]: ...


@overload
def triplet_margin_loss(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike, margin: float = ...,
                        p: float = ..., eps: float = ..., swap: bool = ..., *, reduction: Reduction = ...,
                        grad: bool, grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                        backend: Backend = ...) -> Loss | WithGrad[Grad3]: ...


def triplet_margin_loss(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike, margin: float = 1.0,
                        p: float = 2.0, eps: float = 1e-6, swap: bool = False, *, reduction: Reduction = "mean",
                        grad: bool = False, grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
                        backend: Backend = None) -> Loss | WithGrad[Grad3]:
    r"""Triplet margin loss, as ``torch.nn.functional.triplet_margin_loss``.

    .. math::

        \ell = \max(0,\ \mathrm{margin} + d(a, p) - d(a, n)), \qquad
        d(u, v) = \lVert u - v + \varepsilon \rVert_p

    with ``eps`` added to the difference as ``torch.pairwise_distance`` adds it, the norm
    over the last axis (inputs of one number of dimensions whose shapes broadcast together,
    as in torch, each gradient summed back to its input's shape; a 0-d input is one feature). With
    ``swap`` (Balntas et al. 2016) :math:`d(a, n)` is replaced by :math:`d(p, n)` when
    that is smaller. ``margin > 0`` (ValueError otherwise, as torch); ``p`` any real or
    ``inf`` as ``torch.linalg.vector_norm`` takes it (p = 0 counts the nonzero entries and
    has no gradient). ``grad=True`` gives ``(loss, (d/d anchor, d/d positive, d/d negative))``.

    References
    ----------
    Schroff et al., "FaceNet", CVPR 2015; Balntas et al., "Learning local feature
    descriptors with triplets and shallow convolutional neural networks", BMVC 2016;
    PyTorch ``torch.nn.TripletMarginLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> a, p, n = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]), np.array([[0.0, 1.0]])
    >>> round(float(fastloss.triplet_margin_loss(a, p, n, eps=0.0)), 12)
    5.0
    """
    require_numba("triplet_margin_loss", backend)
    check_options(reduction, grad)
    margin = _triplet_margin(margin)
    p = check_real(p, "p", finite=False)
    eps = check_real(eps, "eps", finite=False)
    swap = check_bool(swap, "swap")
    a, pos, neg = _triplet_inputs(anchor, positive, negative, p, broadcast=True)
    return _run_pairs(TRIPLET, (a, pos, neg), np.zeros((), a.dtype), (margin, p, eps, swap), reduction, grad,
                      grad_output, grad_out)


# The named distances of triplet_margin_with_distance_loss: (kernel row kind, p, eps).
DISTANCES = {
    None: (TRIPLET, 2.0, 1e-6),  # torch.pairwise_distance, torch's default
    "euclidean": (TRIPLET, 2.0, 0.0),  # torch.linalg.vector_norm(x - y, dim=-1)
    "cosine": (TRIPLET_COSINE, 2.0, 0.0),  # 1 - F.cosine_similarity(x, y, dim=-1)
}


def _callable_triplet(distance_function, a, pos, neg, margin, swap, reduction):
    """The hinge of a Python ``distance_function`` on the arrays, as torch composes it."""
    loss_shape = a.shape[:-1]

    def distance(x, y, names):
        name = f"distance_function({names})"
        d = as_target_array(distance_function(x, y), name, a.dtype)
        check_shape(d.shape, loss_shape, name, f"inputs of shape {a.shape} (one distance per row)")
        return d

    d_neg = distance(a, neg, "anchor, negative")
    if swap:
        d_neg = np.minimum(d_neg, distance(pos, neg, "positive, negative"))
    losses = np.asarray(np.maximum(margin + distance(a, pos, "anchor, positive") - d_neg, 0), a.dtype)
    n_rows = losses.size
    total = sum_float64(np.ascontiguousarray(losses).reshape(-1)) if reduction != "none" else 0.0
    return finish(total, losses, reduction, n_rows, a.dtype)


def check_triplet_with_distance(anchor, positive, negative, distance_function, margin, swap, reduction, grad=False):
    """Every check of :func:`triplet_margin_with_distance_loss`, before any distance is taken
    (:mod:`fastloss.torch` runs them for a callable too): ``(anchor, positive, negative,
    the named distance's kernel parameters or None for a callable, margin, swap)``."""
    check_options(reduction, grad)
    margin = _triplet_margin(margin)
    swap = check_bool(swap, "swap")
    named = _distance_function(distance_function, grad)
    return (*_triplet_inputs(anchor, positive, negative), named, margin, swap)


def _distance_function(distance_function, grad):
    """The kernel parameters of a named distance, or None for a Python callable (TypeError
    with ``grad``: no gradient can be formed of it); ValueError or TypeError otherwise."""
    if callable(distance_function):
        if grad:
            raise TypeError("distance_function is a Python callable, of which fastloss cannot form a gradient "
                            "(only its values can be called on arrays): use distance_function=None, 'euclidean' "
                            "or 'cosine', which have fused gradients, or fastloss.torch."
                            "triplet_margin_with_distance_loss, where autograd differentiates the callable's "
                            "torch operations")
        return None
    if distance_function is None or isinstance(distance_function, str):
        if distance_function in DISTANCES:
            return DISTANCES[distance_function]
        raise ValueError(f"distance_function must be None, 'euclidean', 'cosine' or a callable; "
                         f"got {distance_function!r}")
    raise TypeError(f"distance_function must be None, 'euclidean', 'cosine' or a callable; "
                    f"got {type(distance_function).__name__}")


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0, swap=False,
                                      reduction="mean", grad=False, grad_output=None, grad_out=None, backend=None):
    r"""Triplet margin loss with a distance of choice, as
    ``torch.nn.functional.triplet_margin_with_distance_loss``.

    .. math::

        \ell = \max(0,\ \mathrm{margin} + d(a, p) - d(a, n))

    with :math:`d(a, n)` replaced by :math:`d(p, n)` when that is smaller if ``swap``
    (Balntas et al. 2016). ``distance_function``:

    * ``None``: torch's default, ``torch.pairwise_distance``:
      :math:`\lVert u - v + 10^{-6} \rVert_2`;
    * ``"euclidean"``: :math:`\lVert u - v \rVert_2` (``torch.linalg.vector_norm(u - v, dim=-1)``);
    * ``"cosine"``: :math:`1 - \cos(u, v)` with torch's ``cosine_similarity(u, v, dim=-1)``
      (each norm clamped below at :math:`10^{-8}`);
    * a Python callable ``f(u, v)`` on the arrays, giving one distance per row: values only,
      as fastloss cannot differentiate it; ``grad=True`` raises TypeError. In
      ``fastloss.torch`` a callable of torch operations is differentiated by autograd.

    The named distances share the fused kernel of :func:`triplet_margin_loss`. Inputs of
    any equal shapes (the distance over the last axis); ``margin > 0`` (ValueError
    otherwise, as torch). ``grad=True`` gives
    ``(loss, (d/d anchor, d/d positive, d/d negative))``.

    References
    ----------
    Schroff et al., "FaceNet", CVPR 2015; Balntas et al., BMVC 2016; PyTorch
    ``torch.nn.TripletMarginWithDistanceLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> a, p, n = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), np.array([[1.0, 1.0]])
    >>> round(float(fastloss.triplet_margin_with_distance_loss(a, p, n, distance_function="cosine")), 6)
    1.707107
    >>> l1 = lambda u, v: np.abs(u - v).sum(-1)
    >>> float(fastloss.triplet_margin_with_distance_loss(a, p, n, distance_function=l1, margin=0.5))
    1.5
    """
    require_numba("triplet_margin_with_distance_loss", backend)
    a, pos, neg, named, margin, swap = check_triplet_with_distance(anchor, positive, negative, distance_function,
                                                                   margin, swap, reduction, grad)
    if named is None:
        return _callable_triplet(distance_function, a, pos, neg, margin, swap, reduction)
    kind, p, eps = named
    return _run_pairs(kind, (a, pos, neg), np.zeros((), a.dtype), (margin, p, eps, swap), reduction, grad,
                      grad_output, grad_out)


@overload
def contrastive_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ...,
                     reduction: Reduction = ..., *, grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
                     grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...


@overload
def contrastive_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ...,
                     reduction: Reduction = ..., *, grad: Literal[True], grad_output: ArrayLike | None = ...,
                     grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[Grad2]: ...


@overload
def contrastive_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ...,
                     reduction: Reduction = ..., *, grad: bool, grad_output: ArrayLike | None = ...,
                     grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[Grad2]: ...


def contrastive_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = 1.0,
                     reduction: Reduction = "mean", *, grad: bool = False, grad_output: ArrayLike | None = None,
                     grad_out: NDArray[Any] | None = None, backend: Backend = None) -> Loss | WithGrad[Grad2]:
    r"""Contrastive loss (Hadsell, Chopra, LeCun, CVPR 2006).

    .. math:: \ell = y\,d^2 + (1 - y) \max(0,\ \mathrm{margin} - d)^2, \qquad d = \lVert x_1 - x_2 \rVert_2

    with ``y = 1`` for a similar pair and ``y = 0`` for a dissimilar one (other values
    raise ValueError). Hadsell et al. write the same loss with :math:`Y = 1 - y` and
    factors 1/2. Where :math:`d = 0` the gradient of :math:`d` is taken as 0 (torch's norm
    backward). Inputs (N, D) or (D,); ``grad=True`` gives ``(loss, (d/d input1, d/d input2))``.

    References
    ----------
    Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an Invariant
    Mapping", CVPR 2006.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> x1, x2 = np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([[3.0, 4.0], [0.3, 0.4]])
    >>> float(fastloss.contrastive_loss(x1, x2, np.array([1, 0])))
    12.625
    """
    require_numba("contrastive_loss", backend)
    check_options(reduction, grad)
    margin = check_real(margin, "margin")
    x1, x2 = _pair_inputs(("input1", "input2"), (input1, input2), (1, 2))
    y = _labels(target, x1)
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise ValueError(f"target must hold only 0 and 1; found {y[bad].flat[0]}")
    return _run_pairs(CONTRASTIVE, (x1, x2), y, (margin, 2.0, 0.0, False), reduction, grad, grad_output, grad_out)


# The criterion classes and the exports, from the table of losses.
__all__ = LOSSES.export(__name__, globals())
