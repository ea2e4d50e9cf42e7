r"""Classification losses: cross-entropy and its relatives, value and gradient fused.

Layers, as in the rest of fastloss: row kernels (Numba, parallel over rows), then
thin wrappers that validate, lay the arrays out for the kernels without copying, and
reduce. A class-dimension input (N, C, d1, ..., dk) is viewed as (N, K, C) rows with
K = d1 * ... * dk; a kernel reads each row of C logits once from memory and keeps it
in cache for its passes (max, sum of exp, gradient).

The softmax kernel serves cross-entropy (weights, ignore_index, label smoothing), the
focal loss and the chunks of :func:`linear_cross_entropy` (whose logits come from BLAS,
a chunk of rows at a time) with one formula. With :math:`\mathrm{nll}_t = -\log p_t`, class
weight (or focal alpha) :math:`w`, smoothing :math:`\varepsilon` over :math:`C`
classes and focal exponent :math:`\gamma`, the loss of one row is

.. math::

    \ell = (1 - \varepsilon)\, w_t\, (1 - p_t)^\gamma\, \mathrm{nll}_t
           + \frac{\varepsilon}{C} \sum_c w_c\, (-\log p_c)

and its gradient with respect to the logits is
:math:`\partial\ell/\partial x_c = A\,p_c - B\,[c = t] - \frac{\varepsilon}{C} w_c` with
:math:`B = (1 - \varepsilon) w_t g`, :math:`A = B + \frac{\varepsilon}{C}\sum_c w_c` and
:math:`g = (1 - p_t)^\gamma - \gamma\, p_t (1 - p_t)^{\gamma - 1} \log p_t` (Lin et al.
2017; ``g = 1`` for ``gamma = 0``).
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from .._core import blas
from .._core.backends import select
from .._core.elementwise import elementwise_loss
from .._core.layout import class_rows, class_rows_undo
from .._core.reduction import REDUCTIONS, check_options, divides_itself, finish, keeps_losses
from .._core.table import LOSSES
from .._core.tail import EMPTY, KernelTail
from .._core.threads import max_threads
from .._core.validation import (
    as_class_weight,
    as_float_array,
    as_index_array,
    as_target_array,
    check_bool,
    check_broadcast,
    check_class_indices,
    check_integer,
    check_option,
    check_shape,
    class_constant,
    class_index_error,
)
from .cpu import _BCE, _BCE_LOGITS, _BCE_LOGITS_POS_WEIGHT, _KL_DIV, _SIGMOID_FOCAL, block_state

if TYPE_CHECKING:
    from typing import Any, Literal

    from numpy.typing import NDArray

    from .._typing import ArrayLike, Backend, FloatArray, Grad2, Grad3, Loss, Reduction, WithGrad

# ---------------------------------------------------------------- wrappers

def _class_input(input, name="input"):
    """Validated logits or log-probs: (N, C, d...) or unbatched (C,)."""
    x = as_float_array(input, name)
    if x.ndim == 0:
        raise ValueError(f"{name} must have a class dimension: (C,), (N, C) or (N, C, d1, ...); got a scalar")
    n_classes = x.shape[0] if x.ndim == 1 else x.shape[1]
    if n_classes == 0:
        raise ValueError(f"{name} has shape {x.shape}: zero classes")
    return x, n_classes


def _loss_shape(x):
    """Shape of the unreduced loss of class input ``x``: the input without its class axis."""
    return () if x.ndim == 1 else (x.shape[0],) + x.shape[2:]


def _class_targets(target, x, loss_shape):
    """Class-index targets of the right shape (their values are checked by the kernels)."""
    t = as_index_array(target, "target")
    if t.shape != loss_shape:
        check_shape(t.shape, loss_shape, "target", f"input of shape {x.shape} (class indices drop the class axis)")
    return t


def _run_rows(kernel, x, loss_shape, reduction, grad, grad_output, grad_out, args, denominator=None,
              targets=None, *, backend):
    """Call a row kernel over ``x``'s class rows, in the :class:`~fastloss._core.tail.KernelTail`.

    ``kernel`` names the row kernel, which ``backend`` (a :class:`~fastloss._core.backends.Backend`)
    holds under that name. With ``targets`` (class indices, ``(t, n_classes, ignore_index)``)
    the kernel checks them, computes the mean's denominator itself and returns
    ``(total, bad position, denominator)``; otherwise it returns the total.
    """
    kernel = getattr(backend.kernels("classification"), kernel)
    tail = KernelTail(reduction, grad, grad_output, loss_shape, x.dtype, 1.0 if targets else denominator)
    grad_rows = tail.gradient(x, grad_out, args, view=(class_rows, class_rows_undo), rank=3)
    if targets is None:
        return tail.result(kernel(class_rows(x), *args, tail.scale, tail.losses, grad_rows, grad))
    total, bad, denominator = kernel(class_rows(x), *args, tail.scale, divides_itself(reduction), tail.losses,
                                     grad_rows, grad)
    if bad >= 0:
        t, n_classes, name, ignore_index = targets
        raise class_index_error(t, bad, n_classes, name, ignore_index)
    return tail.result(total, denominator)


# Below this many logits a call runs on the calling thread (see the serial kernel).
SERIAL_BELOW = 1 << 14


def softmax_options(n_classes, weight, weighted_mean, ignore_index, smoothing, gamma, dtype):
    """The options of :func:`softmax_cross_entropy_rows` after its targets: ``(weight,
    smooth_weight, weighted_mean, weight_sum, keep, spread, gamma, ignore_index)``."""
    smooth_weight = weight if smoothing else class_constant(0.0, n_classes, dtype)  # the kernel's docstring says why
    weight_sum = float(smooth_weight.sum(dtype=np.float64)) if smoothing else 1.0
    return (weight, smooth_weight, weighted_mean, weight_sum, 1.0 - smoothing, smoothing / n_classes, gamma,
            ignore_index)


def softmax_kernel(size):
    """The name of the class-target softmax kernel for ``size`` logits."""
    return "softmax_cross_entropy_rows_serial" if size < SERIAL_BELOW else "softmax_cross_entropy_rows"


def _softmax_class_loss(x, loss_shape, n_classes, t, weight, weighted_mean, ignore_index, smoothing, gamma,
                        reduction, grad, grad_output, grad_out, backend):
    args = (_target_rows(t), *softmax_options(n_classes, weight, weighted_mean, ignore_index, smoothing, gamma,
                                               x.dtype))
    kernel = softmax_kernel(x.size)
    return _run_rows(kernel, x, loss_shape, reduction, grad, grad_output, grad_out, args,
                     targets=(t, n_classes, "target", ignore_index), backend=backend)


#: cross_entropy's options, checked, by the key of :func:`_common_cross_entropy`'s call.
_COMMON_OPTIONS: dict = {}
#: Ones by dtype, sliced for the scale of :func:`_common_cross_entropy` (the kernels only read it).
_ONES: dict = {}
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_INT64 = np.dtype(np.int64)


def _common_cross_entropy(x, t, ignore_index, reduction, smoothing, grad):
    """:func:`cross_entropy`'s most common call, with a tenth of its Python: (N, C) logits
    and (N,) class indices, C-contiguous float32 or float64 and int64 arrays, options by
    value (no class weights, ``grad_output`` or ``grad_out``), outside
    :func:`~fastloss._core.reduction.in_parts`. The same kernel call as the general path
    (:func:`_softmax_class_loss`), so the same bits; its options are checked and laid out
    once per key (dtype, classes, options). Returns None where the call is not that case,
    an option is bad or a target is out of range: the general path then runs, and raises
    what it raises. A 256x10 call with its gradient took 16.5 µs through the general path and
    11.9 µs here.
    """
    if (x.ndim != 2 or t.ndim != 1 or t.dtype is not _INT64 or x.dtype not in _FLOATS or t.shape[0] != x.shape[0]
            or not x.flags.c_contiguous or not t.flags.c_contiguous or type(ignore_index) is not int
            or type(smoothing) not in (float, int) or type(reduction) is not str or (grad is not True and grad is not False)
            or reduction != "none" and keeps_losses(reduction)):  # within in_parts
        return None
    n, n_classes = x.shape
    if n == 0:
        return None
    key = (x.dtype, n_classes, ignore_index, reduction, smoothing, grad)
    options = _COMMON_OPTIONS.get(key)
    if options is None:
        if n_classes == 0 or reduction not in REDUCTIONS:
            return None
        try:
            smoothing = check_option("cross_entropy", "label_smoothing", smoothing)
            check_integer(ignore_index, "ignore_index")
        except (TypeError, ValueError):
            return None
        if len(_COMMON_OPTIONS) >= 256:
            _COMMON_OPTIONS.clear()
        options = _COMMON_OPTIONS[key] = softmax_options(n_classes, class_constant(1.0, n_classes, x.dtype), True,
                                                         ignore_index, smoothing, 0.0, x.dtype)
    losses = np.empty(n, x.dtype)
    if grad:
        ones = _ONES.get(x.dtype)
        if ones is None or ones.shape[0] < n:
            ones = _ONES[x.dtype] = np.ones(max(n, 1024), x.dtype)
        scale, d_x = ones[:n], np.empty((n, 1, n_classes), x.dtype)
    else:
        scale, d_x = EMPTY[x.dtype, 1], EMPTY[x.dtype, 3]
    kernel = getattr(select("cross_entropy", None).kernels("classification"), softmax_kernel(x.size))
    total, bad, denominator = kernel(x.reshape(n, 1, n_classes), t.reshape(n, 1), *options, scale,
                                     reduction == "mean", losses, d_x, grad)
    if bad >= 0:
        return None
    value = finish(total, losses, reduction, denominator, x.dtype)
    return (value, d_x.reshape(n, n_classes)) if grad else value


def _target_rows(t):
    """Class-index targets (N, d...) or () as (N, K), matching :func:`class_rows`."""
    if t.ndim == 1:
        return t[:, None]
    return t.reshape(1, 1) if t.ndim == 0 else t.reshape(t.shape[0], int(np.prod(t.shape[1:], dtype=np.int64)))


def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None, *, ignore_index: int = -100,
                  reduction: Reduction = "mean", label_smoothing: float = 0.0, grad: bool = False,
                  grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
                  backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Cross-entropy between logits and class indices or class probabilities, as
    ``torch.nn.functional.cross_entropy``.

    .. math::

        \ell_i = -\sum_c w_c\, q_{ic} \log \frac{e^{x_{ic}}}{\sum_j e^{x_{ij}}},
        \qquad q_i = (1 - \varepsilon)\, y_i + \varepsilon / C

    with :math:`y_i` the one-hot class (or the given probabilities). For class
    targets, "mean" divides by :math:`\sum_i w_{t_i}` over the elements that are not
    ``ignore_index`` (NaN when all are ignored); for probabilities it divides by the
    number of elements. Wraps the parallel kernels
    :func:`softmax_cross_entropy_rows` and :func:`softmax_cross_entropy_soft_rows`:
    one read of each logit row, value and gradient in the same pass.

    Parameters
    ----------
    input : array (N, C), (N, C, d1, ..., dk) or (C,)
        Unnormalised logits; ``-inf`` masks a class.
    target : int array (N, d1, ..., dk) / () or float array shaped like ``input``
        Class indices, or class probabilities.
    weight : array (C,), optional
        Per-class rescaling.
    ignore_index : int
        Class-index targets equal to it contribute nothing. Probability targets take
        none: a value >= 0 raises ValueError, as torch raises.
    reduction : {"mean", "sum", "none"}
    label_smoothing : float in [0, 1]
    grad : bool
        Also return the gradient with respect to ``input``: ``(loss, grad)``.
    grad_output : scalar or array shaped like the unreduced loss, optional
        Multiplies the gradient (the incoming gradient of a backward pass).
    grad_out : array shaped like ``input``, optional
        Where to write the gradient; may be ``input`` itself.
    backend : {"numba", "cython"}, optional
        Which kernels run the call; default ``FASTLOSS_BACKEND``, else Numba when it
        can be imported (see :mod:`fastloss._core.backends`). Every loss of this module takes it.

    References
    ----------
    PyTorch ``torch.nn.CrossEntropyLoss``; Szegedy et al., "Rethinking the Inception
    Architecture" (2016) for label smoothing.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> logits = np.array([[2.0, 0.5, -1.0]], np.float32)
    >>> loss, g = fastloss.cross_entropy(logits, np.array([0]), grad=True)
    >>> round(float(loss), 4)
    0.2413
    """
    if (type(input) is np.ndarray and type(target) is np.ndarray and weight is None and grad_output is None
            and grad_out is None and backend is None):
        result = _common_cross_entropy(input, target, ignore_index, reduction, label_smoothing, grad)
        if result is not None:
            return result
    check_options(reduction, grad)
    impl = select("cross_entropy", backend)
    smoothing = check_option("cross_entropy", "label_smoothing", label_smoothing)
    ignore_index = check_integer(ignore_index, "ignore_index")
    x, n_classes = _class_input(input)
    weight = as_class_weight(weight, n_classes, x.dtype)
    loss_shape = _loss_shape(x)
    target_array = target if isinstance(target, np.ndarray) else np.asarray(target)
    if target_array.dtype.kind == "f":
        if ignore_index >= 0:
            raise ValueError(f"ignore_index={ignore_index} is not supported for probability (floating-point) "
                             f"targets; leave it negative (default -100)")
        y = as_target_array(target_array, "target", x.dtype)
        check_shape(y.shape, x.shape, "target", "input (probability targets have the input's shape)")
        dtype = x.dtype.type
        args = (class_rows(y), weight, dtype(1 - smoothing), dtype(smoothing / n_classes))
        denominator = int(np.prod(loss_shape, dtype=np.int64))
        return _run_rows("softmax_cross_entropy_soft_rows", x, loss_shape, reduction, grad, grad_output, grad_out,
                         args, denominator=denominator, backend=impl)
    t = _class_targets(target_array, x, loss_shape)
    return _softmax_class_loss(x, loss_shape, n_classes, t, weight, True, ignore_index, smoothing, 0.0, reduction,
                               grad, grad_output, grad_out, impl)


