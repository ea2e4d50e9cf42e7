"""The CPU kernels of :mod:`fastloss.triplet`: Numba functions, compiled just in time;
the wrappers that validate and call them are in ``fastloss/triplet/__init__.py``."""
from __future__ import annotations

import numpy as np

from .._core.jit import REDUCE, jit, prange
from .._core.numerics import log1p_exp, minnum, sigmoid, typed

METRICS = ("euclidean", "squared_euclidean", "cosine")
STRATEGIES = ("batch_hard", "batch_all", "semi_hard")
TRIPLET_REDUCTIONS = ("mean", "mean_nonzero", "sum")
TRIPLET_TYPES = ("all", "hard", "semihard", "easy")
_EUCLIDEAN, _SQUARED, _COSINE = range(3)
_BATCH_HARD, _BATCH_ALL, _SEMI_HARD = range(3)


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
def _term(x, margin, soft, drop_nan):
    """Loss of one triplet with x = d_ap - d_an, and its derivative in x (0 at the hinge).

    A NaN distance gives a NaN term, whose derivative ``torch.relu`` passes (its backward
    zeroes only where the input is <= 0); with ``drop_nan`` (reduction "mean_nonzero") the
    term is left out instead, value and derivative, as pytorch-metric-learning's
    ``losses > 0`` mask leaves it out."""
    zero = typed(0, x)
    if soft:
        value, slope = log1p_exp(x), sigmoid(x)
    else:
        h = margin + x
        value, slope = (zero, zero) if h <= zero else (h, typed(1, x))
    if drop_nan and value != value:
        return zero, zero
    return value, slope


@jit(inline="always")
def _chain_factor(g, d, metric):
    """A weight on the distance d, made a weight on the squared distance: times
    1 / (2 d) for Euclidean (0 at d = 0, the subgradient taken there; NaN at a NaN d, as
    torch's sqrt backward), else itself. No weight stays no weight."""
    zero = typed(0, d)
    if metric == _EUCLIDEAN:
        return zero if g == zero or d == zero else g * typed(0.5, d) / d
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
def _batch_hard_row(row, a, label, labels, positives, margin, soft, drop_nan, metric, want_grad, cols, vals, base):
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
    value, slope = _term(far - near, margin, soft, drop_nan)
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
def _semi_hard_row(row, a, label, labels, positives, margin, soft, drop_nan, w):
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
        value, slope = _term(t[q] - row[n], margin, soft, drop_nan)
        total += value
        nonzero += 1.0 if value > 0 else 0.0
        w[pos[q]] += slope
        w[n] -= slope
    return total, nonzero


@jit(inline="always")
def _batch_all_row(row, a, label, labels, positives, margin, soft, drop_nan, w):
    """Every (a, p, n) of the anchor; returns (loss sum, nonzero count).

    Hinge: bucket b of a negative = number of thresholds d_ap + m at or below its
    distance, so it violates exactly the positives of sorted rank >= b; prefix counts
    and sums over the buckets give each positive's c and s. A NaN distance (sorted last
    among the positives, in bucket 0 among the negatives) makes every term it enters NaN
    with the derivative 1, as :func:`_term`; with ``drop_nan`` those terms are left out.
    """
    pos, t = _sorted_positives(row, a, positives)
    n_pos = pos.shape[0]
    total = 0.0
    nonzero = 0.0
    if soft:
        for q in range(n_pos):
            for j in range(row.shape[0]):
                if labels[j] != label:
                    value, slope = _term(t[q] - row[j], margin, soft, drop_nan)
                    total += value
                    nonzero += 1.0 if value > 0 else 0.0
                    w[pos[q]] += slope
                    w[j] -= slope
        return total, nonzero
    for q in range(n_pos):
        t[q] += margin
    count = np.zeros(n_pos + 1, np.int64)
    dist_sum = np.zeros(n_pos + 1)
    if drop_nan:
        while n_pos > 0 and t[n_pos - 1] != t[n_pos - 1]:
            n_pos -= 1
    thresholds = t[:n_pos]
    for j in range(row.shape[0]):
        if labels[j] != label and not (drop_nan and row[j] != row[j]):
            v = row[j]
            b = _count_below(thresholds, v, False)
            if v == np.inf and not drop_nan:  # against an infinite d_ap + m, inf - inf: NaN, so it violates those
                b = _count_below(thresholds, v, True)
            count[b] += 1
            dist_sum[b] += v
            w[j] -= n_pos - b
    c = 0
    s = 0.0
    for q in range(n_pos):
        c += count[q]
        s += dist_sum[q]
        total += c * np.float64(t[q]) - s if c else 0.0  # no violator: 0, also for an infinite t (not 0 * inf)
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
def triplet_loss_rows(dist, sq, from_gram, labels, members, starts, metric, strategy, margin, soft, drop_nan,
                      want_grad, sparse, offsets, cols, vals, loss, nonzero, nnz):
    r"""Per-anchor triplet losses from the Gram matrix ``dist`` (B, B), in place.

    Anchor a's iteration reads and writes row a only: with ``from_gram`` it turns it into
    distances (:func:`distances_from_gram`'s row step, ``sq`` the squared norms; else
    ``dist`` holds the distances already), mines it with ``strategy``,
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
        if from_gram:
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
            loss[a], nonzero[a], nnz[a] = _batch_hard_row(row, a, label, labels, positives, margin, soft, drop_nan,
                                                          metric, want_grad, cols, vals, offsets[a])
            continue
        w = np.zeros(n, dist.dtype)
        if strategy == _SEMI_HARD:
            total, count = _semi_hard_row(row, a, label, labels, positives, margin, soft, drop_nan, w)
        else:
            total, count = _batch_all_row(row, a, label, labels, positives, margin, soft, drop_nan, w)
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
    """o = scale * acc, pushed through x / max(|x|, eps) for cosine. A row that no pair
    reaches gets 0 (its norm, NaN or inf for a non-finite row, is not read)."""
    zero = typed(0, scale)
    touched = False
    for d in range(acc.shape[0]):
        if acc[d] != zero:
            touched = True
            break
    if not touched:
        o[:] = zero
        return
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
