r"""The GPU kernels of :mod:`fastloss.triplet`, in the ``numba.cuda`` dialect, and the
device entry point :func:`batch_triplet_loss` that the dispatcher calls with device arrays.

The CPU's method (see ``fastloss/triplet/__init__.py``) in five launches, with B x B
buffers at most (the distances and the pair weights; never B^3):

1. :func:`row_norms`: squared norms (and the cosine's inverse norms), a block per row.
   :func:`label_groups`: the indices sorted by label, ascending within a label, and
   each index's class start and size, by counting (a thread per index, O(B) each): the
   CPU's ``np.unique`` and stable argsort, without leaving the device.
2. :func:`distance_tiles`: the B x B distances in register-blocked tiles of the Gram
   product (each thread 4 x 4 cells, the dimension staged in shared memory), as the CPU
   forms them (:math:`\|x_i\|^2 + \|x_j\|^2 - 2 x_i \cdot x_j`
   clamped at 0; from the differences where a squared norm is not finite; ``1 -``
   the cosine).
3. :func:`mine_anchor_rows`: a block per anchor mines its row and writes its pair
   weights :math:`W_{aj} = \partial \ell / \partial d_{aj}` (times the metric's chain
   factor) into row a of a B x B matrix, its loss sum, its count of positive terms and
   its number of terms. ``batch_hard``: block arg-max / arg-min with the first index on
   ties; ``batch_all``: every (p, n) pair, a thread per negative (then a thread per
   positive for the positives' weights: no two threads add to one weight, so the
   result is deterministic); ``semi_hard``: a thread per positive scans the negatives
   in index order, then a thread per negative gathers the weights of the positives that
   chose it.
4. :func:`triplet_finish`: one block sums the anchors' parts (float64) into the loss
   and the gradient's scale ``grad_output / denominator``; on the device, no read back.
5. :func:`gradient_rows`: a block per embedding k, threads over the dimension:
   :math:`2 \sum_j S_{kj} (x_k - x_j)` with :math:`S = W + W^T`, or the cosine's
   :math:`-\sum_j S_{kj} \hat x_j` through the normalisation; pairs of zero weight are
   skipped, so a non-finite embedding reaches only the terms that use it (the CPU's
   sparse path).

Labels are any integers: there is no invalid label, so no flag and no read of the
device. Sums accumulate in float64.
"""
from __future__ import annotations

import math

import numpy as np
from numba import types

from .._core.cuda import block_size, grid, is_device_array, threads_for, to_device
from .._core.cuda_blocks import block_max, block_sum, cuda
from .._core.numerics import NORMALIZE_EPS
from .._core.reduction import check_options
from .._core.validation import as_grad_output, as_index_array, check_bool, check_choice, check_option
from . import _check_labels_shape, _embeddings
from .cpu import _BATCH_ALL, _BATCH_HARD, _COSINE, _EUCLIDEAN, _SEMI_HARD, METRICS, STRATEGIES, TRIPLET_REDUCTIONS

#: Threads per block of the row kernels, and the slots of their shared reduction buffer.
_THREADS = block_size()
#: :func:`distance_tiles`' blocks: (_TILE, _TILE) threads, each computing _CELLS x _CELLS
#: distances of a _SPAN x _SPAN tile (64 x 64 on a GPU), the dimension staged _DEPTH at a time.
_TILE = math.isqrt(_THREADS)
_CELLS = 4
_SPAN = _TILE * _CELLS
_DEPTH = _TILE
#: The staged tiles' row length: one more than _SPAN, so that the staging stores (a
#: thread per depth) meet no shared-memory bank twice.
_PITCH = _SPAN + 1
_MEAN, _MEAN_NONZERO, _SUM = range(3)


# ----------------------------------------------------------------- device functions