# ---------------------------------------------------------------- linear cross-entropy

#: The most bytes the logits of one chunk of rows take (one row's when that is larger).
#: See :func:`linear_chunk_rows` for why this much.
LINEAR_CHUNK_BYTES = 128 << 20
#: The most bytes of one block of the weight gradient's accumulation (:func:`_accumulate`).
_ACCUMULATE_BYTES = 1 << 20


def linear_chunk_rows(n_rows, n_classes, itemsize):
    """Rows per chunk of :func:`linear_softmax_chunks` (:func:`linear_cross_entropy`, CosFace): as many as fit
    :data:`LINEAR_CHUNK_BYTES` of logits, at least one, at most ``n_rows``.

    Memory sets the bound: the chunk's logits (then its gradient, in place) are the only
    buffer that grows with the vocabulary, so a call's extra memory is its gradients plus
    128 MiB, whatever N. Speed asks for chunks that are not small: the rows per chunk
    are the inner dimension of the weight gradient's GEMM (``G^T X``, accumulated over
    the chunks with one more pass over (V, H) each) and the outer one of the input
    gradient's (``G W``, whose inner dimension is V). With OpenBLAS, chunks of 256 rows
    made a call several times slower than chunks of 1024, which come near the three
    unchunked GEMMs (bench/bench_linear_cross_entropy.py); 128 MiB gives 1024 rows at
    V = 32768 in float32. A cache gives no better bound: a 32768-class row
    (128 KiB) already spills L1, the kernel's passes over one row hit L2, and the GEMMs
    stream the chunk whatever its size.
    """
    return max(1, min(n_rows, LINEAR_CHUNK_BYTES // (n_classes * itemsize)))


#: The fewest rows per chunk below which :func:`linear_softmax_chunks` splits the
#: vocabulary into blocks rather than take thinner chunks (:func:`linear_chunk_shape`).
LINEAR_MIN_ROWS = 512


def linear_chunk_shape(n_rows, n_classes, itemsize, chunk_size=None):
    """``(rows per chunk, classes per block)`` of :func:`linear_softmax_chunks`: the chunk's
    logits, ``rows x block``, fit :data:`LINEAR_CHUNK_BYTES`.

    Rows come first: :func:`linear_chunk_rows` of them (or ``chunk_size``), each with all
    ``n_classes`` logits (``block == n_classes``), while that is at least
    :data:`LINEAR_MIN_ROWS` (or the whole batch). For a vocabulary so large that fewer
    rows would fit, the chunk keeps ``LINEAR_MIN_ROWS`` rows (at most ``n_rows``) and
    the classes go in blocks of ``LINEAR_CHUNK_BYTES // (rows * itemsize)``: at 128 MiB,
    65536 classes in float32. (An explicit ``chunk_size`` too large for the budget
    keeps its rows and takes blocks.) Memory stays bounded whatever V, even when one row
    alone exceeds the budget.

    Why 512 rows: the chunk's rows are the outer dimension of ``X_c W_b^T`` and ``G_b W_b``
    and the inner one of ``G_b^T X_c``, and thin GEMMs run far from peak. Measured with
    OpenBLAS on 2 cores (float32, H = 256, 16384 classes, GFLOP/s of the three products):
    at 1024 rows 61-72 / 50-61 / 65-67; at 512, 51-67 / 50-51 / 52-63; at 256,
    45-56 / 45-47 / 18-27; at 128, 37-52 / 34-45 / 4-7 (``G W``, a short and wide
    product, is the first to collapse). 512 rows is where all three reach their plateau;
    the block pays one more GEMM (the logits again, in the gradient pass), a third more
    work, which costs less than thinner chunks once their GEMMs collapse. End to end (N = 4096,
    H = 256, V = 32768, float32, with the gradients, the budget made small to force each
    shape): 1024 rows in blocks took 1.37x the time of the default 1024 whole rows, as the
    fourth GEMM predicts; 512 rows in blocks, 1.45-1.7x. At the memory of those blocks, whole
    rows in chunks of 256 or 128 were 1.35x and 1.1x as fast as 512-row blocks on a quiet
    machine, but with another job on the two cores they fell to 2.5x and 3.4x slower
    (thin GEMMs degrade first), while the blocks kept their ratio to the default. So the
    blocks buy a bounded memory at a steady price, and below 512 rows thin chunks are
    cheap only on an idle machine.
    """
    if chunk_size is None:
        rows = max(linear_chunk_rows(n_rows, n_classes, itemsize), min(n_rows, LINEAR_MIN_ROWS))
    else:
        rows = chunk_size
    rows_in_chunk = max(1, min(rows, n_rows))
    if rows_in_chunk * n_classes * itemsize <= LINEAR_CHUNK_BYTES:
        return rows, n_classes
    return rows, max(1, LINEAR_CHUNK_BYTES // (rows_in_chunk * itemsize))


def _accumulate(d_weight, g, x):
    """``d_weight += g.T @ x`` in blocks of rows of ``d_weight``, so that the product's
    scratch block stays in cache (numpy's matmul cannot add into its output)."""
    block = max(1, _ACCUMULATE_BYTES // max(1, x.shape[1] * x.itemsize))
    scratch = np.empty((min(block, d_weight.shape[0]), x.shape[1]), x.dtype)
    for start in range(0, d_weight.shape[0], block):
        stop = min(start + block, d_weight.shape[0])
        part = scratch[:stop - start]
        np.matmul(g[:, start:stop].T, x, out=part)
        d_weight[start:stop] += part


def _linear_head(input, linear_weight, linear_bias):
    """The validated input (N, H) or (H,), the weight (V, H) C-contiguous and the bias (V,) or None."""
    x = as_float_array(input, "input")
    if x.ndim not in (1, 2):
        raise ValueError(f"input must be (N, H) or unbatched (H,), got shape {x.shape}")
    w = as_float_array(linear_weight, "linear_weight", x.dtype)
    if w.ndim != 2 or w.shape[1] != x.shape[-1] or w.shape[0] == 0:
        raise ValueError(f"linear_weight must be (V, H) with H = {x.shape[-1]} (the input's last axis) and V >= 1, "
                         f"got shape {w.shape}")
    bias = None
    if linear_bias is not None:
        bias = as_float_array(linear_bias, "linear_bias", x.dtype)
        check_shape(bias.shape, w.shape[:1], "linear_bias", f"linear_weight of shape {w.shape} (one per class)")
    return x, np.ascontiguousarray(w), bias


def linear_cross_entropy(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
                         linear_bias: ArrayLike | None = None, weight: ArrayLike | None = None,
                         reduction: Reduction = "mean", ignore_index: int | None = None, label_smoothing: float = 0.0,
                         chunk_size: int | None = None, grad: bool = False, grad_output: ArrayLike | None = None,
                         grad_out: NDArray[Any] | None = None,
                         backend: Backend = None) -> Loss | WithGrad[Grad2 | Grad3]:
    r"""Cross-entropy of a linear head's logits, without the logits: as
    ``torch.nn.functional.linear_cross_entropy``.

    .. math::

        \ell = \mathrm{cross\_entropy}(X W^\top + b,\ y)

    with every option of :func:`cross_entropy`, for ``input`` :math:`X` (N, H),
    ``linear_weight`` :math:`W` (V, H) and ``linear_bias`` :math:`b` (V,). The (N, V)
    logits never exist whole: the rows go in chunks of ``chunk_size`` (default
    :func:`linear_chunk_rows`, 128 MiB of logits). Per chunk, BLAS computes the logits
    :math:`Z = X_c W^\top + b`; the fused kernel :func:`softmax_cross_entropy_rows` (or
    :func:`softmax_cross_entropy_soft_rows`) writes each row's loss and turns :math:`Z`
    in place into :math:`G = \partial \ell / \partial Z`; then BLAS gives
    :math:`\partial/\partial X_c = G W` and adds :math:`G^\top X_c` to
    :math:`\partial/\partial W` (and the column sums of :math:`G` to
    :math:`\partial/\partial b`). Three GEMMs in all, nothing computed twice. For a
    vocabulary so large that fewer than :data:`LINEAR_MIN_ROWS` rows of logits fit the
    budget, each chunk also goes through V in blocks, with an online log-sum-exp
    (:func:`linear_softmax_blocks`): memory stays bounded for any V, at the cost of a
    fourth GEMM (the logits again for the gradient). With class targets, where numpy's
    OpenBLAS is found and a chunk holds rows for every thread, the GEMMs run inside the
    kernel, on fastloss's threads (:func:`_blas_in_kernel`; README, "Threads"). The mean's
    denominator (the kept targets' class weights) is summed over the whole batch before
    the first chunk, so that every chunk's gradient is scaled as in one call.

    Parameters
    ----------
    input : array (N, H) or (H,)
        The hidden states the head maps to logits.
    linear_weight : array (V, H)
        The head's weight, one row per class.
    target : int array (N,) / () or float array (N, V) / (V,)
        Class indices, or class probabilities.
    linear_bias : array (V,), optional
        The head's bias.
    weight, reduction, label_smoothing
        As :func:`cross_entropy`.
    ignore_index : int, optional
        As torch's: None means -100 for class-index targets; probability targets
        refuse any value (ValueError), as torch raises.
    chunk_size : int >= 1, optional
        Rows per chunk (in vocabulary blocks if that many rows of logits exceed the
        budget); the numbers do not depend on it.
    grad : bool
        Also return ``(d_input, d_linear_weight)``, and ``d_linear_bias`` third when a
        bias is given.
    grad_output : scalar or array shaped like the unreduced loss, optional
    grad_out : array shaped like ``input``, optional
        Where to write ``d_input``.
    backend : {"numba", "cython"}, optional
        Which backend's cross-entropy kernel runs the chunks.

    References
    ----------
    PyTorch ``torch.nn.functional.linear_cross_entropy`` (2.13); Wijmans et al., "Cut
    Your Losses in Large-Vocabulary Language Models" (Cut Cross-Entropy, 2024); Hsu et
    al., "Liger Kernel" (2024), for the fused linear cross-entropy.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> hidden = np.array([[1.0, 0.0], [0.5, -1.0]])
    >>> head = np.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 1.0]])
    >>> loss, (d_hidden, d_head) = fastloss.linear_cross_entropy(hidden, head, np.array([0, 1]), grad=True)
    >>> round(float(loss), 4)
    1.1833
    >>> round(float(fastloss.cross_entropy(hidden @ head.T, np.array([0, 1]))), 4)
    1.1833
    >>> d_hidden.shape, d_head.shape
    ((2, 2), (3, 2))
    """
    check_options(reduction, grad)
    impl = select("linear_cross_entropy", backend)
    smoothing = check_option("linear_cross_entropy", "label_smoothing", label_smoothing)
    if ignore_index is not None:
        ignore_index = check_integer(ignore_index, "ignore_index")
    if chunk_size is not None and (check_integer(chunk_size, "chunk_size") < 1):
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    x, w, bias = _linear_head(input, linear_weight, linear_bias)
    dtype = x.dtype
    n_classes = w.shape[0]
    weight = as_class_weight(weight, n_classes, dtype)
    rows = x.reshape(-1, x.shape[-1])  # (H,) as one row: a view
    loss_shape = x.shape[:-1]
    step, block = linear_chunk_shape(rows.shape[0], n_classes, dtype.itemsize, chunk_size)
    target_array = target if isinstance(target, np.ndarray) else np.asarray(target)
    if target_array.dtype.kind == "f":
        if ignore_index is not None:
            raise ValueError(f"ignore_index={ignore_index} cannot be given with probability (floating-point) targets, "
                             f"as torch refuses it; leave it None")
        y = as_target_array(target_array, "target", dtype)
        check_shape(y.shape, loss_shape + (n_classes,), "target",
                    "the logits (probability targets have the logits' shape: the input's rows by V)")
        y = y.reshape(-1, n_classes)
        options = (weight, dtype.type(1 - smoothing), dtype.type(smoothing / n_classes))
        denominator = float(rows.shape[0])
    else:
        ignore_index = -100 if ignore_index is None else ignore_index
        t = as_index_array(target_array, "target")
        check_shape(t.shape, loss_shape, "target", f"input of shape {x.shape} (one class index per row)")
        denominator = check_class_indices(t, n_classes, "target", ignore_index, weight)
        y = t.reshape(-1, 1)
        options = softmax_options(n_classes, weight, True, ignore_index, smoothing, 0.0, dtype)
    tail = KernelTail(reduction, grad, grad_output, loss_shape, dtype, denominator)
    grads = None
    if grad:
        reads = {"linear_weight": linear_weight, "target": target, "linear_bias": linear_bias, "weight": weight}
        grads = (tail.gradient(x, grad_out, reads, shape=rows.shape), np.empty(w.shape, dtype),
                 None if bias is None else np.empty_like(bias))
    total = linear_softmax_chunks(rows, w, bias, impl.kernels("classification"), y, options,
                                  tail.scale if grad else None, tail.losses, step, grads, block=block)
    return tail.result(total, more=() if grads is None else tuple(g for g in grads[1:] if g is not None))


def linear_softmax_chunks(rows, w, bias, kernels, y, options, scale, loss, step, grads=None, margin=0.0, block=None):
    """The engine of :func:`linear_cross_entropy` (and of CosFace's
    :func:`~fastloss.extras.large_margin_cosine_loss`): the softmax cross-entropy of the
    logits ``rows @ w.T + bias`` (``bias`` may be None), ``step`` rows at a time and, when
    ``block`` is less than the V classes, ``block`` classes at a time
    (:func:`linear_softmax_blocks`; :func:`linear_chunk_shape` chooses both).

    ``kernels`` is the backend's module of classification kernels; with ``y`` (N, 1) class
    indices (already checked) the chunks run :func:`softmax_cross_entropy_rows`, with ``y``
    (N, V) probabilities :func:`softmax_cross_entropy_soft_rows`; ``options`` are the
    kernel's arguments between the targets and ``scale``; ``margin`` is subtracted from
    each row's target logit (CosFace's ``s m``). Writes the row losses into ``loss`` and
    returns their float64 sum. With ``grads`` (``d_rows`` shaped like ``rows``, which it
    may be; ``d_w`` like ``w``; ``d_bias`` or None) and ``scale`` (N,), the per-row factor
    of the gradient, writes the three gradients: per chunk, 1. BLAS gives the logits Z;
    2. the kernel writes the losses and turns Z in place into G = d loss / d Z; 3. BLAS
    adds G^T X to ``d_w``, then 4. writes G W into the chunk's ``d_rows`` after the last
    read of the chunk's rows. Where :func:`_blas_in_kernel` allows, the same steps run
    with the GEMMs inside one kernel (:func:`_linear_softmax_fused`).
    """
    if block is not None and block < w.shape[0]:
        return linear_softmax_blocks(rows, w, bias, kernels, y, options, scale, loss, step, block, grads, margin)
    if _blas_in_kernel(rows, w, kernels, y, grads, step):
        return _linear_softmax_fused(rows, w, bias, kernels, y, options, scale, loss, step, grads, margin)
    soft = y.dtype.kind == "f"
    kernel = getattr(kernels, "softmax_cross_entropy_soft_rows" if soft
                     else softmax_kernel(min(rows.shape[0], step) * w.shape[0]))
    no_grad = EMPTY[w.dtype, 1], EMPTY[w.dtype, 3]
    if grads is not None:
        d_rows, d_w, d_bias = grads
        if rows.shape[0] == 0:
            d_w.fill(0)
        if d_bias is not None:
            d_bias.fill(0)
    logits_buffer = np.empty((min(step, rows.shape[0]), w.shape[0]), w.dtype)
    total = 0.0
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf propagate, as in torch, without a warning
        for start in range(0, rows.shape[0], step):
            stop = min(start + step, rows.shape[0])
            x_chunk = rows[start:stop]
            logits = logits_buffer[:stop - start]
            np.matmul(x_chunk, w.T, out=logits)  # 1.
            if bias is not None:
                logits += bias
            if margin:
                logits[np.arange(stop - start), y[start:stop, 0]] -= margin
            chunk = class_rows(logits)
            chunk_scale, chunk_grad = (scale[start:stop], chunk) if grads is not None else no_grad
            if soft:  # 2.
                total += kernel(chunk, class_rows(y[start:stop]), *options, chunk_scale, loss[start:stop], chunk_grad,
                                grads is not None)
            else:  # the mean's denominator is in scale: the kernel's own (mean=False) would be the chunk's
                total += kernel(chunk, y[start:stop], *options, chunk_scale, False, loss[start:stop], chunk_grad,
                                grads is not None)[0]
            if grads is None:
                continue
            if start == 0:  # 3.
                np.matmul(logits.T, x_chunk, out=d_w)
            else:
                _accumulate(d_w, logits, x_chunk)
            np.matmul(logits, w, out=d_rows[start:stop])  # 4.
            if d_bias is not None:
                d_bias += logits.sum(axis=0)
    return total


def _blas_in_kernel(rows, w, kernels, y, grads, step):
    """Whether :func:`linear_softmax_chunks` runs :func:`_linear_softmax_fused`: numpy's
    OpenBLAS found (:mod:`fastloss._core.blas`), a backend with the kernel (Numba's), class
    targets, at least one row, C-contiguous rows, weight and input gradient (the kernel
    hands BLAS raw pointers and row strides), and chunks of at least as many blocks of
    :data:`FUSED_ROWS` rows as Numba's pool has threads, up to :data:`FUSED_MIN_BLOCKS`
    (or the whole input).

    The last condition keeps the path to shapes whose chunks give every thread work: the
    kernel's logits and input-gradient GEMMs run a block of rows a thread, and a large
    vocabulary leaves few rows a chunk (at V=32768 in float32, 512: two blocks), where
    ``np.matmul``'s GEMMs use every core. Thinner blocks would pay OpenBLAS's packing
    of W once per block: linear_cross_entropy's benchmark took 1.26 s with blocks of 64
    rows, 1.51 s with 32, against 0.98 s with 256. The rule reads the shapes and the
    pool's size (``NUMBA_NUM_THREADS``, fixed for the process), not the thread count set
    with :func:`fastloss.set_num_threads`, so that count does not change the path or the
    bits. On 2 cores the benchmark's 512-row chunks take the path (967 ms against 1063
    through ``np.matmul``, torch's 1263 and 1305, in two runs of bench/report.py)."""
    if blas.BLAS is None or not hasattr(kernels, "linear_softmax_cross_entropy_rows") or y.dtype.kind == "f":
        return False
    if rows.shape[0] == 0 or not (rows.flags.c_contiguous and w.flags.c_contiguous):
        return False
    if grads is not None and not grads[0].flags.c_contiguous:
        return False
    blocks = min(FUSED_MIN_BLOCKS, max_threads())
    return _fused_step(step, w.shape[0], w.dtype.itemsize) >= min(rows.shape[0], FUSED_ROWS * blocks)


#: Rows and classes a block of :func:`~fastloss.classification.cpu.linear_softmax_cross_entropy_rows`
#: hands each GEMM on one thread, and the logits of a chunk of :func:`_linear_softmax_fused`
#: (at least ``FUSED_MIN_ROWS`` rows): measured there. ``FUSED_MIN_BLOCKS``: see
#: :func:`_blas_in_kernel`.
FUSED_ROWS, FUSED_CLASSES = 256, 128
FUSED_CHUNK_BYTES, FUSED_MIN_ROWS, FUSED_MIN_BLOCKS = 32 << 20, 512, 8


def _fused_step(step, n_classes, itemsize):
    """Rows a chunk of :func:`_linear_softmax_fused`: ``step`` (the budget's, or the
    caller's ``chunk_size``) at most, and at most :data:`FUSED_CHUNK_BYTES` of logits
    unless that leaves fewer than :data:`FUSED_MIN_ROWS`."""
    return min(step, max(FUSED_MIN_ROWS, FUSED_CHUNK_BYTES // (n_classes * itemsize)))


def _linear_softmax_fused(rows, w, bias, kernels, y, options, scale, loss, step, grads, margin):
    """:func:`linear_softmax_chunks` with its GEMMs inside the kernel
    (:func:`~fastloss.classification.cpu.linear_softmax_cross_entropy_rows`), on Numba's
    threads with OpenBLAS on one thread: a chunk of rows a call, the same
    arguments and results (up to rounding) as the ``np.matmul`` path.

    Chunks of at most :data:`FUSED_CHUNK_BYTES` of logits, fewer than the ``np.matmul``
    path's: the weight's GEMM reads a chunk's G back after its rows are done, and gains
    from finding it in cache. Measured on CosFace's engine (N=65536, C=1000, D=128,
    float32, with gradients, 2 cores, medians of 7 in one process): 225-255 ms with chunks
    of 16 or 32 MiB, 245 ms at 8 MiB and 290 ms at 4 MiB (more parallel regions), against
    290-345 ms through ``np.matmul`` and 210-230 ms for the three whole GEMMs. Blocks
    (:data:`FUSED_ROWS`, :data:`FUSED_CLASSES`; one run each): 128 or 1024 rows took 257
    and 264 ms where 256 took 235, and 32 or 512 classes 297 and 249 ms where 128 took
    235. At least :data:`FUSED_MIN_ROWS` rows a chunk, because each chunk passes over the
    whole (V, H) weight gradient once more: for linear_cross_entropy's benchmark (N=4096,
    H=256, V=32768) chunks of 256 rows took 1.58 s against 0.92 s for 512.
    """
    weight, smooth_weight, _, weight_sum, keep, spread, gamma, ignore_index = options
    dtype = w.dtype
    step = _fused_step(step, w.shape[0], dtype.itemsize)
    gemm = blas.BLAS.gemm[dtype]
    bias = EMPTY[dtype, 1] if bias is None else np.ascontiguousarray(bias)
    logits = np.empty((min(step, rows.shape[0]), 1, w.shape[0]), dtype)
    want_grad = grads is not None
    if want_grad:
        d_rows, d_w, d_bias = grads
        late = np.may_share_memory(d_rows, rows)  # grad_out=input: G W after the last read of the rows
        if d_bias is None:
            d_bias = EMPTY[dtype, 1]
        else:
            d_bias.fill(0)
    else:  # empty stand-ins, sliced as the gradients would be
        d_rows, d_w, d_bias, scale, late = EMPTY[dtype, 2], EMPTY[dtype, 2], EMPTY[dtype, 1], EMPTY[dtype, 1], False
    total = 0.0
    with blas.BLAS.single_threaded():
        for start in range(0, rows.shape[0], step):
            stop = min(start + step, rows.shape[0])
            total += kernels.linear_softmax_cross_entropy_rows(
                rows[start:stop], w, bias, y[start:stop], weight, smooth_weight, weight_sum, keep, spread, gamma,
                ignore_index, dtype.type(margin), scale[start:stop], loss[start:stop], logits[:stop - start],
                d_rows[start:stop], late, d_w, start > 0, d_bias, want_grad, FUSED_ROWS, FUSED_CLASSES, gemm)
    return total


def _block_logits(buffer, x_chunk, w, bias, first, last, targets, margin):
    """The logits of classes ``first`` to ``last`` for the chunk's rows, (rows, last - first)
    C-contiguous in ``buffer``, the bias added and ``margin`` taken from the target's logit."""
    logits = buffer[:x_chunk.shape[0] * (last - first)].reshape(x_chunk.shape[0], last - first)
    np.matmul(x_chunk, w[first:last].T, out=logits)
    if bias is not None:
        logits += bias[first:last]
    if margin:
        hit = np.flatnonzero((targets[:, 0] >= first) & (targets[:, 0] < last))
        logits[hit, targets[hit, 0] - first] -= margin
    return logits


def linear_softmax_blocks(rows, w, bias, kernels, y, options, scale, loss, step, block, grads=None, margin=0.0):
    """:func:`linear_softmax_chunks` for vocabularies too large for whole rows: chunks of
    ``step`` rows, and in each the V classes in blocks of ``block``, so that a chunk's
    logits never take more than ``step x block`` values. Same arguments, same results up to
    rounding; ``options`` with gamma = 0 (no focal loss).

    Per chunk X_c:

    1. Value pass, per block W_b: BLAS gives Z_b = X_c W_b^T (+ b_b); the kernel
       (:func:`softmax_cross_entropy_block_rows` or
       :func:`softmax_cross_entropy_soft_block_rows`) folds it into each row's state, an
       online log-sum-exp (running max and sum of exp, the sum rescaled when the max
       grows), the target's logit when the target falls in the block, and the weighted sums
       that label smoothing or probability targets need; the last block's call writes the
       row losses.
    2. Gradient pass (with ``grads``), per block: BLAS computes Z_b again (the one extra
       GEMM of the blocks: four per chunk and block instead of three, a third more
       arithmetic), the gradient kernel turns it in place into G_b from the finished max and
       sum; BLAS adds G_b^T X_c to ``d_w[b]`` and G_b W_b to the chunk's input gradient
       (kept aside until the last block, since ``d_rows`` may be ``rows``); the column sums
       of G_b go to ``d_bias[b]``.

    Each backend has the four block kernels: Numba's in ``fastloss/classification/cpu.py``,
    their Cython twins in ``fastloss/_cython/classification.pyx``.
    """
    soft = y.dtype.kind == "f"
    if not soft and options[6] != 0:
        raise NotImplementedError("the vocabulary blocks take no focal loss (gamma must be 0)")
    if soft:
        value_kernel = kernels.softmax_cross_entropy_soft_block_rows
        grad_kernel = kernels.softmax_cross_entropy_soft_block_grad_rows
    else:
        value_kernel = kernels.softmax_cross_entropy_block_rows
        grad_kernel = kernels.softmax_cross_entropy_block_grad_rows
    n_rows, n_classes = rows.shape[0], w.shape[0]
    chunk_rows = min(step, n_rows)
    if grads is not None:
        d_rows, d_w, d_bias = grads
        if n_rows == 0:
            d_w.fill(0)
        if d_bias is not None:
            d_bias.fill(0)
        d_chunk = np.empty((chunk_rows, rows.shape[1]), w.dtype)
        product = np.empty_like(d_chunk)
    buffer = np.empty(chunk_rows * block, w.dtype)
    state, fresh = block_state(chunk_rows), block_state(1)
    total = 0.0
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf propagate, as in torch, without a warning
        for start in range(0, n_rows, step):
            stop = min(start + step, n_rows)
            x_chunk, targets, chunk_loss = rows[start:stop], y[start:stop], loss[start:stop]
            chunk_state = state[:stop - start]
            chunk_state[:] = fresh
            for first in range(0, n_classes, block):  # 1.
                last = min(first + block, n_classes)
                logits = _block_logits(buffer, x_chunk, w, bias, first, last, targets, margin)
                total += value_kernel(logits, first, targets[:, first:last] if soft else targets, *options,
                                      chunk_state, chunk_loss, last == n_classes)
            if grads is None:
                continue
            chunk_scale, d_x = scale[start:stop], d_chunk[:stop - start]
            for first in range(0, n_classes, block):  # 2.
                last = min(first + block, n_classes)
                logits = _block_logits(buffer, x_chunk, w, bias, first, last, targets, margin)
                grad_kernel(logits, first, targets[:, first:last] if soft else targets, *options, chunk_state,
                            chunk_scale)
                if start == 0:
                    np.matmul(logits.T, x_chunk, out=d_w[first:last])
                else:
                    _accumulate(d_w[first:last], logits, x_chunk)
                if first == 0:
                    np.matmul(logits, w[first:last], out=d_x)
                else:
                    np.matmul(logits, w[first:last], out=product[:stop - start])
                    d_x += product[:stop - start]
                if d_bias is not None:
                    d_bias[first:last] += logits.sum(axis=0)
            d_rows[start:stop] = d_x
    return total


def vocabulary_block_calls(rng, dtype):
    """Tiny calls of the engine in vocabulary blocks (:func:`linear_softmax_blocks`), with
    class and probability targets, with and without gradients, for :func:`fastloss.warmup`:
    the table's example calls are too small for the budget to split their classes, so
    without these a process's first blocked call would compile the four block kernels. The
    arguments have the types that :func:`linear_cross_entropy` gives them."""
    kernels = select("linear_cross_entropy", None).kernels("classification")
    x, w = rng.standard_normal((3, 2)).astype(dtype), rng.standard_normal((5, 2)).astype(dtype)
    weight = as_class_weight(None, 5, dtype)
    targets = [(as_index_array(np.array([0, 3, 4]), "target").reshape(-1, 1),
                softmax_options(5, weight, True, -100, 0.0, 0.0, dtype)),
               (rng.dirichlet(np.ones(5), 3).astype(dtype), (weight, dtype.type(1), dtype.type(0)))]

    def call(y, options, grad):
        grads = (np.empty_like(x), np.empty_like(w), None) if grad else None
        linear_softmax_chunks(x, w, None, kernels, y, options, np.ones(3, dtype) if grad else None,
                              np.empty(3, dtype), 3, grads, block=2)

    return [functools.partial(call, y, options, grad) for y, options in targets for grad in (False, True)]


def focal_loss(input: ArrayLike, target: ArrayLike, alpha: ArrayLike | None = None, gamma: float = 2.0,
               ignore_index: int = -100, reduction: Reduction = "mean", *, grad: bool = False,
               grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
               backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Multi-class softmax focal loss (Lin, Goyal, Girshick, He, Dollar, ICCV 2017).

    .. math::

        \mathrm{FL}_i = -\alpha_{t_i} (1 - p_{i,t_i})^\gamma \log p_{i,t_i},
        \qquad p_i = \mathrm{softmax}(x_i)

    ``alpha``: None (1 for every class), a scalar (the same for every class, as in
    kornia's ``focal_loss``) or a per-class array (C,). "mean" averages over the
    elements whose target is not ``ignore_index`` (NaN if there are none). With
    ``gamma=0`` and ``alpha=None`` this is exactly :func:`cross_entropy`: both run the
    same kernel, :func:`softmax_cross_entropy_rows`. The gradient with respect to the
    logits is :math:`g\,(p - \mathrm{onehot}_t)` with
    :math:`g = \alpha_t[(1 - p_t)^\gamma - \gamma p_t (1 - p_t)^{\gamma - 1}\log p_t]`;
    at :math:`p_t = 1` the second term takes its limit, 0.

    Parameters are those of :func:`cross_entropy` (class-index targets only), plus
    ``alpha`` and ``gamma >= 0``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
    >>> round(float(fastloss.focal_loss(logits, np.array([0, 1]), gamma=2.0)), 4)
    1.416
    """
    check_options(reduction, grad)
    impl = select("focal_loss", backend)
    gamma = check_option("focal_loss", "gamma", gamma)
    ignore_index = check_integer(ignore_index, "ignore_index")
    x, n_classes = _class_input(input)
    if alpha is None or np.ndim(alpha) == 0:
        value = 1.0 if alpha is None else check_option("focal_loss", "alpha", alpha)
        alpha_vec = np.full(n_classes, value, x.dtype)
    else:
        alpha_vec = as_class_weight(alpha, n_classes, x.dtype, "alpha")
    loss_shape = _loss_shape(x)
    t = _class_targets(target, x, loss_shape)
    # The mean counts the kept targets (weighted_mean=False): alpha is no mean weight.
    return _softmax_class_loss(x, loss_shape, n_classes, t, alpha_vec, False, ignore_index, 0.0, gamma, reduction,
                               grad, grad_output, grad_out, impl)


def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None, *, ignore_index: int = -100,
             reduction: Reduction = "mean", grad: bool = False, grad_output: ArrayLike | None = None,
             grad_out: NDArray[Any] | None = None, backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Negative log-likelihood of class indices under log-probabilities, as
    ``torch.nn.functional.nll_loss``: :math:`\ell_i = -w_{t_i} x_{i, t_i}`.

    "mean" divides by :math:`\sum_i w_{t_i}` over targets that are not ignored. The
    gradient is :math:`-w_{t_i}` at the target class and 0 elsewhere. Wraps the
    parallel kernel :func:`nll_rows`. Options as :func:`cross_entropy`.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> logp = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    >>> loss, g = fastloss.nll_loss(logp, np.array([0, 1]), grad=True)
    >>> round(float(loss), 4)
    0.4581
    >>> print(g)
    [[-0.5  0.   0. ]
     [ 0.  -0.5  0. ]]
    """
    check_options(reduction, grad)
    impl = select("nll_loss", backend)
    ignore_index = check_integer(ignore_index, "ignore_index")
    x, n_classes = _class_input(input)
    weight = as_class_weight(weight, n_classes, x.dtype)
    loss_shape = _loss_shape(x)
    t = _class_targets(target, x, loss_shape)
    return _run_rows("nll_rows", x, loss_shape, reduction, grad, grad_output, grad_out,
                     (_target_rows(t), weight, ignore_index), targets=(t, n_classes, "target", ignore_index),
                     backend=impl)


def _elementwise_args(input, target, weight, names=("input", "target")):
    x = as_float_array(input, names[0])
    y = as_target_array(target, names[1], x.dtype)
    check_shape(y.shape, x.shape, names[1], names[0])
    if weight is not None:
        weight = as_target_array(weight, "weight", x.dtype)
        check_broadcast(weight.shape, x.shape, "weight")
    return x, y, weight


def _check_probabilities(a, name):
    """ValueError unless every entry of ``a`` lies in [0, 1] (NaN does not), as torch's BCE checks."""
    # min and max propagate NaN: two vectorised reductions and no temporary array.
    if a.size and not (a.min() >= 0 and a.max() <= 1):
        bad = a[~((a >= 0) & (a <= 1))].flat[0]
        raise ValueError(f"{name} must hold probabilities in [0, 1]; found {bad}")


def binary_cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None, *,
                         reduction: Reduction = "mean", grad: bool = False, grad_output: ArrayLike | None = None,
                         grad_out: NDArray[Any] | None = None, backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Binary cross-entropy of probabilities, as ``torch.nn.functional.binary_cross_entropy``.

    .. math:: \ell = -w\,[\,y \max(\log x, -100) + (1 - y) \max(\log(1 - x), -100)\,]

    torch's clamp of the logs at -100 keeps the loss finite at x = 0 and 1; its
    gradient is torch's :math:`w (x - y) / \max(x (1 - x), 10^{-12})`. An input or a
    target outside [0, 1], NaN included, raises ValueError, as torch raises.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> p = np.array([0.9, 0.2])
    >>> round(float(fastloss.binary_cross_entropy(p, np.array([1.0, 0.0]))), 4)
    0.1643
    """
    check_options(reduction, grad)
    impl = select("binary_cross_entropy", backend)
    x, y, weight = _elementwise_args(input, target, weight)
    _check_probabilities(x, "input")
    _check_probabilities(y, "target")
    return elementwise_loss(_BCE, x, y, None, weight, reduction=reduction, grad=grad, grad_output=grad_output,
                            grad_out=grad_out, backend=impl)


def binary_cross_entropy_with_logits(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None, *,
                                     reduction: Reduction = "mean", pos_weight: ArrayLike | None = None,
                                     grad: bool = False, grad_output: ArrayLike | None = None,
                                     grad_out: NDArray[Any] | None = None,
                                     backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Sigmoid and binary cross-entropy fused, as
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    .. math:: \ell = w\,[\,(1 - y)\,x + (1 + (p_w - 1)\,y)\,\log(1 + e^{-x})\,]

    computed as a softplus that never overflows; ``weight`` broadcasts to the input
    and ``pos_weight`` broadcasts along the last (class) axis. The gradient is
    :math:`w\,[(1 + (p_w - 1) y)\,\sigma(x) - p_w y]`. Without ``pos_weight`` the
    formula has no :math:`p_w` at all (an infinite target gives an infinite loss, as in torch).

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> x = np.array([0.0, 2.0])
    >>> loss, g = fastloss.binary_cross_entropy_with_logits(x, np.array([0.0, 1.0]), grad=True)
    >>> round(float(loss), 4)
    0.41
    >>> print(np.round(g, 4))
    [ 0.25   -0.0596]
    """
    check_options(reduction, grad)
    impl = select("binary_cross_entropy_with_logits", backend)
    x, y, weight = _elementwise_args(input, target, weight)
    kind = _BCE_LOGITS
    if pos_weight is not None:
        pos_weight = as_target_array(pos_weight, "pos_weight", x.dtype)
        check_broadcast(pos_weight.shape, x.shape, "pos_weight")
        kind = _BCE_LOGITS_POS_WEIGHT
    return elementwise_loss(kind, x, y, pos_weight, weight, reduction=reduction, grad=grad,
                            grad_output=grad_output, grad_out=grad_out, backend=impl)


def kl_div(input: ArrayLike, target: ArrayLike, *, reduction: Literal["mean", "sum", "none", "batchmean"] = "mean",
           log_target: bool = False, grad: bool = False, grad_output: ArrayLike | None = None,
           grad_out: NDArray[Any] | None = None, backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Kullback-Leibler divergence with log-probability input, as ``torch.nn.functional.kl_div``.

    .. math:: \ell = y\,(\log y - x)\ \ (0\text{ where } y = 0), \qquad
              \ell = e^{y} (y - x)\ \text{ with } \texttt{log\_target}

    ``reduction="batchmean"`` divides the sum by the batch size ``input.shape[0]``
    (the mathematically correct KL); "mean" divides by the number of elements.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> logp = np.log(np.array([[0.5, 0.5]]))
    >>> round(float(fastloss.kl_div(logp, np.array([[0.25, 0.75]]), reduction="batchmean")), 4)
    0.1308
    """
    check_options(reduction, grad, ("none", "mean", "sum", "batchmean"))
    impl = select("kl_div", backend)
    log_target = check_bool(log_target, "log_target")
    x, y, _ = _elementwise_args(input, target, None)
    denominator = None
    if reduction == "batchmean":
        denominator = x.shape[0] if x.ndim else 1
        reduction = "mean"
    return elementwise_loss(_KL_DIV, x, y, None, None, (float(log_target), 0.0, 0.0), reduction=reduction,
                            grad=grad, grad_output=grad_output, grad_out=grad_out, denominator=denominator,
                            backend=impl)


def sigmoid_focal_loss(inputs: ArrayLike, targets: ArrayLike, alpha: float = 0.25, gamma: float = 2.0,
                       reduction: Reduction = "none", *, grad: bool = False, grad_output: ArrayLike | None = None,
                       grad_out: NDArray[Any] | None = None, backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Binary focal loss on logits, as ``torchvision.ops.sigmoid_focal_loss`` (same defaults).

    .. math::

        \ell = \alpha_t (1 - p_t)^\gamma\, \mathrm{BCE}(x, y), \quad
        p = \sigma(x),\ p_t = p y + (1 - p)(1 - y),\ \alpha_t = \alpha y + (1 - \alpha)(1 - y)

    ``alpha < 0`` disables the alpha weighting. Reference: Lin et al., "Focal Loss for
    Dense Object Detection", ICCV 2017.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> x = np.array([-1.0, 2.0])
    >>> print(np.round(fastloss.sigmoid_focal_loss(x, np.array([0.0, 1.0])), 4))
    [0.017  0.0005]
    """
    check_options(reduction, grad)
    impl = select("sigmoid_focal_loss", backend)
    alpha = check_option("sigmoid_focal_loss", "alpha", alpha)
    gamma = check_option("sigmoid_focal_loss", "gamma", gamma)
    x, y, _ = _elementwise_args(inputs, targets, None, ("inputs", "targets"))
    return elementwise_loss(_SIGMOID_FOCAL, x, y, None, None, (alpha, gamma, 0.0), reduction=reduction,
                            grad=grad, grad_output=grad_output, grad_out=grad_out, backend=impl)


# The criterion classes and the exports, from the table of losses.
__all__ = LOSSES.export(__name__, globals())
