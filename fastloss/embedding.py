r"""Embedding losses over pairs and triplets of (N, D) rows: value and gradient fused.

One parallel kernel, :func:`embedding_pair_rows`, serves the three losses of this
family; per row it computes the needed similarities (a cosine, or L_p distances
:math:`\lVert u - v + \varepsilon \rVert_p` as ``torch.pairwise_distance`` defines
them) and writes the gradient of every input in the same pass. The distance and its
gradient are the shared helpers :func:`_distance` and :func:`_add_distance_grad`.
"""
import numpy as np

from ._backend import require_numba
from ._criterion import criterion
from ._jit import REDUCE, jit, prange
from ._layout import GradientBuffer, read_only
from ._math import sum_float64, typed
from ._reduction import check_reduction, finish, loss_scale
from ._validation import as_float_array, as_target_array, check_real, check_shape

__all__ = [
    "cosine_embedding_loss", "triplet_margin_loss", "contrastive_loss",
    "CosineEmbeddingLoss", "TripletMarginLoss", "ContrastiveLoss",
]

COSINE, CONTRASTIVE, TRIPLET = 0, 1, 2

# torch's cosine_embedding_loss adds this to both squared norms (ATen Loss.cpp, EPSILON).
_COSINE_EPS = 1e-12


# ---------------------------------------------------------------- row helpers

@jit(fastmath=REDUCE)
def _dot(u, v):
    s = u[0] * 0
    for i in range(u.shape[0]):
        s += u[i] * v[i]
    return s


@jit()
def _shifted_difference(x, y, eps):
    """(x - y) + eps in that order: compiled without reassociation, which would turn it into
    (x + eps) - y and round eps away; LLVM inlines it into the REDUCE loop below, flags kept."""
    return x - y + eps


@jit(fastmath=REDUCE)
def _power_sum(u, v, eps, p):
    """sum_i |u_i - v_i + eps|^p (p = 1 and 2 without a pow)."""
    s = u[0] * 0
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
def _distance(u, v, eps, p):
    """||u - v + eps||_p, as torch.pairwise_distance."""
    s = _power_sum(u, v, eps, p)
    if p == 2:
        return np.sqrt(s)
    if p == 1:
        return s
    return s ** (typed(1, s) / p)


@jit()
def _add_distance_grad(u, v, eps, p, d, coef, gu, gv):
    """gu += coef * dd/du and gv -= the same, d = ||u - v + eps||_p; 0 where d = 0 (as torch's norm backward)."""
    if d == 0 or coef == 0:
        return
    if p == 2:
        f = coef / d
        for i in range(u.shape[0]):
            g = f * (u[i] - v[i] + eps)
            gu[i] += g
            gv[i] -= g
    elif p == 1:
        for i in range(u.shape[0]):
            w = u[i] - v[i] + eps
            g = coef if w > 0 else (-coef if w < 0 else w * 0)
            gu[i] += g
            gv[i] -= g
    else:
        f = coef / d ** (p - 1)
        for i in range(u.shape[0]):
            w = u[i] - v[i] + eps
            g = f * w * abs(w) ** (p - 2) if w != 0 else w * 0
            gu[i] += g
            gv[i] -= g


@jit()
def _zero(out):
    for i in range(out.shape[0]):
        out[i] = 0


