r"""Margin and ranking losses: value and gradient fused.

Three shapes of computation, one kernel each:

* elementwise (``margin_ranking_loss``, ``hinge_embedding_loss``, ``soft_margin_loss``,
  the binary ``hinge_loss``, and ``multilabel_soft_margin_loss``, which is the
  binary cross-entropy with logits summed over classes): scalar kernels of the
  one elementwise driver (:mod:`fastloss._elementwise`);
* a multi-class hinge over a row of class scores, :func:`class_margin_rows`, with
  :math:`h_i = \mathrm{margin} - x_t + x_i` for the competitors :math:`i \ne t`: summed
  (``multi_margin_loss``, Weston-Watkins as torch computes it) or maximised (the
  Crammer-Singer ``hinge_loss`` of scikit-learn);
* a hinge over target-set / non-target-set pairs of a row,
  :func:`multilabel_margin_rows` (``multilabel_margin_loss``).
"""
import numpy as np

from ._backend import require_numba
from ._criterion import criterion
from ._elementwise import elementwise_loss, register
from ._jit import REDUCE, jit, prange
from ._layout import GradientBuffer, read_only
from ._math import log1p_exp, maxnum, sigmoid, sum_float64, typed
from ._reduction import check_reduction, finish, loss_scale
from ._validation import (as_class_weight, as_float_array, as_index_array, as_target_array, check_broadcast,
                          check_class_indices, check_real, check_shape)
from .classification import _BCE_LOGITS

__all__ = [
    "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
    "multi_margin_loss", "multilabel_margin_loss", "hinge_loss",
    "MarginRankingLoss", "HingeEmbeddingLoss", "SoftMarginLoss", "MultiLabelSoftMarginLoss", "MultiMarginLoss",
    "MultiLabelMarginLoss", "HingeLoss",
]


# ---------------------------------------------------------------- row kernels

@jit(fastmath=REDUCE)
def _hinge_sums(row, skip, base, power):
    """(sum_c max(0, h_c)^power, sum_c dh_c) over h_c = base + row[c], c != skip,
    power 1 or 2, with dh_c = [h_c > 0] (power 1) or 2 max(0, h_c) (power 2)."""
    total = base * 0
    slope = base * 0
    zero = base * 0
    for c in range(row.shape[0]):
        h = base + row[c]
        h = h if h > zero and c != skip else zero
        if power == 1:
            total += h
            slope += typed(1, base) if h > zero else zero
        else:
            total += h * h
            slope += h + h
    return total, slope


@jit()
def _write_hinge_grad(row, base, power, factor, out):
    """out[c] = factor * dh_c for h_c = base + row[c] (see :func:`_hinge_sums`)."""
    zero = base * 0
    for c in range(row.shape[0]):
        h = base + row[c]
        if power == 1:
            out[c] = factor if h > zero else zero
        else:
            out[c] = factor * (h + h) if h > zero else zero


@jit(inline="always")
def _worst_competitor(row, t):
    """Index of the largest score other than ``row[t]``, the first on ties, as a
    compare-and-keep scan finds it (a NaN only if it is the first competitor), in two
    vectorised passes: the maximum by ``maxnum`` (NaN skipped), then the first index
    holding it. A scan that compares and keeps does not vectorise."""
    n = row.shape[0]
    first = 0 if t != 0 else 1
    if row[first] != row[first]:
        return first
    low = typed(-np.inf, row[0])
    m = row[first]
    for c in range(n):
        m = maxnum(m, row[c] if c != t else low)
    at = n
    for c in range(n):
        at = min(at, c if row[c] == m and c != t else n)
    return at


@jit(parallel=True)
def class_margin_rows(scores, target, weight, margin, power, worst_only, divisor, scale, loss, grad, want_grad):
    """Multi-class hinge over (N, C) scores with h_i = margin - x_t + x_i, i != t.

    ``worst_only=False``: loss = w_t / divisor * sum_{i != t} max(0, h_i)^power
    (``multi_margin_loss`` with divisor C). ``worst_only=True``: loss =
    w_t / divisor * max(0, h_j) with j the largest competitor (Crammer-Singer, power 1).
    Writes the per-row loss and, if ``want_grad``, ``scale[n]`` times its gradient.
    """
    n_rows, n_classes = scores.shape
    zero = margin * 0
    for n in prange(n_rows):
        row = scores[n]
        t = target[n]
        base = margin - row[t]
        factor = weight[t] / divisor
        if n_classes == 1:
            loss[n] = zero
            if want_grad:
                grad[n, 0] = zero
            continue
        if worst_only:
            j = _worst_competitor(row, t)
            h = base + row[j]
            loss[n] = factor * h if h > zero else zero
            if want_grad:
                g = grad[n]
                for c in range(n_classes):
                    g[c] = zero
                if h > zero:
                    g[j] = factor * scale[n]
                    g[t] = -factor * scale[n]
            continue
        total, slope = _hinge_sums(row, t, base, power)
        loss[n] = factor * total
        if want_grad:
            s = factor * scale[n]
            _write_hinge_grad(row, base, power, s, grad[n])
            grad[n, t] = -s * slope


