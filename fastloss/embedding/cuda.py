r"""The GPU kernels of :mod:`fastloss.embedding`, in the ``numba.cuda`` dialect:
``cosine_embedding_loss``, ``triplet_margin_loss``, ``triplet_margin_with_distance_loss``
(its named distances) and ``contrastive_loss``.

One kernel serves the four, as on the CPU: :func:`embedding_pair_rows`, one block per
row of (N, D) inputs. The block's threads stride over the row's features and reduce its
dot products, norms and distances in shared memory (:func:`block_sum`, :func:`block_max`);
then, every read of the row behind those reductions' barriers, each thread writes the
gradients of its own features, so that ``grad_out`` may be the first input itself. Each
step is the CPU kernel's (:mod:`fastloss.embedding.cpu`: torch's backward formulas, branch
by branch), in float64, stored in the input's dtype.

Shapes covered: inputs of one shape (any number of dimensions, the features on the last
axis), and labels of the rows' shape or of one element. Inputs that broadcast against
each other (a (1, D) input against (N, D), a single feature against D) raise TypeError
here; the CPU path takes them.
"""
from __future__ import annotations

import math

import numpy as np

from .._core.cuda import is_device_array, new_flag, to_device
from .._core.cuda_blocks import block_max, block_sum, cuda
from .._core.cuda_rows import THREADS, device_floats, device_scale, gradient_rows, raise_flagged, reduced, rows_of
from .._core.reduction import check_options
from .._core.validation import as_target_array, check_bool, check_option, check_shape
from . import _distance_function, check_cosine_label_shape, check_pair_shapes, check_rank, check_triplet_width
from .cpu import _SIMILARITY_EPS, CONTRASTIVE, COSINE, COSINE_EMBEDDING_EPS, TRIPLET

# ---------------------------------------------------------------- device functions
# Every float is taken to float64 first (np.float64 also keeps the simulator's scalars
# NumPy's, whose division by zero gives inf as the GPU's does, not Python's exception).


@cuda.jit(device=True)
def shifted(x, y, eps):
    """(x - y) + eps, in that order (as the CPU's ``_shifted_difference``)."""
    return (np.float64(x) - np.float64(y)) + eps


@cuda.jit(device=True)
def sgn(x):
    """torch.sgn of a real: 1, -1, or 0 for 0 and NaN."""
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


@cuda.jit(device=True)
def clamp_min0(x):
    """torch.clamp_min(x, 0): NaN passes."""
    return 0.0 if x < 0 else x


@cuda.jit(device=True)
def lp_norm(buffer, u, v, n, eps, p):
    """torch.linalg.vector_norm(u[n] - v[n] + eps, p), every thread gets it: the CPU's
    ``_norm`` (the count of nonzero entries for p = 0, the largest or smallest |entry| for
    p = +-inf with NaN propagated, |entry| of a single feature for every p but 0)."""
    width = u.shape[1]
    if width == 1 and p != 0:
        return abs(shifted(u[n, 0], v[n, 0], eps))
    if math.isinf(p):
        top = -math.inf  # the largest of |entry| (p = inf) or of -|entry| (p = -inf)
        for i in range(cuda.threadIdx.x, width, cuda.blockDim.x):
            a = abs(shifted(u[n, i], v[n, i], eps))
            key = a if p > 0 else -a
            top = key if (top == top and (key != key or key > top)) else top
        top = block_max(buffer, top)
        return top if p > 0 else -top
    total = 0.0
    for i in range(cuda.threadIdx.x, width, cuda.blockDim.x):
        a = abs(shifted(u[n, i], v[n, i], eps))
        if p == 2:
            total += a * a
        elif p == 1:
            total += a
        elif p == 0:
            total += 1.0 if a != 0 else 0.0
        else:
            total += a ** p
    total = block_sum(buffer, total)
    if p == 2:
        return np.float64(math.sqrt(total))
    if p == 1 or p == 0:
        return total
    return total ** (1.0 / p)


