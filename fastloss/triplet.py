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

Non-finite embeddings (NaN or inf) give a NaN loss and a NaN gradient.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, overload

import numpy as np

from ._backend import require_numba
from ._core.table import LOSSES
from ._jit import REDUCE, jit, prange
from ._layout import GradientBuffer
from ._math import log1p_exp, minnum, sigmoid, typed
from ._reduction import check_options
from ._validation import as_float_array, as_grad_output, as_index_array, check_bool, check_choice, check_real

if TYPE_CHECKING:
    from typing import Any, Literal

    from numpy.typing import NDArray

    from ._typing import ArrayLike, Backend, FloatArray, IntArray, Loss, Metric, WithGrad


METRICS = ("euclidean", "squared_euclidean", "cosine")
STRATEGIES = ("batch_hard", "batch_all", "semi_hard")
TRIPLET_REDUCTIONS = ("mean", "mean_nonzero", "sum")
TRIPLET_TYPES = ("all", "hard", "semihard", "easy")
_EUCLIDEAN, _SQUARED, _COSINE = range(3)
_BATCH_HARD, _BATCH_ALL, _SEMI_HARD = range(3)
# torch.nn.functional.normalize's eps: x / max(||x||, eps), as pytorch-metric-learning's
# CosineSimilarity normalises.
COSINE_EPS = 1e-12


# --------------------------------------------------------------------------- kernels

@jit(fastmath=REDUCE)
def _gram_block(x, i, j, out):
    """out[i:i+4, j:j+4] and its mirror out[j:j+4, i:i+4] = the dot products of rows
    i..i+3 with rows j..j+3 (indices past the end clamped to the last row: they repeat
    its values in place). 16 sums vectorised over the dimension share 8 row loads per
    step; each sum's order depends only on the dimension, so out is exactly symmetric."""
    last = x.shape[0] - 1
    a0, a1, a2, a3 = x[i], x[min(i + 1, last)], x[min(i + 2, last)], x[min(i + 3, last)]
    b0, b1, b2, b3 = x[j], x[min(j + 1, last)], x[min(j + 2, last)], x[min(j + 3, last)]
    zero = typed(0, out[i, j])  # out, not x: x may have no columns
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = zero
    for d in range(x.shape[1]):
        p0, p1, p2, p3 = a0[d], a1[d], a2[d], a3[d]
        q0, q1, q2, q3 = b0[d], b1[d], b2[d], b3[d]
        s00 += p0 * q0
        s01 += p0 * q1
        s02 += p0 * q2
        s03 += p0 * q3
        s10 += p1 * q0
        s11 += p1 * q1
        s12 += p1 * q2
        s13 += p1 * q3
        s20 += p2 * q0
        s21 += p2 * q1
        s22 += p2 * q2
        s23 += p2 * q3
        s30 += p3 * q0
        s31 += p3 * q1
        s32 += p3 * q2
        s33 += p3 * q3
    sums = ((s00, s01, s02, s03), (s10, s11, s12, s13), (s20, s21, s22, s23), (s30, s31, s32, s33))
    for r in range(4):
        for c in range(4):
            u = min(i + r, last)
            v = min(j + c, last)
            out[u, v] = sums[r][c]
            out[v, u] = sums[r][c]


# Rows of the square tiles that the Gram kernel's threads take one pair at a time
# (a multiple of the 4-row blocks; a pair of tiles, 2 x 32 rows, stays in L2).
_GRAM_TILE = 32