@jit(parallel=True)
def multilabel_margin_rows(scores, target, scale, loss, grad, want_grad):
    """torch's multilabel_margin_loss over (N, C) scores.

    The targets of row n are target[n, :k] with k the first index holding -1 (all C
    if none); loss = sum_{j in targets} sum_{i not a target} max(0, 1 - x_j + x_i) / C.
    """
    n_rows, n_classes = scores.shape
    unused = np.empty((1, n_classes), scores.dtype)
    for n in prange(n_rows):
        row = scores[n]
        labels = target[n]
        is_target = np.zeros(n_classes, np.bool_)
        count = 0
        while count < n_classes and labels[count] >= 0:
            is_target[labels[count]] = True
            count += 1
        one = typed(1, row[0])
        inv_c = one / n_classes
        g = grad[n] if want_grad else unused[0]
        if want_grad:
            for c in range(n_classes):
                g[c] = 0
        total = row[0] * 0
        s = scale[n] * inv_c if want_grad else inv_c
        for k in range(count):
            j = labels[k]
            base = one - row[j]
            for i in range(n_classes):
                if not is_target[i]:
                    h = base + row[i]
                    if h > 0:
                        total += h
                        if want_grad:
                            g[i] += s
                            g[j] -= s
        loss[n] = total * inv_c


# ---------------------------------------------------------------- scalar kernels

@jit()
def _margin_ranking_point(x1, y, x2, margin, p1, p2):
    """max(0, -y (x1 - x2) + margin); as torch's clamp_min, the gradient passes at 0."""
    v = margin - y * (x1 - x2)
    if v >= 0:
        return v, -y, y
    return x1 * 0, x1 * 0, x1 * 0


@jit()
def _hinge_embedding_point(x, y, unused, margin, p1, p2):
    """x for y = 1, max(0, margin - x) for y = -1."""
    if y == 1:
        return x, typed(1, x), x * 0
    v = margin - x
    if v >= 0:
        return v, -typed(1, x), x * 0
    return x * 0, x * 0, x * 0


@jit()
def _soft_margin_point(x, y, unused, p0, p1, p2):
    """log(1 + exp(-y x)), as a softplus that does not overflow; gradient -y sigmoid(-y x)."""
    v = -y * x
    return log1p_exp(v), -y * sigmoid(v), x * 0  # one exp(-|v|) serves both


@jit()
def _binary_hinge_point(x, y, unused, margin, p1, p2):
    """max(0, margin - y x); subgradient 0 at the kink."""
    v = margin - y * x
    if v > 0:
        return v, -y, x * 0
    return x * 0, x * 0, x * 0


_MARGIN_RANKING = register(_margin_ranking_point)
_HINGE_EMBEDDING = register(_hinge_embedding_point)
_SOFT_MARGIN = register(_soft_margin_point)
_BINARY_HINGE = register(_binary_hinge_point)


# ---------------------------------------------------------------- wrappers

def _check_signs(y, name="target"):
    """ValueError unless every entry is -1 or 1."""
    bad = (y != 1) & (y != -1)
    if bad.any():
        raise ValueError(f"{name} must hold only -1 and 1; found {y[bad].flat[0]}")


def _sign_args(input, target, name="input"):
    x = as_float_array(input, name)
    y = as_target_array(target, "target", x.dtype)
    check_broadcast(y.shape, x.shape, "target")
    _check_signs(y)
    return x, y