@cuda.jit(device=True)
def norm_factor(buffer, u, v, n, eps, p, d, c):
    """The per-row part of torch's norm backward for d = lp_norm(...) and incoming gradient
    c (the CPU's ``_norm_backward_factor``)."""
    if p == 0 or p == 1 or p == 2:
        return c
    if math.isinf(p):  # c / (the number of entries at the extreme |entry|, or NaN)
        count = 0.0
        for i in range(cuda.threadIdx.x, u.shape[1], cuda.blockDim.x):
            a = abs(shifted(u[n, i], v[n, i], eps))
            count += 1.0 if (a == d or a != a) else 0.0
        return c / block_sum(buffer, count)
    if p < 1:
        return d ** (1.0 - p)
    return c / d ** (p - 1.0) if d != 0 else 0.0


@cuda.jit(device=True)
def norm_backward(p, w, d, c, r):
    """Entry w's gradient of c * ||row||_p, d the norm and r :func:`norm_factor` (the CPU's
    ``_norm_backward``, branch by branch)."""
    if p == 2:
        return c * (w / d if d != 0 else 0.0)
    if p == 1:
        return sgn(w) * c
    if p == 0:
        return 0.0
    if math.isinf(p):
        return sgn(w) * (r * (1.0 if (abs(w) == d or w != w) else 0.0))
    if p < 1:
        return sgn(w) * (abs(w) ** (p - 1.0) if w != 0 else 0.0) * c * r
    if p < 2:
        return sgn(w) * abs(w) ** (p - 1.0) * r
    return w * abs(w) ** (p - 2.0) * r


@cuda.jit(device=True)
def hinge(margin, d_ap, d_an, d_pn, swap, s):
    """torch's triplet hinge clamp_min(margin + d_ap - minimum(d_an, d_pn), 0) (d_pn only
    with ``swap``) and the gradients of s times it by d_ap, d_an, d_pn (the CPU's ``_hinge``:
    clamp_min passes where its input is >= 0, minimum propagates NaN and halves a tie)."""
    d_neg = d_an
    if swap:
        d_neg = d_an if (d_an != d_an or not (d_pn < d_an)) else d_pn
    h = margin + d_ap - d_neg
    c = s if h >= 0 else 0.0
    if not swap:
        return clamp_min0(h), c, -c, 0.0
    g = -c / 2.0 if d_an == d_pn else -c
    return clamp_min0(h), c, (0.0 if d_an > d_pn else g), (0.0 if d_an < d_pn else g)


@cuda.jit(device=True)
def similarity_norm(buffer, u, n):
    """(||u[n]||_2, max(||u[n]||_2, 1e-8)): torch's cosine_similarity clamps each norm (NaN passes)."""
    if u.shape[1] == 1:
        norm = abs(np.float64(u[n, 0]))
    else:
        total = 0.0
        for i in range(cuda.threadIdx.x, u.shape[1], cuda.blockDim.x):
            x = np.float64(u[n, i])
            total += x * x
        norm = np.float64(math.sqrt(block_sum(buffer, total)))
    return norm, (_SIMILARITY_EPS if norm < _SIMILARITY_EPS else norm)


@cuda.jit(device=True)
def cosine_sum(buffer, u, v, n, ku, kv):
    """sum_i (u_i / ku)(v_i / kv) of row n: torch's cosine_similarity after its norms are
    clamped (the CPU's ``_cosine_sum``)."""
    cos = 0.0
    for i in range(cuda.threadIdx.x, u.shape[1], cuda.blockDim.x):
        cos += (np.float64(u[n, i]) / ku) * (np.float64(v[n, i]) / kv)
    return block_sum(buffer, cos)


