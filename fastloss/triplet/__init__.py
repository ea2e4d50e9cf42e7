r"""Triplet mining and batch triplet losses, value and gradient with respect to the embeddings.

For a batch of embeddings :math:`x_1 .. x_B` with class labels, a triplet (a, p, n)
has :math:`y_p = y_a`, :math:`p \ne a` and :math:`y_n \ne y_a`; with a distance
:math:`d` its hinge loss is :math:`\max(0, m + d_{ap} - d_{an})` (or the soft margin
:math:`\log(1 + e^{d_{ap} - d_{an}})`). The strategies choose which triplets count.

Method (no B^3 mask and no triplet list inside the losses):

1. One Gram product ``x @ x.T``, the only B x B buffer: a Numba kernel over pairs of
   row tiles (upper triangle, mirrored), in Numba's thread pool, as every other kernel
   here (a BLAS pool's threads spin while Numba's run, and on few cores the two pools
   slow each other down several-fold). Each anchor's kernel iteration turns *its own
   row* into distances in place, mines it and, when
   a gradient is asked for, produces the weights
   :math:`W_{aj} = \partial \ell / \partial d_{aj}` times the metric's chain factor:
   as a short list of (j, weight) pairs (``batch_hard``: 2 per anchor, written
   directly; ``semi_hard``: at most 2P), or, for ``batch_all``, over the row itself.
   Rows are independent, so anchors run in parallel (``prange``) in place.
2. ``batch_hard``'s nearest negative takes two vectorised passes over the row: its
   distance (a ``minnum`` reduction over the other classes), then the first index
   holding it. For the others, per anchor, the positive distances are sorted (P = class size - 1 values) and every
   negative distance is placed among them by binary search (a branch-free linear
   count up to 32 positives). For ``semi_hard`` a
   suffix minimum over those buckets gives, for each positive, the smallest
   :math:`d_{an} > d_{ap}`; for ``batch_all`` prefix counts and sums over the buckets
   give, for each positive, the number c of violating negatives and their distance
   sum s, so its hinge sum is :math:`c (m + d_{ap}) - s` with
   :math:`\partial/\partial d_{ap} = c`, and each negative's weight is minus the number of
   positives it violates. This is the sorted-distances-and-prefix-sums method with
   the roles of the two sides swapped: O(B log P) per anchor instead of O(B log B).
   (Soft-margin ``batch_all`` has no such shortcut: it sums over every (p, n) of an
   anchor, O(B P) time, still O(B) memory per anchor.)
3. The gradient: with :math:`S = W + W^T`,
   :math:`\partial L / \partial x_k = 2 \sum_j S_{kj} (x_k - x_j)` for squared
   Euclidean distances (the Euclidean chain factor :math:`1 / (2 d)` is folded into
   W), and :math:`-\sum_j S_{kj} \hat x_j` pushed through the normalisation for
   cosine. Sparse lists are applied pair by pair, each pair both ways (W and its
   transpose, by a counting sort on the column); a dense W is symmetrised in place
   and applied by one more product, a Numba kernel as well.

At a hinge of exactly 0 the derivative is 0 (``torch.relu``'s convention, which
pytorch-metric-learning's ``TripletMarginLoss`` follows). Zero distances: the Euclidean distance is not differentiable at 0. fastloss takes
the subgradient 0 there: a pair at distance exactly 0 contributes no gradient (torch's
``sqrt`` backward would give NaN). Distances come from the Gram matrix
(:math:`\|x_i\|^2 + \|x_j\|^2 - 2 x_i \cdot x_j`, clamped at 0), as ``torch.cdist``
computes them for batches of more than 25 rows; the diagonal is exactly 0.

Non-finite embeddings (NaN, inf, or a squared norm beyond the dtype's range): the
distances of such a row are taken from its differences (the Gram matrix would give
inf - inf), and every pair weight is then applied as :math:`x_k - x_j`, to the pairs a
term uses only. A NaN distance makes the terms it enters NaN (relu's derivative 1 there);
``mean_nonzero`` leaves NaN terms out, as pytorch-metric-learning's ``losses > 0`` mask
does. So NaN and inf reach the value and the gradient through the terms that use them,
and no further (``tests/naive_triplet.py`` composes the same terms in torch).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._core.backends import select
from .._core.interop import interop
from .._core.layout import GradientBuffer
from .._core.numerics import NORMALIZE_EPS
from .._core.reduction import check_options
from .._core.table import LOSSES, NONNEGATIVE
from .._core.validation import (
    as_float_array,
    as_grad_output,
    as_index_array,
    check_bool,
    check_choice,
    check_option,
    check_real,
)
from .cpu import _BATCH_HARD, _COSINE, _EUCLIDEAN, _SEMI_HARD, METRICS, STRATEGIES, TRIPLET_REDUCTIONS, TRIPLET_TYPES

if TYPE_CHECKING:
    from typing import Any, Literal

    from numpy.typing import NDArray

    from .._typing import ArrayLike, Backend, FloatArray, IntArray, Loss, Metric, WithGrad

# --------------------------------------------------------------------------- wrappers

def _embeddings(embeddings):
    x = as_float_array(embeddings, "embeddings")
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (batch, dim), got shape {x.shape}")
    return x


def _check_labels_shape(shape, n):
    """ValueError unless labels of ``shape`` (host or device) give one label per embedding."""
    if len(shape) != 1 or shape[0] != n:
        raise ValueError(f"labels has shape {tuple(shape)}; expected ({n},), one label per embedding")


def _label_groups(labels, n):
    """Labels as class codes 0..C-1, the indices sorted by class (ascending within a
    class), and the class offsets into that order."""
    y = np.asarray(labels)
    y = as_index_array(y if y.size else y.astype(np.intp), "labels")  # [] is float to NumPy
    _check_labels_shape(y.shape, n)
    _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    codes = codes.astype(np.intp, copy=False).reshape(-1)
    members = np.argsort(codes, kind="stable").astype(np.intp, copy=False)
    starts = np.zeros(counts.shape[0] + 1, np.intp)
    np.cumsum(counts, out=starts[1:])
    return codes, members, starts


def _gram(kernels, x, metric):
    """(Gram matrix, squared norms, the embeddings it was taken of, their inverse norms)."""
    x = np.ascontiguousarray(x)
    sq = np.einsum("ij,ij->i", x, x)
    inv_norm = None
    if metric == _COSINE:
        with np.errstate(invalid="ignore"):  # NaN from inf / inf, as torch gives it
            inv_norm = 1 / np.maximum(np.sqrt(sq), x.dtype.type(NORMALIZE_EPS))
            x = x * inv_norm[:, None]
    gram = np.empty((x.shape[0], x.shape[0]), x.dtype)
    kernels.gram_matrix(x, gram)
    return gram, sq, x, inv_norm


def pairwise_distances(embeddings: ArrayLike, metric: Metric = "euclidean", *, backend: Backend = None) -> FloatArray:
    r"""The (B, B) matrix of distances between the rows of ``embeddings``.

    .. math::

        d_{ij} = \|x_i - x_j\|_2, \quad \|x_i - x_j\|_2^2 \quad \text{or} \quad
        1 - \frac{x_i \cdot x_j}{\max(\|x_i\|, \epsilon) \max(\|x_j\|, \epsilon)}

    for ``metric`` "euclidean", "squared_euclidean" or "cosine" (:math:`\epsilon =
    10^{-12}`, as ``torch.nn.functional.normalize``). Computed from one Gram product as
    :math:`\|x_i\|^2 + \|x_j\|^2 - 2 x_i \cdot x_j` clamped at 0 (``torch.cdist``'s
    method for more than 25 rows); the Euclidean diagonal is exactly 0. The rows whose
    squared norm is not finite (NaN, inf, or beyond the dtype's range) take their
    distances from the differences instead, as ``torch.cdist`` for up to 25 rows: NaN
    where a row holds NaN (its diagonal too), inf where the distance is infinite.
    Wraps :func:`gram_matrix` and :func:`distances_from_gram`.

    Parameters
    ----------
    embeddings : array (B, D)
    metric : {"euclidean", "squared_euclidean", "cosine"}

    Returns
    -------
    array (B, B) in the compute dtype.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    >>> print(np.round(fastloss.pairwise_distances(x), 4))
    [[0.     5.     1.    ]
     [5.     0.     4.2426]
     [1.     4.2426 0.    ]]
    """
    impl = select("pairwise_distances", backend)
    kernels = impl.kernels("triplet")
    x = _embeddings(embeddings)
    code = METRICS.index(check_choice(metric, "metric", METRICS))
    if x.shape[0] == 0:
        return np.zeros((0, 0), x.dtype)
    gram, sq, _, _ = _gram(kernels, x, code)
    _distances(kernels, gram, sq, x, code)
    return gram


def _distances(kernels, gram, sq, x, metric):
    """The Gram matrix ``gram`` of ``x`` (normalised for cosine) turned into distances in place.

    A row whose squared norm is not finite (NaN, inf, or an overflow of |x|^2) would give
    inf - inf from the Gram matrix: its distances are taken from the differences instead,
    as torch.cdist takes them for up to 25 rows (inf stays inf, NaN stays NaN)."""
    kernels.distances_from_gram(gram, sq, metric)
    if metric == _COSINE:
        return
    for a in np.flatnonzero(~np.isfinite(sq)):
        with np.errstate(invalid="ignore", over="ignore"):
            diff = x - x[a]
            q = np.einsum("ij,ij->i", diff, diff)
        gram[a] = gram[:, a] = np.sqrt(q) if metric == _EUCLIDEAN else q


def _grad_scale(grad_output, denominator):
    g = 1.0 if grad_output is None else as_grad_output(grad_output, np.float64)
    if np.ndim(g) != 0:
        raise ValueError(f"grad_output must be a scalar (the loss is reduced), got shape {np.shape(g)}")
    return float(g) / denominator if denominator else 0.0


# semi_hard keeps its pair weights as sparse lists, and applies them pair by pair, while
# the lists hold at most this fraction of B^2 entries (else a dense B x B matrix and one
# product, as batch_all); batch_hard's, 2 per anchor, are always lists.
SPARSE_BELOW = 1 / 8


def batch_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, *,
                       strategy: Literal["batch_hard", "batch_all", "semi_hard"] = "batch_hard", margin: float = 0.2,
                       metric: Metric = "euclidean", soft_margin: bool = False,
                       reduction: Literal["mean", "mean_nonzero", "sum"] = "mean", grad: bool = False,
                       grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
                       backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Triplet loss over every anchor of a batch, with online triplet mining.

    For an anchor a, a positive p (same label, p != a) and a negative n (another label),

    .. math::

        \ell(a, p, n) = \max(0,\; m + d_{ap} - d_{an})
        \qquad\text{or, with soft\_margin,}\qquad
        \ell(a, p, n) = \log(1 + e^{d_{ap} - d_{an}})

    with d the ``metric`` (see :func:`pairwise_distances`). ``strategy`` chooses the terms:

    * ``"batch_hard"`` (Hermans, Beyer, Leibe 2017, "In Defense of the Triplet Loss
      for Person Re-Identification"): one term per anchor that has a positive and a
      negative, with the largest :math:`d_{ap}` and the smallest :math:`d_{an}`.
    * ``"batch_all"``: every valid triplet. ``reduction="mean"`` divides by their
      number, ``"mean_nonzero"`` by the number with a positive loss (Hermans et al.'s
      BA!=0, pytorch-metric-learning's AvgNonZeroReducer).
    * ``"semi_hard"`` (Schroff, Kalenichenko, Philbin 2015, FaceNet), as TensorFlow
      Addons' ``triplet_semihard_loss`` computes it: one term per ordered positive pair
      (a, p), with the negative of smallest :math:`d_{an} > d_{ap}`, or the largest
      :math:`d_{an}` if none is farther; "mean" divides by the number of positive
      pairs. TFA's default ``distance_metric="L_2"`` is ``metric="squared_euclidean"``
      here, and its default margin is 1.0.

    Anchors without a positive or without a negative are left out of every strategy
    (TFA's semi-hard would still count such an anchor's pairs). Ties go to the first
    index. With no term, the loss is 0 and the gradient 0, never NaN; ``mean_nonzero``
    with no positive term likewise. A Euclidean distance of exactly 0 has the
    subgradient 0. NaN and inf embeddings reach only the terms whose distances they
    enter (see the module docstring).

    Wraps the parallel kernels :func:`gram_matrix`, :func:`triplet_loss_rows`
    (per-anchor mining on the Gram matrix, O(B^2) memory; see the module docstring for
    the sorted-positives method) and :func:`gradient_from_sparse_pairs` or
    :func:`gradient_from_pair_weights`.

    Parameters
    ----------
    embeddings : array (B, D)
    labels : int array (B,)
        Any integer values; equal values are one class.
    strategy : {"batch_hard", "batch_all", "semi_hard"}
    margin : float >= 0
        m (unused with ``soft_margin``).
    metric : {"euclidean", "squared_euclidean", "cosine"}
    soft_margin : bool
    reduction : {"mean", "mean_nonzero", "sum"}
        Over the strategy's terms (anchors, triplets or positive pairs).
    grad : bool
        Also return d loss / d embeddings: ``(loss, grad)``.
    grad_output : scalar, optional
        Multiplies the gradient (default 1).
    grad_out : array (B, D), optional
        Where to write the gradient (may be ``embeddings`` itself).

    Returns
    -------
    loss : NumPy scalar of the compute dtype; and ``grad`` (B, D) with ``grad=True``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> x = np.array([[0., 0.], [0., 1.], [3., 0.], [3., 2.]])
    >>> float(fastloss.batch_triplet_loss(x, [0, 0, 1, 1], margin=1.0))
    0.0
    """
    impl = select("batch_triplet_loss", backend)
    kernels = impl.kernels("triplet")
    x = _embeddings(embeddings)
    code = METRICS.index(check_choice(metric, "metric", METRICS))
    strat = STRATEGIES.index(check_choice(strategy, "strategy", STRATEGIES))
    check_options(reduction, grad, TRIPLET_REDUCTIONS)
    margin = check_option("batch_triplet_loss", "margin", margin)
    soft_margin = check_bool(soft_margin, "soft_margin")
    codes, members, starts = _label_groups(labels, x.shape[0])
    dtype = x.dtype
    n = x.shape[0]
    if grad:
        buffer = GradientBuffer(x, x.dtype, grad_out, reads={"labels": labels}).array
    if n == 0:
        return (dtype.type(0), buffer) if grad else dtype.type(0)
    gram, sq, base, inv_norm = _gram(kernels, x, code)
    from_gram = bool(np.isfinite(sq).all())  # else the distances are formed here, some from differences
    if not from_gram:
        _distances(kernels, gram, sq, x, code)
    sizes = np.diff(starts)[codes] - 1  # positives of each anchor
    valid = (sizes > 0) & (sizes + 1 < n)  # a positive and a negative
    # Sparse pair weights: batch_hard has 2 per anchor; semi_hard up to 2P, when few.
    capacity = np.where(valid, {_BATCH_HARD: 2, _SEMI_HARD: 2 * sizes}.get(strat, n - 1), 0)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.minimum(capacity, n - 1), out=offsets[1:])
    # Pairs are applied as differences x_k - x_j, and only the pairs a term uses, where a
    # distance is not from the Gram matrix: a non-finite row then reaches only its own pairs.
    sparse = grad and (strat == _BATCH_HARD or not from_gram
                       or strat == _SEMI_HARD and offsets[-1] <= SPARSE_BELOW * n * n)
    cols = np.empty(offsets[-1] if sparse else 0, np.int64)
    vals = np.empty(cols.shape[0], dtype)
    loss = np.empty(n)
    nonzero = np.empty(n)
    nnz = np.empty(n, np.int64)
    kernels.triplet_loss_rows(gram, sq, from_gram, codes, members, starts, code, strat, dtype.type(margin),
                              soft_margin, reduction == "mean_nonzero", bool(grad), bool(sparse), offsets, cols, vals,
                              loss, nonzero, nnz)
    total = float(loss.sum())
    if reduction == "sum":
        denominator = 1.0
    elif reduction == "mean_nonzero":
        denominator = float(nonzero.sum())
    elif strat == _BATCH_HARD:
        denominator = float(valid.sum())
    elif strat == _SEMI_HARD:
        denominator = float(sizes[valid].sum())
    else:
        denominator = float((sizes[valid] * (n - 1 - sizes[valid])).sum())
    value = dtype.type(total / denominator if denominator else 0.0)
    if not grad:
        return value
    scale = dtype.type(_grad_scale(grad_output, denominator))
    target = buffer if buffer.flags.c_contiguous and not np.shares_memory(buffer, x) else None
    out = np.empty(x.shape, dtype) if target is None else target
    norms = inv_norm if inv_norm is not None else sq  # read for cosine only
    eps = dtype.type(NORMALIZE_EPS)
    if not sparse:
        kernels.symmetrize_in_place(gram)
    if not np.isfinite(scale):
        # A NaN or inf grad_output reaches only the pairs that a term uses, as in torch's
        # backward (a row that no active term touches keeps the gradient 0): folded into them.
        with np.errstate(invalid="ignore", over="ignore"):
            np.multiply(vals if sparse else gram, scale, out=vals if sparse else gram)
        scale = dtype.type(1)
    if sparse:
        t_offsets, t_rows, t_vals = kernels.transpose_pairs(offsets, nnz, cols, vals, n)
        kernels.gradient_from_sparse_pairs(offsets, nnz, cols, vals, t_offsets, t_rows, t_vals, base, code, norms, eps,
                                   scale, out)
    else:
        kernels.gradient_from_pair_weights(gram, base, code, norms, eps, scale, out)
    if target is None:  # the kernel writes C-contiguous rows that never alias what it reads
        buffer[...] = out
    return value, buffer