@cuda.jit(device=True)
def _term(x, margin, soft, drop_nan):
    """(loss, derivative) of one triplet with x = d_ap - d_an, in float64, as
    :func:`fastloss.triplet.cpu._term` (0 at the hinge; NaN terms dropped with ``drop_nan``)."""
    if soft:  # log(1 + e^x) and its derivative, the sigmoid, without overflow
        e = math.exp(-abs(x))
        value = max(x, 0.0) + math.log1p(e)
        slope = 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)
    else:
        h = margin + x
        value = 0.0 if h <= 0 else h
        slope = 0.0 if h <= 0 else 1.0
    if drop_nan and value != value:
        return 0.0, 0.0
    return value, slope


@cuda.jit(device=True)
def _chain_factor(g, d, metric):
    """A weight on the distance d made a weight on the squared distance (Euclidean:
    g / (2 d), 0 at d = 0), as :func:`fastloss.triplet.cpu._chain_factor`."""
    if metric == _EUCLIDEAN:
        return 0.0 if g == 0.0 or d == 0.0 else g * 0.5 / d
    return g


@cuda.jit(device=True)
def _set_weight(weights, used, a, j, g, d, metric):
    """Pair (a, j) of weight g on the distance d: its weight through the chain factor, and
    whether a term uses it (g != 0): the gradient applies exactly the pairs used, as the
    CPU's sparse lists, so that a weight of 0 (d = inf) still meets an infinite difference."""
    weights[a, j] = _chain_factor(g, d, metric)
    used[a, j] = g != 0.0


@cuda.jit(device=True)
def _first_extreme(dist, a, labels, label, same, order, lo, hi, largest, buffer):
    """Index of the largest (``largest``) or smallest d[a, j] over the anchor's positives
    (``same``: j = order[lo..hi), j != a) or its negatives (labels[j] != label), as the
    CPU's compare-and-keep scan in index order finds it: the first candidate if its
    distance is NaN, else the first index holding the extreme of the others."""
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    count = hi - lo if same else dist.shape[0]
    first = -math.inf  # minus the smallest candidate index
    for i in range(tid, count, threads):
        j = order[i + lo] if same else i
        if (j != a) if same else (labels[j] != label):
            first = max(first, -1.0 * j)
    start = int(-block_max(buffer, first))
    if dist[a, start] != dist[a, start]:
        return start
    sign = 1.0 if largest else -1.0
    best = -math.inf  # of sign * d: NaN skipped (compares false)
    for i in range(tid, count, threads):
        j = order[i + lo] if same else i
        if (j != a) if same else (labels[j] != label):
            v = sign * dist[a, j]
            best = v if v > best else best
    best = block_max(buffer, best)
    at = -math.inf
    for i in range(tid, count, threads):
        j = order[i + lo] if same else i
        if ((j != a) if same else (labels[j] != label)) and sign * dist[a, j] == best:
            at = max(at, -1.0 * j)
    return int(-block_max(buffer, at))


@cuda.jit(device=True)
def _distance(x, sq, inv_norm, metric, i, j, dot):
    """Cell (i, j) of :func:`distance_tiles` from the dot product x_i . x_j."""
    if metric == _COSINE:
        return 1.0 - dot * inv_norm[i] * inv_norm[j]
    if abs(sq[i]) < math.inf and abs(sq[j]) < math.inf:
        q = sq[i] + sq[j] - 2.0 * dot
        q = q if not q < 0.0 else 0.0  # rounding can make it negative; NaN passes
        if i == j and q == q:
            q = 0.0
    else:  # a non-finite squared norm: from the differences (inf stays inf, NaN stays NaN), as torch.cdist
        q = 0.0
        for k in range(x.shape[1]):
            diff = 1.0 * x[i, k] - x[j, k]
            q += diff * diff
    return math.sqrt(q) if metric == _EUCLIDEAN else q


# ----------------------------------------------------------------- kernels