@cuda.jit(device=True)
def cosine_norm_grads(buffer, u, v, n, ku, kv, g):
    """The gradients of g * :func:`cosine_sum` by the clamped norms ku and kv, as torch's
    division backward sums them (the CPU's ``_similarity_norm_grads``)."""
    g_ku = 0.0
    g_kv = 0.0
    for i in range(cuda.threadIdx.x, u.shape[1], cuda.blockDim.x):
        a = np.float64(u[n, i]) / ku
        b = np.float64(v[n, i]) / kv
        g_ku -= (g * b) * (a / ku)
        g_kv -= (g * a) * (b / kv)
    return block_sum(buffer, g_ku), block_sum(buffer, g_kv)


@cuda.jit(device=True)
def similarity_grad(g, g_kx, x, y, nx, kx, ky):
    """Entry x's gradient of g * cosine_similarity (y the other's entry): the division's
    term, then the norm backward of ||x|| (the clamp has no gradient in torch)."""
    return (g * (y / ky)) / kx + g_kx * (x / nx if nx != 0 else 0.0)


@cuda.jit(device=True)
def triplet_row(buffer, a, b, c, n, margin, p, eps, swap, s, want_grad, ga, gb, gc):
    """Row n's triplet hinge on L_p distances and, if ``want_grad``, its three gradient rows
    (the CPU's ``_triplet_row``). Returns the loss."""
    d_ap = lp_norm(buffer, a, b, n, eps, p)
    d_an = lp_norm(buffer, a, c, n, eps, p)
    d_pn = lp_norm(buffer, b, c, n, eps, p) if swap else d_an
    loss, c_ap, c_an, c_pn = hinge(margin, d_ap, d_an, d_pn, swap, s)
    if not want_grad:
        return loss
    r_ap = norm_factor(buffer, a, b, n, eps, p, d_ap, c_ap)
    r_an = norm_factor(buffer, a, c, n, eps, p, d_an, c_an)
    r_pn = norm_factor(buffer, b, c, n, eps, p, d_pn, c_pn) if swap else r_an
    cuda.syncthreads()  # a single feature is read by every thread, without a reduction's barrier
    for i in range(cuda.threadIdx.x, a.shape[1], cuda.blockDim.x):
        x, y, z = a[n, i], b[n, i], c[n, i]
        e_ap = norm_backward(p, shifted(x, y, eps), d_ap, c_ap, r_ap)
        e_an = norm_backward(p, shifted(x, z, eps), d_an, c_an, r_an)
        g_y = -e_ap
        g_z = -e_an
        if swap:
            e_pn = norm_backward(p, shifted(y, z, eps), d_pn, c_pn, r_pn)
            g_y += e_pn
            g_z -= e_pn
        ga[n, i] = e_ap + e_an
        gb[n, i] = g_y
        gc[n, i] = g_z
    return loss


@cuda.jit(device=True)
def triplet_cosine_row(buffer, a, b, c, n, margin, swap, s, want_grad, ga, gb, gc):
    """Row n's triplet hinge on the cosine distance 1 - cosine_similarity (torch's, eps
    1e-8), as :func:`triplet_row` (the CPU's ``_triplet_cosine_row``)."""
    na, ka = similarity_norm(buffer, a, n)
    nb, kb = similarity_norm(buffer, b, n)
    nc, kc = similarity_norm(buffer, c, n)
    cos_ap = cosine_sum(buffer, a, b, n, ka, kb)
    cos_an = cosine_sum(buffer, a, c, n, ka, kc)
    cos_pn = cosine_sum(buffer, b, c, n, kb, kc) if swap else cos_an
    loss, c_ap, c_an, c_pn = hinge(margin, 1.0 - cos_ap, 1.0 - cos_an, 1.0 - cos_pn, swap, s)
    if not want_grad:
        return loss
    g_ap, g_an, g_pn = -c_ap, -c_an, -c_pn  # d = 1 - cos
    ap_a, ap_b = cosine_norm_grads(buffer, a, b, n, ka, kb, g_ap)
    an_a, an_c = cosine_norm_grads(buffer, a, c, n, ka, kc, g_an)
    pn_b, pn_c = cosine_norm_grads(buffer, b, c, n, kb, kc, g_pn) if swap else (0.0, 0.0)
    for i in range(cuda.threadIdx.x, a.shape[1], cuda.blockDim.x):
        x, y, z = np.float64(a[n, i]), np.float64(b[n, i]), np.float64(c[n, i])
        g_x = similarity_grad(g_ap, ap_a, x, y, na, ka, kb)
        g_x += similarity_grad(g_an, an_a, x, z, na, ka, kc)
        g_y = similarity_grad(g_ap, ap_b, y, x, nb, kb, ka)
        g_z = similarity_grad(g_an, an_c, z, x, nc, kc, ka)
        if swap:
            g_y += similarity_grad(g_pn, pn_b, y, z, nb, kb, kc)
            g_z += similarity_grad(g_pn, pn_c, z, y, nc, kc, kb)
        ga[n, i] = g_x
        gb[n, i] = g_y
        gc[n, i] = g_z
    return loss