@jit(parallel=True)
def gram_matrix(x, out):
    """out = x @ x.T (B, B), in place: the upper triangle of tile pairs, flattened so that
    the threads get equal shares, each pair written with its mirror. Numba's own thread
    pool, not a BLAS one: the two would spin against each other between the kernels."""
    n = x.shape[0]
    tiles = (n + _GRAM_TILE - 1) // _GRAM_TILE
    for pair in prange(tiles * (tiles + 1) // 2):
        ti = 0
        rest = pair + 0  # a copy: prange's index is not to be overwritten
        while rest >= tiles - ti:
            rest -= tiles - ti
            ti += 1
        tj = ti + rest
        for i in range(ti * _GRAM_TILE, min(ti * _GRAM_TILE + _GRAM_TILE, n), 4):
            # in a diagonal tile only the blocks on or right of the diagonal
            for j in range(i if ti == tj else tj * _GRAM_TILE, min(tj * _GRAM_TILE + _GRAM_TILE, n), 4):
                _gram_block(x, i, j, out)


@jit(inline="always")
def _gram_row_to_distances(row, a, sq, metric):
    """Row ``a`` of the Gram matrix -> row ``a`` of the distance matrix, in place."""
    zero = typed(0, sq[0])
    if metric == _COSINE:
        one = typed(1, sq[0])
        for j in range(row.shape[0]):
            row[j] = one - row[j]
        return
    two = typed(2, sq[0])
    s = sq[a]
    for j in range(row.shape[0]):
        q = s + sq[j] - two * row[j]
        q = q if not (q < zero) else zero  # rounding can make it negative; NaN passes
        row[j] = np.sqrt(q) if metric == _EUCLIDEAN else q
    if not np.isnan(row[a]):  # exactly 0, but NaN for a row holding NaN or inf (x - x is NaN there)
        row[a] = zero


@jit(parallel=True)
def distances_from_gram(gram, sq, metric):
    """Turn the Gram matrix (of the normalised embeddings for cosine) into distances, in place."""
    for a in prange(gram.shape[0]):
        _gram_row_to_distances(gram[a], a, sq, metric)


# Up to this many sorted values a count is a branch-free linear scan (vectorised);
# above it, a binary search whose steps are selects, not branches.
_LINEAR_COUNT = 32


@jit(inline="always")
def _count_below(values, v, strict):
    """Number of entries of the ascending ``values`` that are < v (``strict``) or <= v
    (searchsorted left / right)."""
    n = values.shape[0]
    if n <= _LINEAR_COUNT:
        c = 0
        for q in range(n):
            c += (values[q] < v) if strict else (values[q] <= v)
        return c
    base = 0
    while n > 1:
        half = n >> 1
        below = values[base + half - 1] < v if strict else values[base + half - 1] <= v
        base = base + half if below else base
        n -= half
    last = values[base] < v if strict else values[base] <= v
    return base + (1 if last else 0)


@jit(inline="always")
def _term(x, margin, soft):
    """Loss of one triplet with x = d_ap - d_an, and its derivative in x (0 at the hinge)."""
    if soft:
        return log1p_exp(x), sigmoid(x)
    h = margin + x
    zero = typed(0, x)
    return (h, typed(1, x)) if h > zero else (zero, zero)


@jit(inline="always")
def _chain_factor(g, d, metric):
    """A weight on the distance d, made a weight on the squared distance: times
    1 / (2 d) for Euclidean (0 at d = 0, the subgradient taken there), else itself."""
    zero = typed(0, d)
    if metric == _EUCLIDEAN:
        return g * typed(0.5, d) / d if d > zero else zero
    return g


@jit(inline="always")
def _nearest_other(row, label, labels):
    """Index of the smallest row[j] with labels[j] != label (one must exist), the first
    on ties, as a compare-and-keep scan finds it (a NaN only if it is the first such
    entry), in two vectorised passes: the minimum by ``minnum`` (NaN skipped), then
    the first index that holds it."""
    n = row.shape[0]
    first = 0
    while labels[first] == label:
        first += 1
    if row[first] != row[first]:
        return first
    inf = typed(np.inf, row[0])
    m = row[first]
    for j in range(n):  # from 0, not from first: an unknown start stops LLVM vectorising
        m = minnum(m, row[j] if labels[j] != label else inf)
    at = n
    for j in range(n):
        at = min(at, j if row[j] == m and labels[j] != label else n)
    return at


@jit(inline="always")
def _batch_hard_row(row, a, label, labels, positives, margin, soft, metric, want_grad, cols, vals, base):
    """Largest d_ap, smallest d_an (first index on ties); returns (loss, nonzero, pairs).

    With ``want_grad`` and a nonzero slope, its two pair weights, through the chain
    factor, go straight to ``cols`` / ``vals`` from ``base`` in ascending column order
    (no weight row to collect them from): ``pairs`` is their number, 0 or 2.
    """
    hp = positives[0] if positives[0] != a else positives[1]
    far = row[hp]
    for p in positives:
        if p != a and row[p] > far:
            hp = p
            far = row[p]
    hn = _nearest_other(row, label, labels)
    near = row[hn]
    value, slope = _term(far - near, margin, soft)
    if not (want_grad and slope != typed(0, slope)):
        return np.float64(value), 1.0 if value > 0 else 0.0, 0
    at_p = base if hp < hn else base + 1
    at_n = base + base + 1 - at_p
    cols[at_p] = hp
    vals[at_p] = _chain_factor(slope, far, metric)
    cols[at_n] = hn
    vals[at_n] = _chain_factor(-slope, near, metric)
    return np.float64(value), 1.0 if value > 0 else 0.0, 2


@jit(inline="always")
def _sorted_positives(row, a, positives):
    """The anchor's positive indices (``a`` dropped) sorted by distance, and those distances."""
    idx = np.empty(positives.shape[0] - 1, np.intp)
    k = 0
    for p in positives:
        if p != a:
            idx[k] = p
            k += 1
    vals = np.empty(idx.shape[0], row.dtype)
    for k in range(idx.shape[0]):
        vals[k] = row[idx[k]]
    order = np.argsort(vals, kind="mergesort")
    return idx[order], vals[order]


@jit(inline="always")
def _semi_hard_row(row, a, label, labels, positives, margin, soft, w):
    """TFA's semi-hard negative of every positive pair (a, p); returns (loss sum, nonzero count).

    Bucket b of a negative = number of sorted d_ap strictly below its distance, so it
    is "outside" (d_an > d_ap) for exactly the positives of sorted rank < b; the
    smallest d_an of buckets > q (a suffix minimum) is positive q's semi-hard negative.
    """
    pos, t = _sorted_positives(row, a, positives)
    n_pos = pos.shape[0]
    best = np.full(n_pos + 1, -1, np.intp)  # per bucket: index of the smallest distance
    top = -1  # the largest d_an, first index on ties
    for j in range(row.shape[0]):
        if labels[j] == label:
            continue
        v = row[j]
        b = _count_below(t, v, True)
        if b > 0 and (best[b] < 0 or v < row[best[b]]):
            best[b] = j
        if top < 0 or v > row[top]:
            top = j
    total = 0.0
    nonzero = 0.0
    run = -1
    for q in range(n_pos - 1, -1, -1):
        c = best[q + 1]
        if c >= 0 and (run < 0 or row[c] < row[run]):
            run = c
        n = run if run >= 0 else top
        value, slope = _term(t[q] - row[n], margin, soft)
        total += value
        nonzero += 1.0 if value > 0 else 0.0
        w[pos[q]] += slope
        w[n] -= slope
    return total, nonzero


@jit(inline="always")
def _batch_all_row(row, a, label, labels, positives, margin, soft, w):
    """Every (a, p, n) of the anchor; returns (loss sum, nonzero count).

    Hinge: bucket b of a negative = number of thresholds d_ap + m at or below its
    distance, so it violates exactly the positives of sorted rank >= b; prefix counts
    and sums over the buckets give each positive's c and s.
    """
    pos, t = _sorted_positives(row, a, positives)
    n_pos = pos.shape[0]
    total = 0.0
    nonzero = 0.0
    if soft:
        for q in range(n_pos):
            for j in range(row.shape[0]):
                if labels[j] != label:
                    value, slope = _term(t[q] - row[j], margin, soft)
                    total += value
                    nonzero += 1.0 if value > 0 else 0.0
                    w[pos[q]] += slope
                    w[j] -= slope
        return total, nonzero
    for q in range(n_pos):
        t[q] += margin
    count = np.zeros(n_pos + 1, np.int64)
    dist_sum = np.zeros(n_pos + 1)
    for j in range(row.shape[0]):
        if labels[j] != label:
            v = row[j]
            b = _count_below(t, v, False)
            count[b] += 1
            dist_sum[b] += v
            w[j] -= n_pos - b
    c = 0
    s = 0.0
    for q in range(n_pos):
        c += count[q]
        s += dist_sum[q]
        total += c * np.float64(t[q]) - s
        nonzero += c
        w[pos[q]] += c
    return total, nonzero


@jit(inline="always")
def _collect_pairs(w, row, metric, cols, vals, base):
    """Write each nonzero w[j], through the chain factor of the distance row[j], as the
    pair (j, weight) from ``base``, in ascending j; return their number."""
    zero = typed(0, row[0])
    k = 0
    for j in range(w.shape[0]):
        if w[j] != zero:
            cols[base + k] = j
            vals[base + k] = _chain_factor(w[j], row[j], metric)
            k += 1
    return k


@jit(parallel=True)
def triplet_loss_rows(dist, sq, labels, members, starts, metric, strategy, margin, soft, want_grad,
                      sparse, offsets, cols, vals, loss, nonzero, nnz):
    r"""Per-anchor triplet losses from the Gram matrix ``dist`` (B, B), in place.

    Anchor a's iteration reads and writes row a only: it turns it into distances
    (:func:`distances_from_gram`'s row step, ``sq`` the squared norms), mines it with ``strategy``,
    writes the sum of its terms' losses into ``loss[a]`` and the number of positive
    terms into ``nonzero[a]``; if ``want_grad``, it overwrites the row with
    :math:`W_{aj} = \partial \sum \ell / \partial d_{aj}` times the chain factor to the
    squared distance (:func:`_chain_factor`); with ``sparse`` (which ``batch_hard``
    requires: its two pairs are written without a weight row), it writes the nonzero
    ones instead as (``cols``, ``vals``) pairs from ``offsets[a]``, counts them into
    ``nnz[a]`` and leaves the row as distances. ``members[starts[c]:starts[c + 1]]``
    are the indices of class c, ascending. Anchors with no positive or no negative
    get zeros.
    """
    n = dist.shape[0]
    for a in prange(n):
        row = dist[a]
        _gram_row_to_distances(row, a, sq, metric)
        label = labels[a]
        positives = members[starts[label]:starts[label + 1]]
        loss[a] = 0.0
        nonzero[a] = 0.0
        nnz[a] = 0
        if positives.shape[0] < 2 or positives.shape[0] == n:
            if want_grad and not sparse:
                row[:] = 0
            continue
        if strategy == _BATCH_HARD:
            loss[a], nonzero[a], nnz[a] = _batch_hard_row(row, a, label, labels, positives, margin, soft, metric,
                                                          want_grad, cols, vals, offsets[a])
            continue
        w = np.zeros(n, dist.dtype)
        if strategy == _SEMI_HARD:
            total, count = _semi_hard_row(row, a, label, labels, positives, margin, soft, w)
        else:
            total, count = _batch_all_row(row, a, label, labels, positives, margin, soft, w)
        loss[a] = total
        nonzero[a] = count
        if want_grad and sparse:
            nnz[a] = _collect_pairs(w, row, metric, cols, vals, offsets[a])
        elif want_grad:
            for j in range(n):
                row[j] = _chain_factor(w[j], row[j], metric)


@jit(parallel=True)
def symmetrize_in_place(w):
    """w <- w + w.T, in 8 x 8 tiles (each unordered pair visited once: no races). A tile's
    column reads are a row length apart, often a multiple of 4 KB, so they share one L1
    set; 8 of them fit its 8 ways (64 x 64 tiles ran 5x slower at B=1024)."""
    n = w.shape[0]
    tile = 8
    n_tiles = (n + tile - 1) // tile
    for bi in prange(n_tiles):
        i0 = bi * tile
        i1 = min(i0 + tile, n)
        for bj in range(bi, n_tiles):
            j0 = bj * tile
            j1 = min(j0 + tile, n)
            for i in range(i0, i1):
                for j in range(max(j0, i + 1), j1):
                    s = w[i, j] + w[j, i]
                    w[i, j] = s
                    w[j, i] = s
            if bi == bj:
                for i in range(i0, i1):
                    w[i, i] = w[i, i] + w[i, i]


@jit(fastmath=REDUCE)
def _row_sum(row):
    s = 0.0  # float64 accumulation, also for float32 rows
    for j in range(row.shape[0]):
        s += row[j]
    return s


@jit(parallel=True)
def gradient_from_pair_weights(s, x, metric, inv_norm, eps, scale, out):
    """d loss / d x from the symmetric pair weights ``s`` (B, B): 2 (rowsum(s)_k x_k -
    (s x)_k) for the Euclidean metrics, -(s x)_k for cosine (``x`` the normalised
    embeddings). The rows of s x four at a time (past the end, the last row again),
    each row of x read once for the four; in Numba's thread pool, not BLAS's (see
    :func:`gram_matrix`)."""
    n, dim = x.shape
    last = n - 1
    two = typed(2, scale)
    for block in prange((n + 3) // 4):
        rows = (4 * block, min(4 * block + 1, last), min(4 * block + 2, last), min(4 * block + 3, last))
        products = np.zeros((4, dim), x.dtype)
        p0, p1, p2, p3 = products[0], products[1], products[2], products[3]
        for j in range(n):
            c0, c1, c2, c3 = s[rows[0], j], s[rows[1], j], s[rows[2], j], s[rows[3], j]
            xj = x[j]
            for d in range(dim):
                v = xj[d]
                p0[d] += c0 * v
                p1[d] += c1 * v
                p2[d] += c2 * v
                p3[d] += c3 * v
        for q in range(4):
            k = rows[q]
            pk = products[q]
            xk = x[k]
            if metric == _COSINE:
                for d in range(dim):
                    pk[d] = -pk[d]
            else:
                r = _row_sum(s[k])
                for d in range(dim):
                    pk[d] = two * (r * xk[d] - pk[d])
            _finish_gradient_row(pk, xk, metric, inv_norm[k], eps, scale, out[k])


@jit()
def transpose_pairs(offsets, nnz, cols, vals, n):
    """The (row, weight) pairs of each column: a counting sort of the sparse weights."""
    count = np.zeros(n + 1, np.int64)
    for a in range(n):
        for e in range(offsets[a], offsets[a] + nnz[a]):
            count[cols[e] + 1] += 1
    for j in range(n):
        count[j + 1] += count[j]
    fill = count[:n].copy()
    rows = np.empty(count[n], np.int64)
    weights = np.empty(count[n], vals.dtype)
    for a in range(n):
        for e in range(offsets[a], offsets[a] + nnz[a]):
            j = cols[e]
            rows[fill[j]] = a
            weights[fill[j]] = vals[e]
            fill[j] += 1
    return count, rows, weights


@jit(inline="always")
def _add_pairs(acc, xk, x, idx, weights, lo, hi, metric):
    """acc += sum_e w_e (x_k - x_idx[e]) (Euclidean) or -sum_e w_e x_idx[e] (cosine)."""
    two = typed(2, acc[0])
    for e in range(lo, hi):
        xj = x[idx[e]]
        c = weights[e]
        if metric == _COSINE:
            for d in range(acc.shape[0]):
                acc[d] -= c * xj[d]
        else:
            c = two * c
            for d in range(acc.shape[0]):
                acc[d] += c * (xk[d] - xj[d])


@jit(inline="always")
def _finish_gradient_row(acc, xk, metric, inv_norm, eps, scale, o):
    """o = scale * acc, pushed through x / max(|x|, eps) for cosine."""
    if metric == _COSINE:
        if inv_norm < typed(1, scale) / eps:
            dot = _row_sum(xk * acc)
            for d in range(acc.shape[0]):
                acc[d] -= xk[d] * dot
        scale = scale * inv_norm
    for d in range(acc.shape[0]):
        o[d] = scale * acc[d]


@jit(parallel=True)
def gradient_from_sparse_pairs(offsets, nnz, cols, vals, t_offsets, t_rows, t_vals, x, metric, inv_norm, eps,
                               scale, out):
    """d loss / d x from sparse pair weights: row k's own pairs and, transposed, the
    pairs that name k (S = W + W^T without forming it)."""
    for k in prange(x.shape[0]):
        acc = np.zeros(x.shape[1], x.dtype)
        _add_pairs(acc, x[k], x, cols, vals, offsets[k], offsets[k] + nnz[k], metric)
        _add_pairs(acc, x[k], x, t_rows, t_vals, t_offsets[k], t_offsets[k + 1], metric)
        _finish_gradient_row(acc, x[k], metric, inv_norm[k], eps, scale, out[k])


@jit(inline="always")
def _keeps(delta, margin, kind):
    """pytorch-metric-learning's TripletMarginMiner condition on delta = d_an - d_ap."""
    zero = typed(0, delta)
    if kind == 3:  # easy
        return delta > margin
    if kind == 1:  # hard
        return delta <= margin and delta <= zero
    if kind == 2:  # semihard
        return delta <= margin and delta > zero
    return delta <= margin  # all


@jit(parallel=True)
def mine_triplet_rows(dist, labels, members, starts, margin, kind, offsets, out_a, out_p, out_n, fill):
    """Count (``fill`` False: into ``offsets[a + 1]``) or write, in (a, p, n) lexicographic
    order from ``offsets[a]``, the triplets of each anchor that ``kind`` keeps."""
    n = dist.shape[0]
    for a in prange(n):
        row = dist[a]
        label = labels[a]
        k = offsets[a] if fill else 0
        for p in members[starts[label]:starts[label + 1]]:
            if p == a:
                continue
            for j in range(n):
                if labels[j] != label and _keeps(row[j] - row[p], margin, kind):
                    if fill:
                        out_a[k] = a
                        out_p[k] = p
                        out_n[k] = j
                    k += 1
        if not fill:
            offsets[a + 1] = k


# --------------------------------------------------------------------------- wrappers

def _embeddings(embeddings):
    x = as_float_array(embeddings, "embeddings")
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (batch, dim), got shape {x.shape}")
    return x


def _label_groups(labels, n):
    """Labels as class codes 0..C-1, the indices sorted by class (ascending within a
    class), and the class offsets into that order."""
    y = np.asarray(labels)
    y = as_index_array(y if y.size else y.astype(np.intp), "labels")  # [] is float to NumPy
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels has shape {y.shape}; expected ({n},), one label per embedding")
    _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    codes = codes.astype(np.intp, copy=False).reshape(-1)
    members = np.argsort(codes, kind="stable").astype(np.intp, copy=False)
    starts = np.zeros(counts.shape[0] + 1, np.intp)
    np.cumsum(counts, out=starts[1:])
    return codes, members, starts


def _gram(x, metric):
    """(Gram matrix, squared norms, the embeddings it was taken of, their inverse norms)."""
    x = np.ascontiguousarray(x)
    sq = np.einsum("ij,ij->i", x, x)
    inv_norm = None
    if metric == _COSINE:
        with np.errstate(invalid="ignore"):  # NaN from inf / inf, as torch gives it
            inv_norm = 1 / np.maximum(np.sqrt(sq), x.dtype.type(COSINE_EPS))
            x = x * inv_norm[:, None]
    gram = np.empty((x.shape[0], x.shape[0]), x.dtype)
    gram_matrix(x, gram)
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
    require_numba("pairwise_distances", backend)
    x = _embeddings(embeddings)
    code = METRICS.index(check_choice(metric, "metric", METRICS))
    if x.shape[0] == 0:
        return np.zeros((0, 0), x.dtype)
    gram, sq, _, _ = _gram(x, code)
    distances_from_gram(gram, sq, code)
    if code != _COSINE:
        # A row whose squared norm is not finite (NaN, inf, or an overflow of |x|^2) would
        # give inf - inf from the Gram matrix: its distances are taken from the differences,
        # as torch.cdist takes them for up to 25 rows (inf stays inf, NaN stays NaN).
        for a in np.flatnonzero(~np.isfinite(sq)):
            with np.errstate(invalid="ignore", over="ignore"):
                diff = x - x[a]
                q = np.einsum("ij,ij->i", diff, diff)
            gram[a] = gram[:, a] = np.sqrt(q) if code == _EUCLIDEAN else q
    return gram


def _grad_scale(grad_output, denominator):
    g = 1.0 if grad_output is None else as_grad_output(grad_output, np.float64)
    if np.ndim(g) != 0:
        raise ValueError(f"grad_output must be a scalar (the loss is reduced), got shape {np.shape(g)}")
    return float(g) / denominator if denominator else 0.0


# semi_hard keeps its pair weights as sparse lists, and applies them pair by pair, while
# the lists hold at most this fraction of B^2 entries (else a dense B x B matrix and one
# product, as batch_all); batch_hard's, 2 per anchor, are always lists.
SPARSE_BELOW = 1 / 8


@overload
def batch_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, *,
                       strategy: Literal["batch_hard", "batch_all", "semi_hard"] = ..., margin: float = ...,
                       metric: Metric = ..., soft_margin: bool = ...,
                       reduction: Literal["mean", "mean_nonzero", "sum"] = ..., grad: Literal[False] = ...,
                       grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                       backend: Backend = ...) -> Loss: ...


@overload
def batch_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, *,
                       strategy: Literal["batch_hard", "batch_all", "semi_hard"] = ..., margin: float = ...,
                       metric: Metric = ..., soft_margin: bool = ...,
                       reduction: Literal["mean", "mean_nonzero", "sum"] = ..., grad: Literal[True],
                       grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                       backend: Backend = ...) -> WithGrad[FloatArray]: ...