def mine_triplets(embeddings: ArrayLike, labels: ArrayLike, *,
                  type_of_triplets: Literal["all", "hard", "semihard", "easy"] = "all", margin: float = 0.2,
                  metric: Metric = "euclidean", backend: Backend = None) -> tuple[IntArray, ...]:
    r"""Indices (anchor, positive, negative) of the triplets that
    pytorch-metric-learning's ``TripletMarginMiner`` returns.

    With :math:`\delta = d_{an} - d_{ap}`: ``"all"`` keeps :math:`\delta \le m`,
    ``"hard"`` :math:`\delta \le m` and :math:`\delta \le 0`, ``"semihard"``
    :math:`0 < \delta \le m`, ``"easy"`` :math:`\delta > m`, in the same
    lexicographic (a, p, n) order. pytorch-metric-learning's default distance
    normalises the embeddings first (``LpDistance(normalize_embeddings=True)``); here
    d is exactly ``metric`` on the embeddings given (for the cosine metric, its
    ``CosineSimilarity`` gives the same :math:`\delta`). Wraps the parallel kernel
    :func:`mine_triplet_rows` (a counting pass, then a filling pass): the result is
    as large as the triplet set, nothing larger is built.

    Parameters
    ----------
    embeddings : array (B, D)
    labels : int array (B,)
    type_of_triplets : {"all", "hard", "semihard", "easy"}
    margin : float >= 0
    metric : {"euclidean", "squared_euclidean", "cosine"}

    Returns
    -------
    anchor, positive, negative : int64 arrays of equal length.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> x = np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 2.0]])
    >>> anchors, positives, negatives = fastloss.mine_triplets(x, [0, 0, 1, 1], type_of_triplets="all", margin=5.0)
    >>> print(anchors, positives, negatives)
    [0 0 1 1 2 2 3 3] [1 1 0 0 3 3 2 2] [2 3 2 3 0 1 0 1]
    """
    impl = select("mine_triplets", backend)
    kernels = impl.kernels("triplet")
    x = _embeddings(embeddings)
    check_choice(metric, "metric", METRICS)  # before any work; pairwise_distances uses it
    kind = TRIPLET_TYPES.index(check_choice(type_of_triplets, "type_of_triplets", TRIPLET_TYPES))
    margin = check_real(margin, "margin", NONNEGATIVE)
    codes, members, starts = _label_groups(labels, x.shape[0])
    n = x.shape[0]
    offsets = np.zeros(n + 1, np.int64)
    if n == 0:
        return tuple(np.zeros(0, np.int64) for _ in range(3))
    dist = pairwise_distances(x, metric)
    empty = np.zeros(0, np.int64)
    m = dist.dtype.type(margin)
    kernels.mine_triplet_rows(dist, codes, members, starts, m, kind, offsets, empty, empty, empty, False)
    np.cumsum(offsets, out=offsets)
    out = [np.empty(int(offsets[-1]), np.int64) for _ in range(3)]
    kernels.mine_triplet_rows(dist, codes, members, starts, m, kind, offsets, *out, True)
    return tuple(out)


# The helpers outside the table take other libraries' arrays too; the criterion classes
# and the exports of the losses come from the table.
pairwise_distances = interop(pairwise_distances)
mine_triplets = interop(mine_triplets)
__all__ = ["pairwise_distances", "mine_triplets"] + LOSSES.export(__name__, globals())