@cuda.jit
def row_norms(x, sq, inv_norm, eps):
    """sq[i] = |x_i|^2 (float64) and inv_norm[i] = 1 / max(|x_i|, eps), a block per row
    (grid-stride); NaN from inf / inf, as torch's normalize gives it."""
    buffer = cuda.shared.array(_THREADS, np.float64)
    for i in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
        partial = 0.0
        for d in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
            partial += 1.0 * x[i, d] * x[i, d]
        total = block_sum(buffer, partial)
        if cuda.threadIdx.x == 0:
            sq[i] = total
            inv_norm[i] = 1.0 / max(math.sqrt(total), eps)


@cuda.jit
def label_groups(labels, group_start, group_size, order):
    """For each index j (grid-stride threads): ``group_start[j]`` = the number of labels
    below labels[j], ``group_size[j]`` = the number equal to it, and
    ``order[group_start[j] + rank] = j`` with rank the equal labels before j: the indices
    sorted by label, ascending within a label (the CPU's stable argsort of the codes)."""
    n = labels.shape[0]
    for j in range(cuda.grid(1), n, cuda.gridsize(1)):
        label = labels[j]
        below = 0
        equal = 0
        before = 0
        for i in range(n):
            other = labels[i]
            below += other < label
            equal += other == label
            before += other == label and i < j
        group_start[j] = below
        group_size[j] = equal
        order[below + before] = j


@cuda.jit
def distance_tiles(x, sq, inv_norm, metric, dist):
    """dist = the B x B distances of the rows of x: a (tile x tile) block of threads per
    :data:`_SPAN` x :data:`_SPAN` tile of dist, each thread :data:`_CELLS` x :data:`_CELLS`
    cells (rows ty, ty + tile, ..., columns tx, tx + tile, ...), their dot products
    accumulated in float64 over the dimension, staged :data:`_DEPTH` at a time in shared
    memory (each value read from shared memory serves :data:`_CELLS` products); then per
    cell the CPU's formula (see the module docstring)."""
    rows = cuda.shared.array((_DEPTH, _PITCH), np.float64)
    cols = cuda.shared.array((_DEPTH, _PITCH), np.float64)
    dots = cuda.local.array((_CELLS, _CELLS), np.float64)
    left = cuda.local.array(_CELLS, np.float64)
    right = cuda.local.array(_CELLS, np.float64)
    ty = cuda.threadIdx.y
    tx = cuda.threadIdx.x
    tid = ty * _TILE + tx
    top = cuda.blockIdx.y * _SPAN
    first = cuda.blockIdx.x * _SPAN
    n, dim = x.shape
    for u in range(_CELLS):
        for v in range(_CELLS):
            dots[u, v] = 0.0
    for k0 in range(0, dim, _DEPTH):
        for e in range(tid, _SPAN * _DEPTH, _TILE * _TILE):  # a row's _DEPTH values by neighbouring threads
            r = e // _DEPTH
            k = k0 + e - r * _DEPTH
            rows[e - r * _DEPTH, r] = x[top + r, k] if top + r < n and k < dim else 0.0
            cols[e - r * _DEPTH, r] = x[first + r, k] if first + r < n and k < dim else 0.0
        cuda.syncthreads()
        for k in range(min(_DEPTH, dim - k0)):
            for u in range(_CELLS):
                left[u] = rows[k, ty + u * _TILE]
                right[u] = cols[k, tx + u * _TILE]
            for u in range(_CELLS):
                for v in range(_CELLS):
                    dots[u, v] += left[u] * right[v]
        cuda.syncthreads()
    # The sums leave the registers once, by constant indices, for the cell-by-cell loop below,
    # which stays a loop: indexing ``dots`` there at run time would give ``dots`` a place in
    # local memory, and its 16 sums would be stored there after every staged depth (sm_90 SASS).
    cells = cuda.local.array((_CELLS, _CELLS), np.float64)
    for u in range(_CELLS):
        for v in range(_CELLS):
            cells[u, v] = dots[u, v]
    for u in range(_CELLS):
        for v in range(_CELLS):
            i = top + ty + u * _TILE
            j = first + tx + v * _TILE
            if i < n and j < n:
                dist[i, j] = _distance(x, sq, inv_norm, metric, i, j, cells[u, v])