@cuda.jit(device=True)
def cosine_embedding_row(buffer, a, b, n, y, margin, s, want_grad, ga, gb):
    """torch's cosine_embedding_loss of row n (the CPU's ``_cosine_embedding_row`` for
    inputs of one shape): 1 - cos where y == 1, clamp_min(cos - margin, 0) where y == -1,
    0 for any other y, with cos = a.b / sqrt((|a|^2 + 1e-12)(|b|^2 + 1e-12))."""
    prod = 0.0
    m_a = 0.0
    m_b = 0.0
    for i in range(cuda.threadIdx.x, a.shape[1], cuda.blockDim.x):
        u, v = np.float64(a[n, i]), np.float64(b[n, i])
        prod += u * v
        m_a += u * u
        m_b += v * v
    prod = block_sum(buffer, prod)
    m_a = block_sum(buffer, m_a) + COSINE_EMBEDDING_EPS
    m_b = block_sum(buffer, m_b) + COSINE_EMBEDDING_EPS
    denom = np.float64(math.sqrt(m_a * m_b))
    cos = prod / denom
    loss = (1.0 - cos if y == 1 else 0.0) + (clamp_min0(cos - margin) if y == -1 else 0.0)
    if not want_grad:
        return loss
    g_cos = (-s if y == 1 else 0.0) + (s if (y == -1 and cos - margin >= 0) else 0.0)
    g_prod = g_cos / denom
    g_denom = -g_cos * (cos / denom)
    g_m = g_denom / (denom + denom)  # of m_a * m_b, through the sqrt
    g_ma = g_m * m_b
    g_mb = g_m * m_a
    for i in range(cuda.threadIdx.x, a.shape[1], cuda.blockDim.x):
        u, v = np.float64(a[n, i]), np.float64(b[n, i])
        ga[n, i] = g_prod * v + (g_ma * u + g_ma * u)
        gb[n, i] = g_prod * u + (g_mb * v + g_mb * v)
    return loss


@cuda.jit(device=True)
def contrastive_row(buffer, a, b, n, y, margin, s, want_grad, ga, gb):
    """y d^2 + (1 - y) clamp_min(margin - d, 0)^2 of row n, d = ||a - b||_2, and its gradient
    by torch's backward of that composition (the CPU's ``_contrastive_row``)."""
    d = lp_norm(buffer, a, b, n, 0.0, 2.0)
    gap = clamp_min0(margin - d)
    loss = y * (d * d) + (1.0 - y) * (gap * gap)
    if not want_grad:
        return loss
    g_gap = (s * (1.0 - y)) * (2.0 * gap) if margin - d >= 0 else 0.0
    g_d = (s * y) * (2.0 * d) - g_gap
    cuda.syncthreads()  # a single feature is read by every thread, without a reduction's barrier
    for i in range(cuda.threadIdx.x, a.shape[1], cuda.blockDim.x):
        e = norm_backward(2.0, shifted(a[n, i], b[n, i], 0.0), d, g_d, g_d)
        ga[n, i] = e
        gb[n, i] = -e
    return loss