@jit(parallel=True)
def embedding_pair_rows(kind, a, b, c, target, margin, p, eps, swap, scale, loss, ga, gb, gc, want_grad):
    """Per-row embedding loss over (N, D) rows ``a``, ``b`` (and ``c`` for triplets).

    ``kind`` COSINE: torch's cosine_embedding_loss, target in {-1, 1}. CONTRASTIVE:
    y d^2 + (1 - y) max(0, margin - d)^2 with d = ||a - b||_2, target in {0, 1}.
    TRIPLET: max(0, margin + d(a, b) - d(a, c)) with L_p distances (``swap``: d(a, c)
    replaced by d(b, c) when smaller; a tie shares the gradient in halves, as torch). Writes the per-row loss and, if ``want_grad``,
    ``scale[n]`` times the gradients into ``ga``, ``gb``, ``gc``.
    """
    n_rows = a.shape[0]
    zero = margin * 0
    for n in prange(n_rows):
        u = a[n]
        v = b[n]
        s = scale[n] if want_grad else zero
        if want_grad:
            _zero(ga[n])
            _zero(gb[n])
        if kind == COSINE:
            eps_c = typed(_COSINE_EPS, margin)
            mag_u = _dot(u, u) + eps_c
            mag_v = _dot(v, v) + eps_c
            denom = np.sqrt(mag_u * mag_v)
            cos = _dot(u, v) / denom
            y = target[n]
            coef = zero  # d loss / d cos
            if y == 1:
                loss[n] = typed(1, margin) - cos
                coef = -typed(1, margin)
            elif cos - margin >= 0:  # torch's clamp_min passes the gradient at 0
                loss[n] = cos - margin
                coef = typed(1, margin)
            else:
                loss[n] = zero
            if want_grad and coef != 0:
                k = coef * s
                gu = ga[n]
                gv = gb[n]
                for i in range(u.shape[0]):
                    gu[i] = k * (v[i] / denom - cos * u[i] / mag_u)
                    gv[i] = k * (u[i] / denom - cos * v[i] / mag_v)
        elif kind == CONTRASTIVE:
            d = _distance(u, v, zero, typed(2, margin))
            y = target[n]
            gap = margin - d
            gap = gap if gap > 0 else zero
            loss[n] = y * d * d + (typed(1, margin) - y) * gap * gap
            if want_grad:
                # d loss / d d = 2 y d - 2 (1 - y) gap
                coef = (typed(2, margin) * (y * d - (typed(1, margin) - y) * gap)) * s
                _add_distance_grad(u, v, zero, typed(2, margin), d, coef, ga[n], gb[n])
        else:
            w = c[n]
            d_pos = _distance(u, v, eps, p)
            d_neg = _distance(u, w, eps, p)
            # Share of the gradient of d(a, n) and of d(p, n): torch.minimum splits a tie in halves.
            share_an = typed(1, margin)
            share_pn = zero
            if swap:
                d_swap = _distance(v, w, eps, p)
                if d_swap < d_neg:
                    d_neg = d_swap
                    share_an, share_pn = zero, typed(1, margin)
                elif d_swap == d_neg:
                    share_an = share_pn = typed(0.5, margin)
            h = margin + d_pos - d_neg
            loss[n] = h if h > 0 else zero
            if want_grad:
                _zero(gc[n])
                if h >= 0:  # torch's clamp_min passes the gradient at 0
                    _add_distance_grad(u, v, eps, p, d_pos, s, ga[n], gb[n])
                    _add_distance_grad(u, w, eps, p, d_neg, -s * share_an, ga[n], gc[n])
                    _add_distance_grad(v, w, eps, p, d_neg, -s * share_pn, gb[n], gc[n])


# ---------------------------------------------------------------- wrappers

def _rows(array, name, dtype=None):
    x = as_float_array(array, name, dtype)
    if x.ndim not in (1, 2):
        raise ValueError(f"{name} must be (N, D) or (D,), got shape {x.shape}")
    return x