def margin_ranking_loss(input1, input2, target, margin=0.0, *, reduction="mean", grad=False, grad_output=None,
                        grad_out=None, backend=None):
    r"""Margin ranking loss, as ``torch.nn.functional.margin_ranking_loss``.

    .. math:: \ell = \max(0,\ -y\,(x_1 - x_2) + \mathrm{margin}), \qquad y \in \{-1, 1\}

    ``input2`` and ``target`` broadcast to ``input1``'s shape; targets other than
    -1 and 1 raise ValueError. With ``grad=True`` the gradient is the tuple
    ``(d/d input1, d/d input2)`` (``grad_out`` receives the first); as torch's
    ``clamp_min``, it passes where the hinge is exactly 0.

    References
    ----------
    PyTorch ``torch.nn.MarginRankingLoss``.
    """
    require_numba("margin_ranking_loss", backend)
    check_reduction(reduction)
    margin = check_real(margin, "margin")
    x1, y = _sign_args(input1, target, "input1")
    x2 = as_float_array(input2, "input2", x1.dtype)
    check_broadcast(x2.shape, x1.shape, "input2")
    return elementwise_loss(_MARGIN_RANKING, x1, y, x2, None, (margin, 0.0, 0.0), reduction=reduction, grad=grad,
                            grad_output=grad_output, grad_out=grad_out, dz_like=x2)


def hinge_embedding_loss(input, target, margin=1.0, *, reduction="mean", grad=False, grad_output=None,
                         grad_out=None, backend=None):
    r"""Hinge embedding loss, as ``torch.nn.functional.hinge_embedding_loss``.

    .. math:: \ell = x \ \ (y = 1), \qquad \ell = \max(0, \mathrm{margin} - x) \ \ (y = -1)

    Targets other than -1 and 1 raise ValueError.

    References
    ----------
    PyTorch ``torch.nn.HingeEmbeddingLoss``.
    """
    require_numba("hinge_embedding_loss", backend)
    check_reduction(reduction)
    margin = check_real(margin, "margin")
    x, y = _sign_args(input, target)
    return elementwise_loss(_HINGE_EMBEDDING, x, y, None, None, (margin, 0.0, 0.0), reduction=reduction, grad=grad,
                            grad_output=grad_output, grad_out=grad_out)


def soft_margin_loss(input, target, *, reduction="mean", grad=False, grad_output=None, grad_out=None, backend=None):
    r"""Two-class logistic loss, as ``torch.nn.functional.soft_margin_loss``.

    .. math:: \ell = \log(1 + e^{-y x}), \qquad y \in \{-1, 1\}

    Computed as a softplus that does not overflow (torch's ``log1p(exp(.))`` gives inf
    beyond ``-y x`` of about 88 in float32; this gives the finite value). Gradient
    :math:`-y\,\sigma(-y x)`.

    References
    ----------
    PyTorch ``torch.nn.SoftMarginLoss``.
    """
    require_numba("soft_margin_loss", backend)
    check_reduction(reduction)
    x, y = _sign_args(input, target)
    return elementwise_loss(_SOFT_MARGIN, x, y, None, None, reduction=reduction, grad=grad,
                            grad_output=grad_output, grad_out=grad_out)


def multilabel_soft_margin_loss(input, target, weight=None, *, reduction="mean", grad=False, grad_output=None,
                                grad_out=None, backend=None):
    r"""Multi-label one-versus-all logistic loss, as ``torch.nn.functional.multilabel_soft_margin_loss``.

    .. math::

        \ell_n = -\frac{1}{C} \sum_c w_c \big[y_{nc} \log \sigma(x_{nc})
                 + (1 - y_{nc}) \log \sigma(-x_{nc})\big]

    for input (N, C) or (C,) and targets of the same shape; ``weight`` broadcasts to
    the input. It is the binary cross-entropy with logits, summed over the last axis:
    the same scalar kernel as :func:`fastloss.binary_cross_entropy_with_logits`.

    References
    ----------
    PyTorch ``torch.nn.MultiLabelSoftMarginLoss``.
    """
    require_numba("multilabel_soft_margin_loss", backend)
    check_reduction(reduction)
    x = as_float_array(input, "input")
    if x.ndim == 0:
        raise ValueError("input must be (N, C) or (C,), got a scalar")
    y = as_target_array(target, "target", x.dtype)
    check_shape(y.shape, x.shape, "target")
    n_classes = x.shape[-1]
    w = np.full((), 1.0 / n_classes, x.dtype) if weight is None else None
    if weight is not None:
        w = as_target_array(weight, "weight", x.dtype)
        check_broadcast(w.shape, x.shape, "weight")
        w = (w / x.dtype.type(n_classes)).astype(x.dtype)
    row_shape = x.shape[:-1]
    n_rows = int(np.prod(row_shape, dtype=np.int64))
    if reduction != "none":
        return elementwise_loss(_BCE_LOGITS, x, y, None, w, reduction=reduction, grad=grad, grad_output=grad_output,
                                grad_out=grad_out, denominator=n_rows)
    go = None
    if grad and grad_output is not None:
        go = np.asarray(grad_output, x.dtype)
        check_broadcast(go.shape, row_shape, "grad_output")
        go = np.broadcast_to(go, row_shape)[..., None]
    result = elementwise_loss(_BCE_LOGITS, x, y, None, w, reduction="none", grad=grad, grad_output=go,
                              grad_out=grad_out)
    if grad:
        return result[0].sum(axis=-1), result[1]
    return result.sum(axis=-1)