# ---------------------------------------------------------------- the kernel


@cuda.jit
def embedding_pair_rows(kind, a, b, c, target, t_stride, margin, p, eps, swap, unit, scale, stride, loss, ga, gb,
                        gc, want_grad, flag):
    """Row n = blockIdx.x's embedding loss over (N, D) rows ``a``, ``b`` (and ``c``).

    ``kind`` as the CPU kernel :func:`fastloss.embedding.cpu.embedding_pair_rows`: COSINE,
    CONTRASTIVE, TRIPLET (L_p distances ||u - v + eps||_p, ``swap``) or TRIPLET_COSINE.
    The label is ``target[n * t_stride]``; the gradients are multiplied by grad_output
    ``scale[n * stride] * unit``. A contrastive label other than 0 and 1 makes the row
    NaN and flags it. Row n of ``ga`` may be row n of ``a`` (see the module docstring).
    """
    buffer = cuda.shared.array(THREADS, np.float64)
    n = cuda.blockIdx.x
    y = np.float64(target[n * t_stride])
    s = np.float64(scale[n * stride]) * unit if want_grad else 0.0
    m = np.float64(margin)
    if kind == CONTRASTIVE and y != 0 and y != 1:  # the same for the whole block
        for i in range(cuda.threadIdx.x, a.shape[1] if want_grad else 0, cuda.blockDim.x):
            ga[n, i] = math.nan
            gb[n, i] = math.nan
        if cuda.threadIdx.x == 0:
            loss[n] = math.nan
            cuda.atomic.min(flag, 0, n)
        return
    if kind == COSINE:
        value = cosine_embedding_row(buffer, a, b, n, y, m, s, want_grad, ga, gb)
    elif kind == CONTRASTIVE:
        value = contrastive_row(buffer, a, b, n, y, m, s, want_grad, ga, gb)
    elif kind == TRIPLET:
        value = triplet_row(buffer, a, b, c, n, m, np.float64(p), np.float64(eps), swap, s, want_grad, ga, gb,
                            gc)
    else:
        value = triplet_cosine_row(buffer, a, b, c, n, m, swap, s, want_grad, ga, gb, gc)
    if cuda.threadIdx.x == 0:
        loss[n] = value


# ---------------------------------------------------------------- entry points


def _inputs(names, values, ranks=None, broadcast=False):
    """The inputs on the device, in the first one's dtype, checked as the CPU path checks
    them (:func:`fastloss.embedding.check_pair_shapes`); TypeError for shapes that differ
    (broadcast), which only the CPU path covers."""
    first = device_floats(values[0], names[0])
    check_rank(names[0], tuple(first.shape), ranks)
    arrays = [first] + [device_floats(v, name, first.dtype) for name, v in zip(names[1:], values[1:])]
    shapes = [tuple(a.shape) for a in arrays]
    check_pair_shapes(names, shapes, broadcast)
    if any(shape != shapes[0] for shape in shapes):
        raise TypeError(f"{', '.join(names)} have shapes {', '.join(map(str, shapes))}: on the GPU the inputs must "
                        f"have one shape (broadcasting them is covered by the CPU path only)")
    return arrays


def _labels(target, loss_shape, dtype):
    """One label per row on the device, and its stride over the rows (0: one label for all);
    ``target`` of the rows' shape or of one element (TypeError for another broadcast)."""
    if is_device_array(target):
        y = to_device(target)
        if np.dtype(y.dtype).kind not in "fiub":
            raise TypeError(f"target must be a numeric array, got dtype {y.dtype}")
    else:
        y = to_device(as_target_array(target, "target", dtype))
    size = math.prod(tuple(y.shape))
    if size == 1:
        return rows_of(y, 1, 1, "target").reshape(1), 0
    n_rows = math.prod(loss_shape)
    if size != n_rows or tuple(y.shape) != tuple(loss_shape):
        raise TypeError(f"target of shape {tuple(y.shape)} against rows of shape {tuple(loss_shape)}: on the GPU the "
                        f"labels must have the rows' shape or one element (broadcasting them is covered by the CPU "
                        f"path only)")
    return rows_of(y, n_rows, 1, "target").reshape(n_rows), 1


