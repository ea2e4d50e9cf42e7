r"""The GPU kernels of :mod:`fastloss.extras`, in the ``numba.cuda`` dialect:
``large_margin_cosine_loss`` (CosFace), ``anchor_loss`` and ``dice_loss``.

* CosFace: :func:`normalize_rows` (one block per row) gives the unit features and the
  class weights times ``s``; :func:`matmul_tiles` (shared-memory tiles) their product, the
  (N, C) scaled cosines; :func:`cosface_rows` (one block per row) shifts the target's by
  ``s m`` and turns the row into its cross-entropy and, in place, its gradient G; two more
  products give G (s W) and G^T F, and :func:`normalize_rows_backward` takes them
  through the normalisations. Unlike the CPU path, which never holds the (N, C) logits
  whole, this one does (N x C in the input's dtype).
* Anchor loss: :func:`anchor_rows`, one block per row.
* Dice: :func:`soft_dice_sums` (one thread per position, block sums per class added to
  (N, C) float64 sums with atomics), :func:`dice_rows` (the per-sample loss and the
  gradient's coefficients), :func:`soft_dice_grad` (one thread per position). The
  gradient kernel computes the probabilities again from the logits instead of storing
  them: one read of the input less than storing and reading them back, and nothing is
  written before the targets are known to be valid, so ``grad_out`` may be the input.

Arithmetic in float64, results stored in the input's dtype; class indices and binary
targets are checked in the kernels (the flag), as in :mod:`fastloss.margin.cuda`.
"""
from __future__ import annotations

import math

import numpy as np

from .._core.cuda import is_device_array, new_flag, to_device
from .._core.cuda_blocks import block_max, block_sum, cuda
from .._core.cuda_rows import (
    THREADS,
    device_floats,
    device_indices,
    device_scale,
    gradient_rows,
    index_error,
    raise_flagged,
    reduced,
)
from .._core.numerics import NORMALIZE_EPS
from .._core.reduction import check_options
from .._core.validation import (
    as_index_array,
    as_target_array,
    check_choice,
    check_class_indices,
    check_option,
    check_shape,
)
from . import _check_dice_targets