def _scores_and_targets(input, target):
    """(N, C) or (C,) scores as (N, C), class-index targets as (N,)."""
    x = as_float_array(input, "input")
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"input must be (N, C) or (C,) with C >= 1, got shape {x.shape}")
    n_classes = x.shape[-1]
    t = as_index_array(target, "target")
    check_shape(t.shape, x.shape[:-1], "target", f"input of shape {x.shape} (one class index per row)")
    check_class_indices(t, n_classes, "target")
    return x, t, n_classes


def _run_class_rows(kernel, x, loss_shape, reduction, grad, grad_output, grad_out, args):
    """Common tail of the row losses over (N, C) scores: scale, gradient buffer, kernel, reduction."""
    dtype = x.dtype
    rows = read_only(np.ascontiguousarray(x.reshape(-1, x.shape[-1])))
    n_rows = rows.shape[0]
    loss = np.empty(n_rows, dtype)
    if grad:
        scale = np.ascontiguousarray(np.broadcast_to(loss_scale(reduction, grad_output, loss_shape, n_rows, dtype),
                                                     loss_shape), dtype).reshape(-1)
        buffer = GradientBuffer(x, dtype, grad_out, reads=(*args, scale))
        grad_rows = buffer.view(lambda a: _c_rows(a), lambda v, s: v.reshape(s))
    else:
        scale = np.empty(0, dtype)
        grad_rows = np.empty((0, 0), dtype)
    kernel(rows, *args, scale, loss, grad_rows, grad)
    total = sum_float64(loss) if reduction != "none" else 0.0
    result = finish(total, loss.reshape(loss_shape), reduction, n_rows, dtype)
    return (result, buffer.result()) if grad else result


def _c_rows(array):
    """A C-contiguous (N, C) view of a gradient buffer, or a scratch array."""
    view = array.reshape(-1, array.shape[-1]) if array.flags.c_contiguous else None
    return view if view is not None else np.empty((array.size // array.shape[-1], array.shape[-1]), array.dtype)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, *, reduction="mean", grad=False,
                      grad_output=None, grad_out=None, backend=None):
    r"""Multi-class hinge loss, as ``torch.nn.functional.multi_margin_loss``.

    .. math:: \ell_n = \frac{w_{t}}{C} \sum_{i \ne t} \max(0,\ \mathrm{margin} - x_{t} + x_i)^p,
              \qquad t = t_n,\ p \in \{1, 2\}

    Input (N, C) or (C,), integer targets (N,) or (). Wraps the parallel kernel
    :func:`class_margin_rows` (one pass over a row for the value, one for the gradient).

    References
    ----------
    Weston and Watkins, "Support Vector Machines for Multi-Class Pattern
    Recognition", ESANN 1999; PyTorch ``torch.nn.MultiMarginLoss``.
    """
    require_numba("multi_margin_loss", backend)
    check_reduction(reduction)
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    margin = check_real(margin, "margin")
    x, t, n_classes = _scores_and_targets(input, target)
    w = as_class_weight(weight, n_classes, x.dtype)
    dtype = x.dtype.type
    args = (read_only(t.reshape(-1)), read_only(w), dtype(margin), int(p), False, dtype(n_classes))
    return _run_class_rows(class_margin_rows, x, x.shape[:-1], reduction, grad, grad_output, grad_out, args)


def multilabel_margin_loss(input, target, *, reduction="mean", grad=False, grad_output=None, grad_out=None,
                           backend=None):
    r"""Multi-class multi-label hinge loss, as ``torch.nn.functional.multilabel_margin_loss``.

    .. math:: \ell_n = \sum_{j \in Y_n} \sum_{i \notin Y_n} \frac{\max(0,\ 1 - (x_{j} - x_i))}{C}

    ``target`` (N, C) or (C,) holds the class indices of :math:`Y_n`, ended by the first
    -1 (all C entries if there is none); the entries before it must lie in [0, C).
    Wraps the parallel kernel :func:`multilabel_margin_rows`.

    References
    ----------
    PyTorch ``torch.nn.MultiLabelMarginLoss``.
    """
    require_numba("multilabel_margin_loss", backend)
    check_reduction(reduction)
    x = as_float_array(input, "input")
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"input must be (N, C) or (C,) with C >= 1, got shape {x.shape}")
    t = as_index_array(target, "target")
    check_shape(t.shape, x.shape, "target")
    rows = t.reshape(-1, x.shape[-1])
    ended = np.cumsum(rows < 0, axis=1) > 0
    bad = ~ended & (rows >= x.shape[-1])
    first_negative = rows[ended & (np.cumsum(ended, axis=1) == 1)]
    if bad.any() or (first_negative != -1).any():
        value = rows[bad][0] if bad.any() else first_negative[first_negative != -1][0]
        raise ValueError(f"target holds {value}; entries must be class indices in [0, {x.shape[-1]}), "
                         f"ended by -1")
    return _run_class_rows(multilabel_margin_rows, x, x.shape[:-1], reduction, grad, grad_output, grad_out,
                           (read_only(np.ascontiguousarray(rows)),))