def _run_pairs(kind, inputs, labels, params, reduction, grad, grad_output, grad_out, fail=None):
    """Lay out the rows, launch :func:`embedding_pair_rows` (one block per row), reduce on
    the device: as the CPU's :func:`fastloss.embedding._run_pairs` for inputs of one shape.
    ``labels``: (device labels, stride), or None (the triplets)."""
    x = inputs[0]
    dtype = np.dtype(x.dtype)
    shape = tuple(x.shape)
    loss_shape = shape[:-1]
    n_rows, width = math.prod(loss_shape), (shape[-1] if shape else 1)  # a 0-d input is one feature
    rows = [rows_of(a, n_rows, width, name) for a, name in zip(inputs, ("input", "second input", "third input"))]
    target, t_stride = labels if labels is not None else (cuda.device_array(1, dtype), 0)
    loss = cuda.device_array(n_rows, dtype)
    flag = new_flag(n_rows)
    none = cuda.device_array((1, 1), dtype)  # what the kernel is given for no gradient
    if grad:
        scale, stride, unit = device_scale(reduction, grad_output, loss_shape, n_rows, dtype)
        buffers = [gradient_rows(grad_out, x, dtype, n_rows, width, (*inputs[1:], target, scale))]
        buffers += [gradient_rows(None, a, dtype, n_rows, width) for a in inputs[1:]]
        views = [view for _, view in buffers] + [none]
    else:
        scale, stride, unit = cuda.device_array(1, dtype), 0, 1.0
        views = [none] * 3
    margin, p, eps, swap = params
    if n_rows:
        embedding_pair_rows[n_rows, THREADS](kind, rows[0], rows[1], rows[-1], target, t_stride, dtype.type(margin),
                                             dtype.type(p), dtype.type(eps), swap, unit, scale, stride, loss,
                                             views[0], views[1], views[2], grad, flag)
    if fail is not None:
        raise_flagged(flag, n_rows, fail)
    result = reduced(loss, reduction, loss_shape, n_rows)
    return (result, tuple(array for array, _ in buffers)) if grad else result