@overload
def batch_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, *,
                       strategy: Literal["batch_hard", "batch_all", "semi_hard"] = ..., margin: float = ...,
                       metric: Metric = ..., soft_margin: bool = ...,
                       reduction: Literal["mean", "mean_nonzero", "sum"] = ..., grad: bool,
                       grad_output: ArrayLike | None = ..., grad_out: NDArray[Any] | None = ...,
                       backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...


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
    subgradient 0. Non-finite embeddings give NaN.

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
    require_numba("batch_triplet_loss", backend)
    x = _embeddings(embeddings)
    code = METRICS.index(check_choice(metric, "metric", METRICS))
    strat = STRATEGIES.index(check_choice(strategy, "strategy", STRATEGIES))
    check_options(reduction, grad, TRIPLET_REDUCTIONS)
    margin = check_real(margin, "margin", low=0.0)
    soft_margin = check_bool(soft_margin, "soft_margin")
    codes, members, starts = _label_groups(labels, x.shape[0])
    dtype = x.dtype
    n = x.shape[0]
    if grad:
        buffer = GradientBuffer(x, x.dtype, grad_out, reads={"labels": labels}).array
    if n == 0:
        return (dtype.type(0), buffer) if grad else dtype.type(0)
    gram, sq, base, inv_norm = _gram(x, code)
    if not np.isfinite(sq).all():
        if grad:
            buffer[...] = np.nan
            return dtype.type(np.nan), buffer
        return dtype.type(np.nan)
    sizes = np.diff(starts)[codes] - 1  # positives of each anchor
    valid = (sizes > 0) & (sizes + 1 < n)  # a positive and a negative
    # Sparse pair weights: batch_hard has 2 per anchor; semi_hard up to 2P, when few.
    capacity = np.where(valid, {_BATCH_HARD: 2, _SEMI_HARD: 2 * sizes}.get(strat, n - 1), 0)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.minimum(capacity, n - 1), out=offsets[1:])
    sparse = grad and (strat == _BATCH_HARD or strat == _SEMI_HARD and offsets[-1] <= SPARSE_BELOW * n * n)
    cols = np.empty(offsets[-1] if sparse else 0, np.int64)
    vals = np.empty(cols.shape[0], dtype)
    loss = np.empty(n)
    nonzero = np.empty(n)
    nnz = np.empty(n, np.int64)
    triplet_loss_rows(gram, sq, codes, members, starts, code, strat, dtype.type(margin), soft_margin,
                      bool(grad), bool(sparse), offsets, cols, vals, loss, nonzero, nnz)
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
    eps = dtype.type(COSINE_EPS)
    if sparse:
        t_offsets, t_rows, t_vals = transpose_pairs(offsets, nnz, cols, vals, n)
        gradient_from_sparse_pairs(offsets, nnz, cols, vals, t_offsets, t_rows, t_vals, base, code, norms, eps,
                                   scale, out)
    else:
        symmetrize_in_place(gram)
        gradient_from_pair_weights(gram, base, code, norms, eps, scale, out)
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
    require_numba("mine_triplets", backend)
    x = _embeddings(embeddings)
    check_choice(metric, "metric", METRICS)  # before any work; pairwise_distances uses it
    kind = TRIPLET_TYPES.index(check_choice(type_of_triplets, "type_of_triplets", TRIPLET_TYPES))
    margin = check_real(margin, "margin", low=0.0)
    codes, members, starts = _label_groups(labels, x.shape[0])
    n = x.shape[0]
    offsets = np.zeros(n + 1, np.int64)
    if n == 0:
        return tuple(np.zeros(0, np.int64) for _ in range(3))
    dist = pairwise_distances(x, metric)
    empty = np.zeros(0, np.int64)
    m = dist.dtype.type(margin)
    mine_triplet_rows(dist, codes, members, starts, m, kind, offsets, empty, empty, empty, False)
    np.cumsum(offsets, out=offsets)
    out = [np.empty(int(offsets[-1]), np.int64) for _ in range(3)]
    mine_triplet_rows(dist, codes, members, starts, m, kind, offsets, *out, True)
    return tuple(out)


# The criterion classes and the exports, from the table of losses.
__all__ = ["pairwise_distances", "mine_triplets"] + LOSSES.export(__name__, globals())
