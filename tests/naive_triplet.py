"""Slow, obviously-right references for fastloss.triplet (small batches only).

Distances are taken from explicit differences, triplets are enumerated with loops or
B^3 masks, and the loss is composed of torch operations so that torch autograd gives
the reference gradient. The definitions are the API contract's, restated:
batch_hard per anchor (largest d_ap, smallest d_an, first index on ties); batch_all
over every valid triplet; semi_hard per ordered positive pair (smallest d_an > d_ap,
else the largest d_an), anchors without a positive or a negative left out.
"""
import numpy as np
import torch


def distances(x, metric):
    """(B, B) distances of the rows of the torch tensor ``x``, differentiable off the diagonal."""
    if metric == "cosine":
        n = torch.nn.functional.normalize(x, dim=1, eps=1e-12)
        return 1 - n @ n.T
    diff = x[:, None, :] - x[None, :, :]
    sq = (diff * diff).sum(-1)
    if metric == "squared_euclidean":
        return sq
    eye = torch.eye(x.shape[0], dtype=x.dtype)
    return torch.sqrt(sq + eye) * (1 - eye)  # sqrt(0) has no derivative; the diagonal is never used


def pair_distance(x, a, j, metric):
    """d(x_a, x_j) of the torch tensor ``x`` from that pair's own rows (their difference, or
    each normalised for cosine), so that autograd reaches only the pairs a term uses: a NaN
    or inf elsewhere in the batch stays out of this term's gradient, as out of its value."""
    if metric == "cosine":
        normalize = torch.nn.functional.normalize
        return 1 - (normalize(x[a], dim=0, eps=1e-12) * normalize(x[j], dim=0, eps=1e-12)).sum()
    diff = x[a] - x[j]
    sq = (diff * diff).sum()
    return sq if metric == "squared_euclidean" else torch.sqrt(sq)


def _term(x, margin, soft):
    # relu: derivative 0 where the hinge is exactly 0 (pytorch-metric-learning's convention)
    return torch.nn.functional.softplus(x) if soft else torch.relu(margin + x)


def _first_arg(values, candidates, best):
    """The first candidate index (ascending) whose value is best (max or min)."""
    pick = None
    for j in candidates:
        if pick is None or (values[j] > values[pick] if best == "max" else values[j] < values[pick]):
            pick = j
    return pick


def triplet_terms(x, labels, strategy, margin, metric, soft):
    """The strategy's loss terms (a 1-D torch tensor) for embeddings ``x`` (torch, requires_grad ok)."""
    labels = np.asarray(labels)
    b = len(labels)
    with torch.no_grad():
        dv = distances(x, metric).numpy()  # what the mining compares

    def d(a, j):
        return pair_distance(x, a, j, metric)

    terms = []
    for a in range(b):
        pos = [p for p in range(b) if labels[p] == labels[a] and p != a]
        neg = [j for j in range(b) if labels[j] != labels[a]]
        if not pos or not neg:
            continue
        if strategy == "batch_hard":
            p = _first_arg(dv[a], pos, "max")
            n = _first_arg(dv[a], neg, "min")
            terms.append(_term(d(a, p) - d(a, n), margin, soft))
        elif strategy == "semi_hard":
            for p in pos:
                outside = [j for j in neg if dv[a, j] > dv[a, p]]
                n = _first_arg(dv[a], outside, "min") if outside else _first_arg(dv[a], neg, "max")
                terms.append(_term(d(a, p) - d(a, n), margin, soft))
        else:
            for p in pos:
                for n in neg:
                    terms.append(_term(d(a, p) - d(a, n), margin, soft))
    return terms


def batch_triplet_loss(x, labels, strategy, margin, metric, soft, reduction):
    """Reduced loss (torch scalar): the sum of the terms over their number (every term for
    "mean", the positive ones for "mean_nonzero", 1 for "sum"); 0 with no term.

    Only the terms that add to the sum enter the graph: a hinge at or below 0 (value 0,
    derivative 0: relu's convention) and, for "mean_nonzero", a NaN term (left out, as
    pytorch-metric-learning's ``losses > 0`` mask leaves it out) stay out of autograd, so
    that a NaN or inf distance in them puts no 0 * inf = NaN into the gradient. A NaN term
    otherwise counts, with relu's derivative 1 at NaN."""
    terms = triplet_terms(x, labels, strategy, margin, metric, soft)
    summed = [t for t in terms if (t.detach() > 0 if reduction == "mean_nonzero" else not t.detach() <= 0)]
    total = torch.stack(summed).sum() if summed else x[:0].sum()  # 0, in the graph
    count = {"sum": 1, "mean": len(terms), "mean_nonzero": len(summed)}[reduction]
    return total / count if count else total * 0


def tfa_semihard_value(x, labels, margin, metric):
    """TensorFlow Addons' ``triplet_semihard_loss`` transcribed into NumPy: its tiled
    B^2 x B mask, masked minimum and maximum, and mean over every positive pair."""
    pdist = distances(torch.tensor(x), metric).numpy()
    labels = np.asarray(labels).reshape(-1, 1)
    b = labels.shape[0]
    adjacency = labels == labels.T
    adjacency_not = ~adjacency
    pdist_tile = np.tile(pdist, (b, 1))
    mask = np.tile(adjacency_not, (b, 1)) & (pdist_tile > pdist.T.reshape(-1, 1))
    mask_final = (mask.astype(np.float64).sum(1, keepdims=True) > 0).reshape(b, b).T

    def masked_minimum(data, m):
        top = data.max(1, keepdims=True)
        return ((data - top) * m).min(1, keepdims=True) + top

    def masked_maximum(data, m):
        low = data.min(1, keepdims=True)
        return ((data - low) * m).max(1, keepdims=True) + low

    negatives_outside = masked_minimum(pdist_tile, mask.astype(np.float64)).reshape(b, b).T
    negatives_inside = np.tile(masked_maximum(pdist, adjacency_not.astype(np.float64)), (1, b))
    semi_hard = np.where(mask_final, negatives_outside, negatives_inside)
    loss_mat = margin + pdist - semi_hard
    mask_positives = adjacency.astype(np.float64) - np.eye(b)
    return np.maximum(loss_mat * mask_positives, 0).sum() / mask_positives.sum()


def mined_triplets(x, labels, type_of_triplets, margin, metric):
    """TripletMarginMiner's definition by a B^3 loop on explicit distances (for "easy" too)."""
    d = distances(torch.tensor(x), metric).numpy()
    labels = np.asarray(labels)
    out = []
    for a in range(len(labels)):
        for p in range(len(labels)):
            if p == a or labels[p] != labels[a]:
                continue
            for n in range(len(labels)):
                if labels[n] == labels[a]:
                    continue
                delta = d[a, n] - d[a, p]
                keep = {"all": delta <= margin, "hard": delta <= 0 and delta <= margin,
                        "semihard": 0 < delta <= margin, "easy": delta > margin}[type_of_triplets]
                if keep:
                    out.append((a, p, n))
    return tuple(np.array(c, np.int64) for c in zip(*out)) if out else tuple(np.zeros(0, np.int64) for _ in "apn")