def _c_rows(array):
    """A C-contiguous (N, D) view of a gradient buffer, or a scratch array."""
    if array.flags.c_contiguous:
        return array.reshape(-1, array.shape[-1])
    return np.empty((array.size // max(array.shape[-1], 1), array.shape[-1]), array.dtype)


def _run_pairs(kind, inputs, target, params, reduction, grad, grad_output, grad_out):
    """Lay out the rows, run :func:`embedding_pair_rows`, reduce; gradients for every input."""
    x = inputs[0]
    dtype = x.dtype
    loss_shape = x.shape[:-1]
    rows = [read_only(np.ascontiguousarray(a.reshape(-1, x.shape[-1]))) for a in inputs]
    n_rows = rows[0].shape[0]
    c = rows[2] if len(rows) == 3 else rows[0]
    y = read_only(np.ascontiguousarray(np.broadcast_to(target, loss_shape).reshape(-1)))
    loss = np.empty(n_rows, dtype)
    empty = np.empty((0, 0), dtype)
    if grad:
        scale = np.ascontiguousarray(np.broadcast_to(loss_scale(reduction, grad_output, loss_shape, n_rows, dtype),
                                                     loss_shape), dtype).reshape(-1)
        buffers = [GradientBuffer(x, dtype, grad_out, reads=(*inputs[1:], target, scale))] + [GradientBuffer(a, dtype, None) for a in inputs[1:]]
        views = [buf.view(_c_rows, lambda v, s: v.reshape(s)) for buf in buffers]
        gc = views[2] if len(views) == 3 else empty
        args = (scale, loss, views[0], views[1], gc, True)
    else:
        args = (np.empty(0, dtype), loss, empty, empty, empty, False)
    margin, p, eps, swap = params
    embedding_pair_rows(kind, rows[0], rows[1], c, y, dtype.type(margin), dtype.type(p), dtype.type(eps), swap,
                        *args)
    total = sum_float64(loss) if reduction != "none" else 0.0
    result = finish(total, loss.reshape(loss_shape), reduction, n_rows, dtype)
    if not grad:
        return result
    return result, tuple(buf.result() for buf in buffers)


def _pair_inputs(names, arrays):
    first = _rows(arrays[0], names[0])
    rest = [_rows(a, name, first.dtype) for name, a in zip(names[1:], arrays[1:])]
    for name, a in zip(names[1:], rest):
        check_shape(a.shape, first.shape, name, names[0])
    if first.shape[-1] == 0:
        raise ValueError(f"{names[0]} has shape {first.shape}: zero features")
    return [first] + rest


def _labels(target, x, allowed, name="target"):
    y = as_target_array(target, name, x.dtype)
    check_shape(y.shape, x.shape[:-1], name, f"input of shape {x.shape} (one label per row)")
    bad = ~np.isin(y, allowed)
    if bad.any():
        raise ValueError(f"{name} must hold only {' and '.join(map(str, allowed))}; found {y[bad].flat[0]}")
    return y


def cosine_embedding_loss(input1, input2, target, margin=0.0, *, reduction="mean", grad=False, grad_output=None,
                          grad_out=None, backend=None):
    r"""Cosine embedding loss, as ``torch.nn.functional.cosine_embedding_loss``.

    .. math::

        \ell = \begin{cases} 1 - \cos(x_1, x_2) & y = 1 \\ \max(0, \cos(x_1, x_2) - \mathrm{margin}) & y = -1
        \end{cases}, \qquad
        \cos = \frac{x_1 \cdot x_2}{\sqrt{(\lVert x_1\rVert^2 + 10^{-12})(\lVert x_2\rVert^2 + 10^{-12})}}

    Inputs (N, D) or (D,), targets (N,) or () in {-1, 1} (anything else raises
    ValueError). ``grad=True`` gives ``(loss, (d/d input1, d/d input2))``.

    References
    ----------
    PyTorch ``torch.nn.CosineEmbeddingLoss``.
    """
    require_numba("cosine_embedding_loss", backend)
    check_reduction(reduction)
    margin = check_real(margin, "margin")
    x1, x2 = _pair_inputs(("input1", "input2"), (input1, input2))
    y = _labels(target, x1, (-1, 1))
    return _run_pairs(COSINE, (x1, x2), y, (margin, 2.0, 0.0, False), reduction, grad, grad_output, grad_out)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False, *, reduction="mean",
                        grad=False, grad_output=None, grad_out=None, backend=None):
    r"""Triplet margin loss, as ``torch.nn.functional.triplet_margin_loss``.

    .. math::

        \ell = \max(0,\ \mathrm{margin} + d(a, p) - d(a, n)), \qquad
        d(u, v) = \lVert u - v + \varepsilon \rVert_p

    with ``eps`` added to the difference as ``torch.pairwise_distance`` adds it. With
    ``swap`` (Balntas et al. 2016) :math:`d(a, n)` is replaced by :math:`d(p, n)` when
    that is smaller. ``p > 0`` finite. ``grad=True`` gives
    ``(loss, (d/d anchor, d/d positive, d/d negative))``.

    References
    ----------
    Schroff et al., "FaceNet", CVPR 2015; Balntas et al., "Learning local feature
    descriptors with triplets and shallow convolutional neural networks", BMVC 2016;
    PyTorch ``torch.nn.TripletMarginLoss``.
    """
    require_numba("triplet_margin_loss", backend)
    check_reduction(reduction)
    margin = check_real(margin, "margin")
    p = check_real(p, "p", 0.0, low_open=True)
    eps = check_real(eps, "eps")
    a, pos, neg = _pair_inputs(("anchor", "positive", "negative"), (anchor, positive, negative))
    target = np.zeros(a.shape[:-1], a.dtype)
    return _run_pairs(TRIPLET, (a, pos, neg), target, (margin, p, eps, bool(swap)), reduction, grad, grad_output,
                      grad_out)


def contrastive_loss(input1, input2, target, margin=1.0, reduction="mean", *, grad=False, grad_output=None,
                     grad_out=None, backend=None):
    r"""Contrastive loss (Hadsell, Chopra, LeCun, CVPR 2006).

    .. math:: \ell = y\,d^2 + (1 - y) \max(0,\ \mathrm{margin} - d)^2, \qquad d = \lVert x_1 - x_2 \rVert_2

    with ``y = 1`` for a similar pair and ``y = 0`` for a dissimilar one (other values
    raise ValueError). Hadsell et al. write the same loss with :math:`Y = 1 - y` and
    factors 1/2. Where :math:`d = 0` the gradient of :math:`d` is taken as 0. Inputs
    (N, D) or (D,); ``grad=True`` gives ``(loss, (d/d input1, d/d input2))``.

    References
    ----------
    Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an Invariant
    Mapping", CVPR 2006.
    """
    require_numba("contrastive_loss", backend)
    check_reduction(reduction)
    margin = check_real(margin, "margin")
    x1, x2 = _pair_inputs(("input1", "input2"), (input1, input2))
    y = _labels(target, x1, (0, 1))
    return _run_pairs(CONTRASTIVE, (x1, x2), y, (margin, 2.0, 0.0, False), reduction, grad, grad_output, grad_out)


CosineEmbeddingLoss = criterion("CosineEmbeddingLoss", cosine_embedding_loss, 3)
TripletMarginLoss = criterion("TripletMarginLoss", triplet_margin_loss, 3)
ContrastiveLoss = criterion("ContrastiveLoss", contrastive_loss, 3)