@cuda.jit
def mine_anchor_rows(dist, labels, group_start, group_size, order, metric, strategy, margin, soft, drop_nan, weights,
                     used, chosen, loss, nonzero, terms):
    """Anchor a = ``blockIdx.x``: mine row a of ``dist`` with ``strategy``, write its pair
    weights (through the chain factor) into row a of ``weights`` (zeros elsewhere) and in
    row a of ``used`` which pairs its terms use, its loss sum, number of positive terms and number of terms into ``loss[a]``,
    ``nonzero[a]``, ``terms[a]`` (float64). ``chosen`` (B x B, ``semi_hard`` only) keeps
    each positive's negative. Anchors with no positive or no negative get zeros."""
    a = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    buffer = cuda.shared.array(_THREADS, np.float64)
    n = dist.shape[0]
    label = labels[a]
    lo = group_start[a]
    hi = lo + group_size[a]
    n_pos = hi - lo - 1
    n_neg = n - n_pos - 1
    for j in range(tid, n, threads):
        weights[a, j] = 0.0
        used[a, j] = False
    if n_pos == 0 or n_neg == 0:
        if tid == 0:
            loss[a] = 0.0
            nonzero[a] = 0.0
            terms[a] = 0.0
        return
    cuda.syncthreads()  # the zeros are written before any weight below
    total = 0.0
    positive = 0.0
    if strategy == _BATCH_HARD:
        hp = _first_extreme(dist, a, labels, label, True, order, lo, hi, True, buffer)
        hn = _first_extreme(dist, a, labels, label, False, order, lo, hi, False, buffer)
        if tid == 0:
            far = 1.0 * dist[a, hp]
            near = 1.0 * dist[a, hn]
            total, slope = _term(far - near, margin, soft, drop_nan)
            positive = 1.0 if total > 0 else 0.0
            _set_weight(weights, used, a, hp, slope, far, metric)
            _set_weight(weights, used, a, hn, -slope, near, metric)
        n_terms = 1.0
    elif strategy == _BATCH_ALL:
        for j in range(tid, n, threads):  # each negative: its terms, and its weight
            if labels[j] != label:
                d_an = 1.0 * dist[a, j]
                w = 0.0
                for q in range(lo, hi):
                    p = order[q]
                    if p != a:
                        value, slope = _term(dist[a, p] - d_an, margin, soft, drop_nan)
                        total += value
                        positive += 1.0 if value > 0 else 0.0
                        w -= slope
                _set_weight(weights, used, a, j, w, d_an, metric)
        for q in range(lo + tid, hi, threads):  # each positive: its weight
            p = order[q]
            if p != a:
                d_ap = 1.0 * dist[a, p]
                w = 0.0
                for j in range(n):
                    if labels[j] != label:
                        w += _term(d_ap - dist[a, j], margin, soft, drop_nan)[1]
                _set_weight(weights, used, a, p, w, d_ap, metric)
        n_terms = 1.0 * n_pos * n_neg
    else:
        for q in range(lo + tid, hi, threads):  # each positive: the nearest negative farther than it (TFA)
            p = order[q]
            if p != a:
                d_ap = 1.0 * dist[a, p]
                best = -1
                top = -1
                for j in range(n):
                    if labels[j] != label:
                        v = dist[a, j]
                        if v > d_ap and (best < 0 or v < dist[a, best]):
                            best = j
                        if top < 0 or v > dist[a, top]:
                            top = j
                chosen[a, q - lo] = best if best >= 0 else top
                value, slope = _term(d_ap - dist[a, chosen[a, q - lo]], margin, soft, drop_nan)
                total += value
                positive += 1.0 if value > 0 else 0.0
                _set_weight(weights, used, a, p, slope, d_ap, metric)
        cuda.syncthreads()
        for j in range(tid, n, threads):  # each negative: minus the slopes of the positives that chose it
            if labels[j] != label:
                d_an = 1.0 * dist[a, j]
                w = 0.0
                for q in range(lo, hi):
                    if order[q] != a and chosen[a, q - lo] == j:
                        w -= _term(dist[a, order[q]] - d_an, margin, soft, drop_nan)[1]
                _set_weight(weights, used, a, j, w, d_an, metric)
        n_terms = 1.0 * n_pos
    total = block_sum(buffer, total)
    positive = block_sum(buffer, positive)
    if tid == 0:
        loss[a] = total
        nonzero[a] = positive
        terms[a] = n_terms