#: The side of matmul_tiles' square tiles: the largest power of two whose square fits a block.
TILE = 2 ** (int(math.log2(THREADS)) // 2)

# ---------------------------------------------------------------- device functions


@cuda.jit(device=True)
def sigmoid(x):
    """(sigmoid(x), exp(-|x|)) without overflow for either sign (the CPU's ``_sigmoid_row``)."""
    e = np.float64(math.exp(-abs(x)))
    q = 1.0 / (1.0 + e)
    return (q if x >= 0 else e * q), e


@cuda.jit(device=True)
def log(x):
    """math.log with the GPU's results where the simulator's Python raises: -inf at 0, NaN below."""
    return np.float64(math.log(x)) if x > 0 else (-math.inf if x == 0 else math.nan)


# ---------------------------------------------------------------- CosFace kernels


@cuda.jit
def normalize_rows(x, scale, unit, norms):
    """unit[n] = scale * x[n] / max(||x[n]||, 1e-12) and norms[n] the clamped norm, row n =
    blockIdx.x (the CPU's :func:`fastloss.extras.cpu.normalize_rows`)."""
    buffer = cuda.shared.array(THREADS, np.float64)
    n = cuda.blockIdx.x
    total = 0.0
    for i in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
        v = np.float64(x[n, i])
        total += v * v
    norm = max(np.float64(math.sqrt(block_sum(buffer, total))), NORMALIZE_EPS)
    if cuda.threadIdx.x == 0:
        norms[n] = norm
    factor = scale / norm
    for i in range(cuda.threadIdx.x, x.shape[1], cuda.blockDim.x):
        unit[n, i] = np.float64(x[n, i]) * factor


@cuda.jit
def normalize_rows_backward(unit, norms, scale, g, out):
    """out[n] = scale (g[n] - u (u . g[n])) / norms[n], u = unit[n] / scale, or scale g[n] /
    norms[n] where the norm was clamped: the gradient through x / max(||x||, eps) times
    ``scale`` (the CPU's :func:`fastloss.extras.cpu.normalize_rows_backward`)."""
    buffer = cuda.shared.array(THREADS, np.float64)
    n = cuda.blockIdx.x
    norm = norms[n]
    radial = 0.0
    for i in range(cuda.threadIdx.x, unit.shape[1], cuda.blockDim.x):
        radial += (np.float64(unit[n, i]) / scale) * np.float64(g[n, i])
    radial = block_sum(buffer, radial) if norm > NORMALIZE_EPS else 0.0
    factor = scale / norm
    for i in range(cuda.threadIdx.x, unit.shape[1], cuda.blockDim.x):
        out[n, i] = (np.float64(g[n, i]) - (np.float64(unit[n, i]) / scale) * radial) * factor


@cuda.jit
def matmul_tiles(a, b, out, transpose_a, transpose_b):
    """out = op(a) @ op(b), op a transpose where asked, with TILE x TILE blocks: each block
    computes a tile of ``out``, staging tiles of both operands in shared memory (float64
    sums); reads outside the operands give 0, never an out-of-bounds load."""
    tile_a = cuda.shared.array((TILE, TILE), np.float64)
    tile_b = cuda.shared.array((TILE, TILE), np.float64)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty
    col = cuda.blockIdx.x * TILE + tx
    inner = a.shape[0] if transpose_a else a.shape[1]
    total = 0.0
    for start in range(0, inner, TILE):
        k = start + tx  # the column of op(a) this thread stages
        if transpose_a:
            tile_a[ty, tx] = a[k, row] if (row < out.shape[0] and k < inner) else 0.0
        else:
            tile_a[ty, tx] = a[row, k] if (row < out.shape[0] and k < inner) else 0.0
        k = start + ty  # the row of op(b) this thread stages
        if transpose_b:
            tile_b[ty, tx] = b[col, k] if (col < out.shape[1] and k < inner) else 0.0
        else:
            tile_b[ty, tx] = b[k, col] if (col < out.shape[1] and k < inner) else 0.0
        cuda.syncthreads()
        for j in range(TILE):
            total += tile_a[ty, j] * tile_b[j, tx]
        cuda.syncthreads()
    if row < out.shape[0] and col < out.shape[1]:
        out[row, col] = total


@cuda.jit
def cosface_rows(logits, target, margin, scale, stride, unit, loss, want_grad, flag):
    """Row n = blockIdx.x of the (N, C) scaled cosines: the target's shifted by ``margin``
    (s m), loss = logsumexp - logit_t, and if ``want_grad`` the row overwritten by its
    gradient G = (softmax - onehot) times grad_output ``scale[n * stride] * unit``. A
    target outside [0, C) makes the row NaN and flags it."""
    buffer = cuda.shared.array(THREADS, np.float64)
    n = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    n_classes = logits.shape[1]
    t = target[n]
    if t < 0 or t >= n_classes:
        for j in range(tid, n_classes, cuda.blockDim.x):
            logits[n, j] = math.nan
        if tid == 0:
            loss[n] = math.nan
            cuda.atomic.min(flag, 0, n)
        return
    target_logit = np.float64(logits[n, t]) - margin
    top = -math.inf
    for j in range(tid, n_classes, cuda.blockDim.x):
        v = target_logit if j == t else np.float64(logits[n, j])
        top = v if (top == top and (v != v or v > top)) else top
    top = block_max(buffer, top)
    total = 0.0
    for j in range(tid, n_classes, cuda.blockDim.x):
        total += np.float64(math.exp((target_logit if j == t else np.float64(logits[n, j])) - top))
    total = block_sum(buffer, total)  # every read of logits[n, t] is behind this barrier
    log_total = log(total)
    if tid == 0:
        loss[n] = log_total + top - target_logit
    if want_grad:
        s = np.float64(scale[n * stride]) * unit
        for j in range(tid, n_classes, cuda.blockDim.x):
            v = target_logit if j == t else np.float64(logits[n, j])
            logits[n, j] = (np.float64(math.exp(v - top)) / total - (1.0 if j == t else 0.0)) * s


# ---------------------------------------------------------------- anchor loss


@cuda.jit
def anchor_rows(logits, target, gamma_pos, gamma_neg, slack, scale, stride, unit, loss, grad, want_grad, flag):
    """Anchor loss of row n = blockIdx.x of (N, C) logits, as the CPU's
    :func:`fastloss.extras.cpu.anchor_rows` (Ryou et al.'s reference): p = sigmoid(x),
    q_pos = max(p_t - slack, 0), q_neg = min(max_{c != t} p_c + slack, 1), held constant;
    loss = sum_c (modulating factor) * BCE; gradient times ``scale[n * stride] * unit``.
    Each thread writes the gradient of its own classes after reading them (x_t, which every
    thread reads, is read before the reductions' barriers). A target outside [0, C) makes
    the row NaN and flags it."""
    buffer = cuda.shared.array(THREADS, np.float64)
    n = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    n_classes = logits.shape[1]
    t = target[n]
    if t < 0 or t >= n_classes:
        for c in range(tid, n_classes if want_grad else 0, cuda.blockDim.x):
            grad[n, c] = math.nan
        if tid == 0:
            loss[n] = math.nan
            cuda.atomic.min(flag, 0, n)
        return
    sl = np.float64(slack)
    p_t = sigmoid(np.float64(logits[n, t]))[0]
    # The reference's max of p times the non-target mask: at least 0, NaN if any p is.
    top = 0.0
    for c in range(tid, n_classes, cuda.blockDim.x):
        p = sigmoid(np.float64(logits[n, c]))[0]
        v = p if c != t else p * 0.0
        top = v if (top == top and (v != v or v > top)) else top
    top = block_max(buffer, top)
    q_neg = min(top + sl, 1.0)  # NaN passes, as torch's clamp
    q_pos = max(p_t - sl, 0.0) if p_t == p_t else p_t
    # A NaN anchor makes the reference's factor NaN in every column, masked by a multiplication by 0.
    poison = 0.0
    if (gamma_pos != 0 and q_neg != q_neg) or (gamma_neg != 0 and q_pos != q_pos):
        poison = q_neg + q_pos
    s = (np.float64(scale[n * stride]) * unit if want_grad else 0.0) + poison
    total = 0.0
    for c in range(tid, n_classes, cuda.blockDim.x):
        x = np.float64(logits[n, c])
        p, e = sigmoid(x)
        is_target = c == t
        y = 1.0 if is_target else poison
        bce = (1.0 - y) * x + (max(-x, poison) + np.float64(math.log1p(e)))
        base = 1.0 - p + q_neg if is_target else 1.0 + p - q_pos
        gamma = np.float64(gamma_pos if is_target else gamma_neg)
        factor = np.float64(math.exp(gamma * log(base))) if gamma != 0 else 1.0
        total += factor * bce
        if want_grad:
            dbase = -p * (1.0 - p) if is_target else p * (1.0 - p)
            dfactor = gamma * factor / base * dbase if gamma != 0 else poison
            grad[n, c] = s * (dfactor * bce + factor * (p - y))
    total = block_sum(buffer, total)
    if tid == 0:
        loss[n] = total


# ---------------------------------------------------------------- Dice


@cuda.jit(device=True)
def softmax_scale(x, n, k, binary):
    """(top, norm) of position k of sample n: the largest logit over the classes and 1 / sum
    exp(logit - top), as the CPU's ``_softmax_into`` (nothing for the binary form)."""
    if binary:
        return 0.0, 0.0
    top = np.float64(x[n, 0, k])
    for c in range(1, x.shape[1]):
        v = np.float64(x[n, c, k])
        top = v if v > top else top
    total = 0.0
    for c in range(x.shape[1]):
        total += np.float64(math.exp(np.float64(x[n, c, k]) - top))
    return top, 1.0 / total


@cuda.jit(device=True)
def probability(x, n, k, c, binary, top, norm):
    """p of class c at position k of sample n: the sigmoid of the one logit (binary) or the
    softmax given :func:`softmax_scale`'s (top, norm)."""
    if binary:
        return sigmoid(np.float64(x[n, 0, k]))[0]
    return np.float64(math.exp(np.float64(x[n, c, k]) - top)) * norm


@cuda.jit
def soft_dice_sums(x, labels, soft, binary, inter, total, flag):
    """Per (sample, class): sums of p y and of p + y over the positions, added to the
    float64 ``inter`` and ``total`` (N, C), which start at 0. One thread per position of
    (N, C, K) logits ``x``, blocks of ``blockDim.x`` positions of one sample (the grid's
    blocks: N times the blocks per sample); per class a block sum, then one atomic add.
    Targets: ``soft`` (N, K) in [0, 1] (binary, C = 1) or class indices ``labels`` (N, K);
    they are compared, never used as indices, and the first bad one's flat position flagged."""
    buffer = cuda.shared.array(THREADS, np.float64)
    n_pos = x.shape[2]
    per_sample = (n_pos + cuda.blockDim.x - 1) // cuda.blockDim.x
    n = cuda.blockIdx.x // per_sample
    k = (cuda.blockIdx.x - n * per_sample) * cuda.blockDim.x + cuda.threadIdx.x
    inside = k < n_pos
    top, norm = softmax_scale(x, n, k, binary) if inside else (0.0, 0.0)
    if inside:
        target = np.float64(soft[n, k]) if binary else np.float64(labels[n, k])
        bad = (target < 0 or target > 1) if binary else (target < 0 or target >= x.shape[1])
        if bad:
            cuda.atomic.min(flag, 0, n * n_pos + k)
    for c in range(x.shape[1]):
        overlap = 0.0
        both = 0.0
        if inside:
            p = probability(x, n, k, c, binary, top, norm)
            y = np.float64(soft[n, k]) if binary else (1.0 if labels[n, k] == c else 0.0)
            overlap = p * y
            both = p + y
        overlap = block_sum(buffer, overlap)
        both = block_sum(buffer, both)
        if cuda.threadIdx.x == 0:
            cuda.atomic.add(inter, (n, c), overlap)
            cuda.atomic.add(total, (n, c), both)


@cuda.jit
def dice_rows(inter, total, smooth, scale, stride, unit, loss, coef, offset, want_grad):
    """Sample n (one thread each): loss = 1 - mean_c (2 I + smooth) / (S + smooth) and, if
    ``want_grad``, d loss / d p = coef[n, c] y + offset[n, c] times grad_output
    ``scale[n * stride] * unit``, coef = -2 / (C A), offset = (2 I + smooth) / (C A^2),
    A = S + smooth (the CPU's dice_loss, after its sums)."""
    n = cuda.grid(1)
    if n >= loss.shape[0]:
        return
    n_classes = inter.shape[1]
    s = np.float64(scale[n * stride]) * unit if want_grad else 0.0
    mean = 0.0
    for c in range(n_classes):
        denominator = total[n, c] + smooth
        mean += (2.0 * inter[n, c] + smooth) / denominator
        if want_grad:
            coef[n, c] = -2.0 * s / (n_classes * denominator)
            offset[n, c] = s * (2.0 * inter[n, c] + smooth) / (n_classes * denominator * denominator)
    loss[n] = 1.0 - mean / n_classes


@cuda.jit
def soft_dice_grad(x, labels, soft, binary, coef, offset, grad):
    """The gradient of the soft Dice loss by the (N, C, K) logits, one thread per position
    as :func:`soft_dice_sums`: d loss / d p = coef y + offset through the sigmoid (binary)
    or the softmax over C, the probabilities computed again from ``x`` (a thread reads its
    position's logits before it writes their gradient: ``grad`` may be ``x``)."""
    n_pos = x.shape[2]
    per_sample = (n_pos + cuda.blockDim.x - 1) // cuda.blockDim.x
    n = cuda.blockIdx.x // per_sample
    k = (cuda.blockIdx.x - n * per_sample) * cuda.blockDim.x + cuda.threadIdx.x
    if k >= n_pos:
        return
    if binary:
        p = sigmoid(np.float64(x[n, 0, k]))[0]
        grad[n, 0, k] = (coef[n, 0] * np.float64(soft[n, k]) + offset[n, 0]) * p * (1.0 - p)
        return
    top, norm = softmax_scale(x, n, k, binary)
    label = labels[n, k]
    dot = 0.0
    for c in range(x.shape[1]):
        dot += probability(x, n, k, c, binary, top, norm) * ((coef[n, c] if label == c else 0.0) + offset[n, c])
    for c in range(x.shape[1]):
        p = probability(x, n, k, c, binary, top, norm)
        grad[n, c, k] = p * ((coef[n, c] if label == c else 0.0) + offset[n, c] - dot)


# ---------------------------------------------------------------- entry points


def large_margin_cosine_loss(features, weight, target, s=64.0, m=0.35, reduction="mean", *, grad=False,
                             grad_output=None, grad_out=None, backend=None):
    """:func:`fastloss.large_margin_cosine_loss` (CosFace) of device arrays: checks as the CPU
    path; the kernels :func:`normalize_rows` (twice), :func:`matmul_tiles` (the cosines),
    :func:`cosface_rows`, and with ``grad`` :func:`matmul_tiles` twice more and
    :func:`normalize_rows_backward` twice; the reduction :func:`fastloss.margin.cuda.sum_rows`.
    A target outside [0, C) raises the CPU path's ValueError after the flag's one read."""
    check_options(reduction, grad)
    s = check_option("large_margin_cosine_loss", "s", s)
    m = check_option("large_margin_cosine_loss", "m", m)
    f = device_floats(features, "features")
    shape = tuple(f.shape)
    if len(shape) != 2:
        raise ValueError(f"features must be (N, D), got shape {shape}")
    w = device_floats(weight, "weight", f.dtype)
    if len(w.shape) != 2 or w.shape[1] != shape[1] or w.shape[0] == 0:
        raise ValueError(f"weight must be (C, D) with D = {shape[1]} and C >= 1, got shape {tuple(w.shape)}")
    dtype = np.dtype(f.dtype)
    (n, width), n_classes = shape, w.shape[0]
    t = _class_targets(target, n, n_classes, f"features of shape {shape} (one class per row)")
    f_unit = cuda.device_array(shape, dtype)
    f_norms = cuda.device_array(n, np.float64)
    w_unit = cuda.device_array((n_classes, width), dtype)
    w_norms = cuda.device_array(n_classes, np.float64)
    logits = cuda.device_array((n, n_classes), dtype)
    loss = cuda.device_array(n, dtype)
    flag = new_flag(n)
    scale, stride, unit = device_scale(reduction, grad_output, (n,), n, dtype) if grad else (loss, 0, 1.0)
    normalize_rows[n_classes, THREADS](w, s, w_unit, w_norms)  # s folded into the class weights
    if n:
        normalize_rows[n, THREADS](f, 1.0, f_unit, f_norms)
        _matmul(f_unit, w_unit, logits, False, True)
        cosface_rows[n, THREADS](logits, t, s * m, scale, stride, unit, loss, grad, flag)
    raise_flagged(flag, n, index_error(t, n_classes))
    result = reduced(loss, reduction, (n,), n)
    if not grad:
        return result
    # logits now holds G, the gradient by the scaled cosines: by f_unit it is G (s W_unit), by
    # s W_unit G^T f_unit (0 for an empty batch: a product over nothing).
    g_f, g_f_rows = gradient_rows(grad_out, f, dtype, n, width, (w, t))
    g_w_unit = cuda.device_array((n_classes, width), dtype)
    g_w = cuda.device_array((n_classes, width), dtype)
    _matmul(logits, f_unit, g_w_unit, True, False)
    normalize_rows_backward[n_classes, THREADS](w_unit, w_norms, s, g_w_unit, g_w)
    if n:
        g_f_unit = cuda.device_array(shape, dtype)
        _matmul(logits, w_unit, g_f_unit, False, False)
        normalize_rows_backward[n, THREADS](f_unit, f_norms, 1.0, g_f_unit, g_f_rows)
    return result, (g_f, g_w)


def _matmul(a, b, out, transpose_a, transpose_b):
    """Launch :func:`matmul_tiles` over ``out``'s tiles."""
    rows, cols = out.shape
    matmul_tiles[((cols + TILE - 1) // TILE, (rows + TILE - 1) // TILE), (TILE, TILE)](a, b, out, transpose_a,
                                                                                        transpose_b)


def _class_targets(target, n_rows, n_classes, what):
    """One class index per row on the device, (N,): a host target checked whole first, with
    the CPU path's errors; a device target's values are checked by the kernels."""
    if is_device_array(target):
        t = device_indices(target, "target")
        check_shape(tuple(t.shape), (n_rows,), "target", what)
        return t
    host = as_index_array(target, "target")
    check_shape(host.shape, (n_rows,), "target", what)
    check_class_indices(host, n_classes, "target")
    return to_device(host)


def anchor_loss(input, target, gamma=0.5, slack=0.05, reduction="mean", *, anchor="neg", grad=False,
                grad_output=None, grad_out=None, backend=None):
    """:func:`fastloss.anchor_loss` of device arrays: checks as the CPU path, the kernel
    :func:`anchor_rows` (one block per row), the reduction :func:`fastloss.margin.cuda.sum_rows`.
    A target outside [0, C) raises the CPU path's ValueError after the flag's one read."""
    check_options(reduction, grad)
    gamma = check_option("anchor_loss", "gamma", gamma)
    slack = check_option("anchor_loss", "slack", slack)
    check_choice(anchor, "anchor", ("neg", "pos"))
    x = device_floats(input, "input")
    shape = tuple(x.shape)
    if len(shape) != 2 or shape[1] == 0:
        raise ValueError(f"input must be (N, C) logits, got shape {shape}")
    dtype = np.dtype(x.dtype)
    n, n_classes = shape
    t = _class_targets(target, n, n_classes, f"input of shape {shape} (one class per row)")
    gamma_pos, gamma_neg = (gamma, 0.0) if anchor == "pos" else (0.0, gamma)
    loss = cuda.device_array(n, dtype)
    flag = new_flag(n)
    if grad:
        scale, stride, unit = device_scale(reduction, grad_output, (n,), n, dtype)
        result_grad, grad_rows = gradient_rows(grad_out, x, dtype, n, n_classes, (t, scale))
    else:
        scale, stride, unit = loss, 0, 1.0
        grad_rows = cuda.device_array((1, 1), dtype)
    if n:
        anchor_rows[n, THREADS](x, t, dtype.type(gamma_pos), dtype.type(gamma_neg), dtype.type(slack), scale, stride,
                                unit, loss, grad_rows, grad, flag)
    raise_flagged(flag, n, index_error(t, n_classes))
    result = reduced(loss, reduction, (n,), n)
    return (result, result_grad) if grad else result


def dice_loss(input, target, smooth=1.0, *, reduction="mean", grad=False, grad_output=None, grad_out=None,
              backend=None):
    """:func:`fastloss.dice_loss` of device arrays, binary or multi-class as the CPU path
    chooses: the kernels :func:`soft_dice_sums`, :func:`dice_rows` and, with ``grad``,
    :func:`soft_dice_grad`; the reduction :func:`fastloss.margin.cuda.sum_rows`. A target
    out of range raises the CPU path's ValueError after the flag's one read, before any
    gradient is written."""
    check_options(reduction, grad)
    smooth = check_option("dice_loss", "smooth", smooth)
    x = device_floats(input, "input")
    shape = tuple(x.shape)
    if len(shape) < 1:
        raise ValueError("input must have a batch axis: (N, ...) or (N, C, ...)")
    dtype = np.dtype(x.dtype)
    n = shape[0]
    on_device = is_device_array(target)
    t = to_device(target) if on_device else np.asarray(target)
    t_shape = tuple(t.shape)
    binary = not (np.dtype(t.dtype).kind in "iu" and len(t_shape) == len(shape) - 1)
    if binary:
        if not on_device:
            t = as_target_array(t, "target", dtype)
        elif np.dtype(t.dtype).kind not in "fiub":
            raise TypeError(f"target must be a numeric array, got dtype {t.dtype}")
        check_shape(t_shape, shape, "target", "input (binary targets have the input's shape)")
        n_classes = 1
    else:
        if len(shape) < 2 or shape[1] == 0:
            raise ValueError(f"multi-class input must be (N, C, ...) with C >= 1, got shape {shape}")
        if not on_device:
            t = as_index_array(t, "target")
        check_shape(t_shape, (n,) + shape[2:], "target", f"input of shape {shape}")
        n_classes = shape[1]
    if not on_device:
        _check_dice_targets(t, binary, n_classes)  # the CPU path's error, before any launch
        t = to_device(t)
    n_pos = math.prod(shape) // max(n * n_classes, 1)
    x3 = _view(x, (n, n_classes, n_pos), "input")
    targets = _view(t, (n, n_pos), "target")
    # The kernels take both kinds of target; the one unused is a placeholder.
    labels, soft = ((cuda.device_array((1, 1), np.int64), targets) if binary
                    else (targets, cuda.device_array((1, 1), dtype)))
    inter = cuda.to_device(np.zeros((n, n_classes)))  # the atomics' starting sums: (N, C), small
    total = cuda.to_device(np.zeros((n, n_classes)))
    flag = new_flag(n * n_pos)
    blocks = n * ((n_pos + THREADS - 1) // THREADS)
    if blocks:
        soft_dice_sums[blocks, THREADS](x3, labels, soft, binary, inter, total, flag)

    def fail(position):  # the CPU path's message, from the one bad target copied to the host
        bad = targets[position // n_pos, position % n_pos]
        _check_dice_targets(np.array([bad]), binary, n_classes)

    raise_flagged(flag, n * n_pos, fail)
    loss = cuda.device_array(n, dtype)
    if grad:
        scale, stride, unit = device_scale(reduction, grad_output, (n,), n, dtype)
        coef = cuda.device_array((n, n_classes))
        offset = cuda.device_array((n, n_classes))
    else:
        scale, stride, unit = loss, 0, 1.0
        coef = offset = inter
    if n:
        dice_rows[(n + THREADS - 1) // THREADS, THREADS](inter, total, smooth, scale, stride, unit, loss, coef, offset,
                                                         grad)
    result = reduced(loss, reduction, (n,), n)
    if not grad:
        return result
    result_grad, _ = gradient_rows(grad_out, x, dtype, 1, math.prod(shape), (t,))
    if blocks:
        soft_dice_grad[blocks, THREADS](x3, labels, soft, binary, coef, offset,
                                        _view(result_grad, (n, n_classes, n_pos), "grad_out"))
    return result, result_grad


def _view(array, shape, name):
    """``array`` as ``shape`` without a copy (TypeError for a non-contiguous device array)."""
    if tuple(array.shape) == tuple(shape):
        return array
    if not array.is_c_contiguous():
        raise TypeError(f"{name} is a non-contiguous device array of shape {tuple(array.shape)}; the GPU kernels "
                        f"take it as {tuple(shape)}: pass a contiguous array")
    return array.reshape(*shape)


#: (kernel, signature) of every kernel here, for a compile-only check (PTX) without a GPU.
PTX_SIGNATURES = [
    (kernel, f"void({signature})")
    for f in ("float32", "float64")
    for kernel, signature in (
        (normalize_rows, f"{f}[:, :], float64, {f}[:, :], float64[:]"),
        (normalize_rows_backward, f"{f}[:, :], float64[:], float64, {f}[:, :], {f}[:, :]"),
        (matmul_tiles, f"{f}[:, :], {f}[:, :], {f}[:, :], boolean, boolean"),
        (cosface_rows, f"{f}[:, :], int64[:], float64, {f}[:], int64, float64, {f}[:], boolean, int64[:]"),
        (anchor_rows, f"{f}[:, :], int64[:], {f}, {f}, {f}, {f}[:], int64, float64, {f}[:], {f}[:, :], boolean, "
                      f"int64[:]"),
        (soft_dice_sums, f"{f}[:, :, :], int64[:, :], {f}[:, :], boolean, float64[:, :], float64[:, :], int64[:]"),
        (dice_rows, f"float64[:, :], float64[:, :], float64, {f}[:], int64, float64, {f}[:], float64[:, :], "
                    f"float64[:, :], boolean"),
        (soft_dice_grad, f"{f}[:, :, :], int64[:, :], {f}[:, :], boolean, float64[:, :], float64[:, :], "
                         f"{f}[:, :, :]"),
    )
]