def cosine_embedding_loss(input1, input2, target, margin=0.0, *, reduction="mean", grad=False, grad_output=None,
                          grad_out=None, backend=None):
    """:func:`fastloss.cosine_embedding_loss` of device inputs of one shape: checks as the
    CPU path, the kernel :func:`embedding_pair_rows` (COSINE), the reduction
    :func:`fastloss.margin.cuda.sum_rows`."""
    check_options(reduction, grad)
    margin = check_option("cosine_embedding_loss", "margin", margin)
    x1, x2 = _inputs(("input1", "input2"), (input1, input2), (1, 2), broadcast=True)
    shape = tuple(x1.shape)
    if not is_device_array(target):
        target = as_target_array(target, "target", x1.dtype)
    check_cosine_label_shape(tuple(target.shape), shape, shape)
    labels = _labels(target, shape[:-1], x1.dtype)
    return _run_pairs(COSINE, (x1, x2), labels, (margin, 1.0, 1.0, False), reduction, grad, grad_output, grad_out)


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False, *, reduction="mean",
                        grad=False, grad_output=None, grad_out=None, backend=None):
    """:func:`fastloss.triplet_margin_loss` of device inputs of one shape: checks as the CPU
    path, the kernel :func:`embedding_pair_rows` (TRIPLET), the reduction
    :func:`fastloss.margin.cuda.sum_rows`."""
    check_options(reduction, grad)
    margin = check_option("triplet_margin_loss", "margin", margin)
    p = check_option("triplet_margin_loss", "p", p)
    eps = check_option("triplet_margin_loss", "eps", eps)
    swap = check_bool(swap, "swap")
    inputs = _inputs(("anchor", "positive", "negative"), (anchor, positive, negative), broadcast=True)
    check_triplet_width([tuple(a.shape) for a in inputs], p)
    return _run_pairs(TRIPLET, inputs, None, (margin, p, eps, swap), reduction, grad, grad_output, grad_out)


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0, swap=False,
                                      reduction="mean", grad=False, grad_output=None, grad_out=None, backend=None):
    """:func:`fastloss.triplet_margin_with_distance_loss` of device inputs of one shape with a
    named distance (None, "euclidean", "cosine"): the kernel :func:`embedding_pair_rows`
    (TRIPLET or TRIPLET_COSINE), the reduction :func:`fastloss.margin.cuda.sum_rows`. A
    Python callable cannot run on the GPU: TypeError."""
    if callable(distance_function):
        raise TypeError("distance_function is a Python callable, which cannot run on the GPU: use "
                        "distance_function=None, 'euclidean' or 'cosine', or pass host arrays")
    check_options(reduction, grad)
    margin = check_option("triplet_margin_with_distance_loss", "margin", margin)
    swap = check_bool(swap, "swap")
    kind, p, eps = _distance_function(distance_function, grad)
    inputs = _inputs(("anchor", "positive", "negative"), (anchor, positive, negative), broadcast=True)
    check_triplet_width([tuple(a.shape) for a in inputs], 2.0)
    return _run_pairs(kind, inputs, None, (margin, p, eps, swap), reduction, grad, grad_output, grad_out)


def contrastive_loss(input1, input2, target, margin=1.0, reduction="mean", *, grad=False, grad_output=None,
                     grad_out=None, backend=None):
    """:func:`fastloss.contrastive_loss` of device inputs: checks as the CPU path, the kernel
    :func:`embedding_pair_rows` (CONTRASTIVE), the reduction
    :func:`fastloss.margin.cuda.sum_rows`. A label other than 0 and 1 in a device target is
    found by the kernel: the CPU path's ValueError after the flag's one read."""
    check_options(reduction, grad)
    margin = check_option("contrastive_loss", "margin", margin)
    x1, x2 = _inputs(("input1", "input2"), (input1, input2), (1, 2))
    dtype = np.dtype(x1.dtype)
    rows_shape = tuple(x1.shape)[:-1]
    if is_device_array(target):
        check_shape(tuple(target.shape), rows_shape, "target", f"input of shape {tuple(x1.shape)} (one label per row)")
    else:
        y = as_target_array(target, "target", dtype)
        check_shape(y.shape, rows_shape, "target", f"input of shape {tuple(x1.shape)} (one label per row)")
        bad = ~np.isin(y, (0, 1))
        if bad.any():
            raise ValueError(f"target must hold only 0 and 1; found {y[bad].flat[0]}")
    labels = _labels(target, rows_shape, dtype)

    def fail(row):
        raise ValueError(f"target must hold only 0 and 1; found {dtype.type(labels[0][row * labels[1]])}")

    return _run_pairs(CONTRASTIVE, (x1, x2), labels, (margin, 2.0, 0.0, False), reduction, grad, grad_output,
                      grad_out, fail)


#: (kernel, signature) of the kernel, for a compile-only check (PTX) without a GPU.
PTX_SIGNATURES = [
    (embedding_pair_rows, f"void(int64, {f}[:, :], {f}[:, :], {f}[:, :], {f}[:], int64, {f}, {f}, {f}, boolean, "
                          f"float64, {f}[:], int64, {f}[:], {f}[:, :], {f}[:, :], {f}[:, :], boolean, int64[:])")
    for f in ("float32", "float64")
]