@cuda.jit
def triplet_finish(loss, nonzero, terms, reduction, grad_output, out, scale):
    """One block: out[0] = the anchors' loss sum over the reduction's denominator (the
    number of terms, of positive terms, or 1; 0 when it is 0), and scale[0] =
    grad_output / denominator (0 when it is 0), as the CPU wrapper computes them."""
    buffer = cuda.shared.array(_THREADS, np.float64)
    total = 0.0
    count = 0.0
    for a in range(cuda.threadIdx.x, loss.shape[0], cuda.blockDim.x):
        total += loss[a]
        count += nonzero[a] if reduction == _MEAN_NONZERO else terms[a]
    total = block_sum(buffer, total)
    count = block_sum(buffer, count)
    if cuda.threadIdx.x == 0:
        denominator = 1.0 if reduction == _SUM else count
        out[0] = total / denominator if denominator != 0.0 else 0.0
        scale[0] = grad_output[0] / denominator if denominator != 0.0 else 0.0


@cuda.jit
def gradient_rows(x, weights, used, inv_norm, metric, eps, scale, out):
    """out[k] = d loss / d x_k, a block per row k (grid-stride), a thread per dimension:
    the pairs that a term uses only, with S = W + W^T (see the module docstring), times
    ``scale[0]``; a row that no pair reaches gets 0.

    Row k's partners (the j with ``used[k, j]`` or ``used[j, k]``) are found a block's
    width of j at a time and listed in index order in shared memory (a prefix sum of the
    threads' finds), with their S_kj; then every thread adds, for its dimension, the
    listed partners' terms in that order, as the CPU's sparse lists do. A batch-hard row
    has two partners as anchor and a few more as a positive or negative: its cost is the
    scan of B pairs, not B for every dimension."""
    buffer = cuda.shared.array(_THREADS, np.float64)
    partners = cuda.shared.array(_THREADS, np.int64)
    pair_weights = cuda.shared.array(_THREADS, np.float64)
    counts = cuda.shared.array(_THREADS, np.int64)
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    n, dim = x.shape
    for k in range(cuda.blockIdx.x, n, cuda.gridDim.x):
        touched = 0.0
        radial = 0.0  # cosine: x_hat_k . acc
        for d0 in range(0, dim, threads):
            d = d0 + tid
            acc = 0.0
            for j0 in range(0, n, threads):
                j = j0 + tid
                found = j < n and (used[k, j] or used[j, k])
                counts[tid] = 1 if found else 0
                cuda.syncthreads()
                step = 1
                while step < threads:  # inclusive prefix sum: counts[t] = finds among threads 0..t
                    below = counts[tid - step] if tid >= step else 0
                    cuda.syncthreads()
                    counts[tid] += below
                    cuda.syncthreads()
                    step *= 2
                if found:
                    partners[counts[tid] - 1] = j
                    pair_weights[counts[tid] - 1] = 1.0 * weights[k, j] + weights[j, k]
                listed = counts[threads - 1]
                cuda.syncthreads()
                if d < dim:
                    for q in range(listed):
                        s = pair_weights[q]
                        if metric == _COSINE:
                            acc -= s * (x[partners[q], d] * inv_norm[partners[q]])
                        else:
                            acc += 2.0 * s * (1.0 * x[k, d] - x[partners[q], d])
                cuda.syncthreads()  # the list is read before the next chunk's is written
            if d < dim:
                out[k, d] = acc
                touched = 1.0 if acc != 0.0 else touched
                if metric == _COSINE:
                    radial += x[k, d] * inv_norm[k] * acc
        touched = block_max(buffer, touched)
        factor = scale[0]
        if metric == _COSINE:  # through x / max(|x|, eps): minus the radial part (not below eps), over the norm
            radial = block_sum(buffer, radial)
            if inv_norm[k] >= 1.0 / eps:
                radial = 0.0
            factor *= inv_norm[k]
        for d in range(tid, dim, threads):
            value = out[k, d]
            if metric == _COSINE:
                value -= x[k, d] * inv_norm[k] * radial
            out[k, d] = factor * value if touched > 0.0 else 0.0