def hinge_loss(input, target, margin=1.0, reduction="mean", *, grad=False, grad_output=None, grad_out=None,
               backend=None):
    r"""SVM hinge loss: binary, or the Crammer-Singer multi-class form of
    ``sklearn.metrics.hinge_loss``.

    Binary, for (N,) scores :math:`f` and :math:`y \in \{-1, 1\}`:

    .. math:: \ell_n = \max(0,\ \mathrm{margin} - y_n f_n)

    Multi-class, for (N, C) scores and integer targets (Crammer and Singer 2001):

    .. math:: \ell_n = \max\big(0,\ \mathrm{margin} - x_{n,t_n} + \max_{i \ne t_n} x_{n,i}\big)

    With ``margin=1`` and ``reduction="mean"`` both equal ``sklearn.metrics.hinge_loss``
    (binary: on labels -1 and 1). The gradient is a subgradient, 0 at the kink;
    multi-class ties for the largest competitor go to the first index. Binary is an
    elementwise kernel; multi-class runs :func:`class_margin_rows` with
    ``worst_only=True``.

    References
    ----------
    Crammer and Singer, "On the Algorithmic Implementation of Multiclass Kernel-based
    Vector Machines", JMLR 2001; scikit-learn ``sklearn.metrics.hinge_loss``.
    """
    require_numba("hinge_loss", backend)
    check_reduction(reduction)
    margin = check_real(margin, "margin")
    x = as_float_array(input, "input")
    if x.ndim == 2:
        x, t, n_classes = _scores_and_targets(x, target)
        if n_classes < 2:
            raise ValueError(f"multi-class hinge_loss needs at least 2 classes, got input shape {x.shape}")
        dtype = x.dtype.type
        args = (read_only(t), read_only(np.ones(n_classes, x.dtype)), dtype(margin), 1, True, dtype(1))
        return _run_class_rows(class_margin_rows, x, x.shape[:-1], reduction, grad, grad_output, grad_out, args)
    if x.ndim != 1:
        raise ValueError(f"input must be (N,) binary scores or (N, C) class scores, got shape {x.shape}")
    x, y = _sign_args(x, target)
    check_shape(y.shape, x.shape, "target")
    return elementwise_loss(_BINARY_HINGE, x, y, None, None, (margin, 0.0, 0.0), reduction=reduction, grad=grad,
                            grad_output=grad_output, grad_out=grad_out)


MarginRankingLoss = criterion("MarginRankingLoss", margin_ranking_loss, 3)
HingeEmbeddingLoss = criterion("HingeEmbeddingLoss", hinge_embedding_loss, 2)
SoftMarginLoss = criterion("SoftMarginLoss", soft_margin_loss, 2)
MultiLabelSoftMarginLoss = criterion("MultiLabelSoftMarginLoss", multilabel_soft_margin_loss, 2)
MultiMarginLoss = criterion("MultiMarginLoss", multi_margin_loss, 2)
MultiLabelMarginLoss = criterion("MultiLabelMarginLoss", multilabel_margin_loss, 2)
HingeLoss = criterion("HingeLoss", hinge_loss, 2)