@cuda.jit
def copy_rows(source, target):
    """target = source (2-D, any strides), grid-stride."""
    n, dim = source.shape
    for i in range(cuda.grid(1), n * dim, cuda.gridsize(1)):
        target[i // dim, i % dim] = source[i // dim, i % dim]


# ----------------------------------------------------------------- entry point

def _scalar_grad_output(grad_output):
    """``grad_output`` (a scalar: the loss is reduced) on the device as one float64."""
    if grad_output is None:
        return to_device(np.ones(1))
    if is_device_array(grad_output):  # its shape checked here, its value read by the kernel
        g = to_device(grad_output)
        if g.shape not in ((), (1,)):
            raise ValueError(f"grad_output must be a scalar (the loss is reduced), got shape {g.shape}")
        return g.reshape(1)
    g = as_grad_output(grad_output, np.float64)
    if np.ndim(g) != 0:
        raise ValueError(f"grad_output must be a scalar (the loss is reduced), got shape {np.shape(g)}")
    return to_device(g.reshape(1))


def batch_triplet_loss(embeddings, labels, *, strategy="batch_hard", margin=0.2, metric="euclidean",
                       soft_margin=False, reduction="mean", grad=False, grad_output=None, grad_out=None,
                       backend=None):
    """:func:`fastloss.batch_triplet_loss` on device arrays: the same value (a 0-d device
    array) and gradient (a device array), by :func:`row_norms`, :func:`label_groups`,
    :func:`distance_tiles`, :func:`mine_anchor_rows`, :func:`triplet_finish` and, with
    ``grad``, :func:`gradient_rows` (and :func:`copy_rows` into ``grad_out``). ``labels``
    may be a host array (copied to the device). Nothing is read back."""
    dtype = np.dtype(embeddings.dtype)
    if dtype not in (np.float32, np.float64):
        _embeddings(np.empty((0, 0), dtype))  # the host path's TypeError for integers
        raise TypeError(f"embeddings on the device must be float32 or float64, got {dtype}")
    _embeddings(np.broadcast_to(np.zeros((), dtype), embeddings.shape))  # its shape checks, no values
    metric_code = METRICS.index(check_choice(metric, "metric", METRICS))
    strategy_code = STRATEGIES.index(check_choice(strategy, "strategy", STRATEGIES))
    check_options(reduction, grad, TRIPLET_REDUCTIONS)
    margin = check_option("batch_triplet_loss", "margin", margin)
    soft_margin = check_bool(soft_margin, "soft_margin")
    if is_device_array(labels):
        y = to_device(labels)
        as_index_array(np.empty(0, y.dtype), "labels")  # its dtype: integers
    else:
        y = np.asarray(labels)
        y = to_device(as_index_array(y if y.size else y.astype(np.intp), "labels"))  # [] is float to NumPy
    _check_labels_shape(y.shape, embeddings.shape[0])
    n, dim = embeddings.shape
    if grad and grad_out is not None:
        if not is_device_array(grad_out):
            raise TypeError(f"grad_out must be a device array for a device input, got {type(grad_out).__name__}")
        grad_out = to_device(grad_out)
        if grad_out.shape != embeddings.shape:
            raise ValueError(f"grad_out has shape {grad_out.shape}; expected the input's shape {embeddings.shape}")
        if np.dtype(grad_out.dtype) != dtype:
            raise TypeError(f"grad_out has dtype {grad_out.dtype}; the gradient is computed in {dtype}")
    g = _scalar_grad_output(grad_output) if grad else None
    value = cuda.device_array(1, dtype)
    gradient = (cuda.device_array(embeddings.shape, dtype) if grad_out is None else grad_out) if grad else None
    if n == 0:
        value.copy_to_device(np.zeros(1, dtype))
        return (value.reshape(()), gradient) if grad else value.reshape(())
    x = embeddings
    sq = cuda.device_array(n, np.float64)
    inv_norm = cuda.device_array(n, np.float64)
    blocks, _ = grid(n, 1)  # a block per row, up to the grid's cap
    row_norms[blocks, threads_for(dim)](x, sq, inv_norm, NORMALIZE_EPS)
    group_start = cuda.device_array(n, np.int64)
    group_size = cuda.device_array(n, np.int64)
    order = cuda.device_array(n, np.int64)
    label_groups[grid(n)](y, group_start, group_size, order)
    dist = cuda.device_array((n, n), dtype)
    tiles = -(-n // _SPAN)
    distance_tiles[(tiles, tiles), (_TILE, _TILE)](x, sq, inv_norm, metric_code, dist)
    weights = cuda.device_array((n, n), dtype)
    used = cuda.device_array((n, n), np.bool_)
    chosen = cuda.device_array((n, n) if strategy_code == _SEMI_HARD else (0, 0), np.int64)
    loss = cuda.device_array(n, np.float64)
    nonzero = cuda.device_array(n, np.float64)
    terms = cuda.device_array(n, np.float64)
    mine_anchor_rows[n, threads_for(n)](dist, y, group_start, group_size, order, metric_code, strategy_code,
                                      float(margin), soft_margin, reduction == "mean_nonzero", weights, used, chosen,
                                      loss, nonzero, terms)
    scale = cuda.device_array(1, np.float64)
    reduction_code = TRIPLET_REDUCTIONS.index(reduction)
    triplet_finish[1, threads_for(n)](loss, nonzero, terms, reduction_code, g if grad else to_device(np.ones(1)), value,
                                   scale)
    if not grad:
        return value.reshape(())
    target = cuda.device_array(embeddings.shape, dtype) if grad_out is not None else gradient
    gradient_rows[blocks, threads_for(dim)](x, weights, used, inv_norm, metric_code, NORMALIZE_EPS, scale, target)
    if grad_out is not None:  # written apart, then copied: grad_out may be the embeddings, read by every row
        copy_rows[grid(n * dim)](target, grad_out)
    return value.reshape(()), gradient


def _signatures(dtype):
    """The kernels' argument types for ``dtype`` embeddings and int64 labels."""
    f64, i64, x = types.float64, types.int64, dtype[:, :]
    return [(row_norms, (x, f64[:], f64[:], f64)),
            (label_groups, (i64[:], i64[:], i64[:], i64[:])),
            (distance_tiles, (x, f64[:], f64[:], i64, x)),
            (mine_anchor_rows, (x, i64[:], i64[:], i64[:], i64[:], i64, i64, f64, types.boolean, types.boolean, x,
                                types.boolean[:, :], i64[:, :], f64[:], f64[:], f64[:])),
            (triplet_finish, (f64[:], f64[:], f64[:], i64, f64[:], dtype[:], f64[:])),
            (gradient_rows, (x, x, types.boolean[:, :], f64[:], i64, f64, f64[:], x)),
            (copy_rows, (x, x))]


#: (kernel, argument types) pairs that ``bench/gpu.py --compile`` compiles to PTX.
PTX_SIGNATURES = _signatures(types.float32) + _signatures(types.float64)
