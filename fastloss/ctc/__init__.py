r"""Connectionist temporal classification: the CTC loss with its gradient, and forced alignment.

Notation (Graves et al. 2006): a target :math:`l` of length :math:`L` is extended with
blanks to :math:`l'` of length :math:`S' = 2L + 1` (blank, l_1, blank, ..., l_L, blank);
:math:`y_t(k)` is the log-probability of class :math:`k` at frame :math:`t` of the
:math:`T_b` frames of a sample. In log space,

.. math::

    \alpha_t(s) = y_t(l'_s) + \log\!\big(e^{\alpha_{t-1}(s)} + e^{\alpha_{t-1}(s-1)}
                  + [\,l'_s \ne \mathrm{blank},\ l'_s \ne l'_{s-2}\,]\, e^{\alpha_{t-1}(s-2)}\big),

:math:`\beta` the same recursion run backwards, :math:`-\log p(l|x) =
-\log(e^{\alpha_{T-1}(S'-1)} + e^{\alpha_{T-1}(S'-2)})`, and the posterior of class
:math:`k` at frame :math:`t` is :math:`\gamma_t(k) = \sum_{s: l'_s = k}
e^{\alpha_t(s) + \beta_t(s) - y_t(l'_s) + \mathrm{nll}}`. The loss's gradient with
respect to the log-probabilities is :math:`-\gamma_t(k)`; with respect to logits
:math:`z` (``from_logits=True``, :math:`y = \log\mathrm{softmax}(z)`) it is
:math:`\mathrm{softmax}(z_t)_k - \gamma_t(k)`, since the posteriors of a frame sum to 1.

How the kernel spends its time (:func:`ctc_alpha_beta_batch`, parallel over the batch):

* Each log-sum-exp of three terms costs one max, two exp and one log: with
  :math:`m` the largest term and :math:`a, b` the others,
  :math:`m + \log(1 + e^{a - m} + e^{b - m})`, where exp and log are the
  vectorisable :func:`fastloss._core.numerics.exp_fast` and :func:`fastloss._core.numerics.log_fast`.
  The allowed-skip condition is an additive 0 / -inf mask, so the loop over ``s`` has
  no branch and LLVM vectorises it.
* The emissions of a frame are gathered once into a contiguous row (and the
  log-softmax normaliser of a frame computed once, in the forward sweep), relative to
  the frame's largest emission among the target's classes: the tables hold numbers near
  0 and the log-likelihood adds the shifts back, so the posteriors keep their finite
  parts even beside a logit of 1e300 (``y - 1e300`` would be ``-1e300`` for every
  ``y``). The posterior is formed as :math:`e^{\alpha_t(s) + b_t(s) + \mathrm{nll}}`,
  with :math:`b_t(s) = \beta_t(s) - y_t(l'_s)` the log-sum of the successors, never by
  that subtraction.
* Rows are padded with two -inf cells on each side, so ``s - 2`` and ``s + 2`` need
  no bounds tests; only the band of ``s`` that can still reach the end of the target
  (``s >= S' - 2 (T_b - t)``) is computed. The forward sweep computes every ``s``
  above that bound, as torch does, so a NaN or +inf log-probability poisons the loss
  exactly when it poisons torch's.
* The backward sweep keeps beta in two rolling rows and writes the gradient of each
  frame as it goes: the dense part (``scale * softmax``, or zeros) once, then the at
  most ``L + 1`` posterior classes subtracted. Memory: the alpha table
  (``sum_b T_b (2 L_b + 5)`` values; two rows per sample for the loss alone) and the
  gradient; no (T, N, C) temporary (an input whose class axis is not contiguous is
  copied once, so that every class row is).
* Deterministic: each sample is one thread's sequential work.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._core.backends import select
from .._core.interop import interop
from .._core.layout import read_only
from .._core.numerics import sum_float64
from .._core.reduction import check_options
from .._core.table import LOSSES
from .._core.tail import KernelTail
from .._core.validation import as_float_array, check_bool, check_integer
from .cpu import _PAD

if TYPE_CHECKING:
    from typing import Any

    from numpy.typing import NDArray

    from .._typing import ArrayLike, Backend, FloatArray, IntArray, Loss, Reduction, WithGrad

# ---------------------------------------------------------------- wrappers

def _check_lengths_shape(array, n, name, batched):
    """TypeError or ValueError unless ``array`` (host or device) holds integers, one per sample."""
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    expected = ((n,),) if batched else ((), (1,))
    if array.shape not in expected:
        raise ValueError(f"{name} has shape {array.shape}; expected {expected[0]} (one length per sample)")


def _lengths(value, n, name, batched, upper=None):
    """Per-sample lengths as an intp array (n,), checked to be in [0, upper]."""
    array = np.asarray(value)
    _check_lengths_shape(array, n, name, batched)
    array = array.reshape(n).astype(np.intp)
    if n and array.min() < 0:
        i = int(np.argmin(array))
        raise ValueError(f"{name}[{i}] = {int(array[i])} is negative")
    if upper is not None and n and array.max() > upper:
        i = int(np.argmax(array))
        raise ValueError(f"{name}[{i}] = {int(array[i])} exceeds the input's {upper} frames")
    return array


def _ctc_shape(shape, blank, batch_first):
    """The checks that need only ``log_probs``'s shape (host or device): whether it is
    batched, its (N, T, C), and ``blank`` as an int in [0, C)."""
    if len(shape) not in (2, 3):
        raise ValueError(f"log_probs must be (T, N, C), (N, T, C) with batch_first, or unbatched (T, C); "
                         f"got shape {shape}")
    batched = len(shape) == 3
    full = (shape if batch_first else (shape[1], shape[0], shape[2])) if batched else (1,) + shape
    blank = check_integer(blank, "blank")
    if not 0 <= blank < full[2]:
        raise ValueError(f"blank = {blank} is not a class index in [0, {full[2]})")
    return batched, full, blank


def _targets_padded(t, n, batched, x_shape):
    """Whether targets ``t`` (host or device) are padded (N, S) rather than concatenated;
    TypeError or ValueError for a dtype or shape that is neither."""
    if t.dtype.kind not in "iu":
        raise TypeError(f"targets must hold integer class indices, got dtype {t.dtype}")
    if t.ndim == 2 or (not batched and t.ndim == 1):
        rows = 1 if t.ndim == 1 else t.shape[0]
        if rows != n:
            raise ValueError(f"targets has {rows} rows for a batch of {n} samples (log_probs {x_shape})")
        return True
    if t.ndim != 1:
        raise ValueError(f"targets must be padded (N, S) or concatenated (sum(target_lengths),); got shape {t.shape}")
    return False


def _ctc_arrays(log_probs, targets, input_lengths, target_lengths, blank, batch_first):
    """Validated kernel inputs: the float array, its (N, T, C) shape, flat targets with
    each sample's start, lengths, blank, and whether the input was batched."""
    x = as_float_array(log_probs, "log_probs")
    batched, shape, blank = _ctc_shape(x.shape, blank, batch_first)
    n, n_time, n_classes = shape
    in_len = _lengths(input_lengths, n, "input_lengths", batched, n_time)
    tg_len = _lengths(target_lengths, n, "target_lengths", batched)
    t = np.asarray(targets)
    if _targets_padded(t, n, batched, x.shape):
        rows = t.reshape(1, -1) if t.ndim == 1 else t
        if n and tg_len.max() > rows.shape[1]:
            i = int(np.argmax(tg_len))
            raise ValueError(f"target_lengths[{i}] = {int(tg_len[i])} is longer than its row of targets "
                             f"({rows.shape[1]} entries)")
        flat = np.ascontiguousarray(rows, np.intp).reshape(-1)
        starts = np.arange(n, dtype=np.intp) * rows.shape[1]
        used = np.arange(rows.shape[1]) < tg_len[:, None]
        values = rows[used]
    else:
        if t.shape[0] != int(tg_len.sum()):
            raise ValueError(f"concatenated targets have {t.shape[0]} entries; target_lengths sum to "
                             f"{int(tg_len.sum())}")
        flat = np.ascontiguousarray(t, np.intp)
        starts = np.concatenate([[0], np.cumsum(tg_len)[:-1]]).astype(np.intp) if n else tg_len.copy()
        values = flat
    bad = (values < 0) | (values >= n_classes) | (values == blank)
    if bad.any():
        value = int(values[np.flatnonzero(bad)[0]])
        raise ValueError(f"targets holds class index {value}; valid labels are in [0, {n_classes}) "
                         f"and differ from blank = {blank}")
    return x, shape, flat, starts, in_len, tg_len, blank, batched


def _frame_rows(array, batched, batch_first):
    """``array`` (T, N, C), (N, T, C) or (T, C) as C-contiguous (rows, C) and the kernels'
    ``layout`` (n_batch, n_time, batch_stride, frame_stride); a copy only for an array
    whose class rows are not laid out contiguously."""
    rows = np.ascontiguousarray(array).reshape(-1, array.shape[-1])
    if not batched:
        return rows, (1, array.shape[0], 0, 1)
    if batch_first:
        return rows, (array.shape[0], array.shape[1], array.shape[1], 1)
    return rows, (array.shape[1], array.shape[0], 1, array.shape[1])


def ctc_loss(log_probs: ArrayLike, targets: ArrayLike, input_lengths: ArrayLike, target_lengths: ArrayLike,
             blank: int = 0, reduction: Reduction = "mean", zero_infinity: bool = False, *, from_logits: bool = False,
             batch_first: bool = False, grad: bool = False, grad_output: ArrayLike | None = None,
             grad_out: NDArray[Any] | None = None, backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Connectionist temporal classification loss, as ``torch.nn.functional.ctc_loss``.

    .. math::

        \ell_b = -\log \sum_{\pi \in \mathcal{B}^{-1}(l_b)} \prod_{t < T_b} y_t(\pi_t)

    over the frame paths :math:`\pi` that collapse (merge repeats, drop blanks) to the
    target :math:`l_b`. "mean" divides each :math:`\ell_b` by its target length clamped
    to at least 1, then averages over the batch; "sum" adds. A sample whose target
    (with a blank between repeats) does not fit its frames is infeasible: +inf, and
    ``zero_infinity=True`` zeroes its loss and its gradient. NaN in the inputs
    propagates as in torch. Wraps the parallel kernel :func:`ctc_alpha_beta_batch`
    (see the module docstring for the algorithm).

    Parameters
    ----------
    log_probs : array (T, N, C), (N, T, C) with ``batch_first``, or unbatched (T, C)
        Log-probabilities (log-softmax outputs), or logits with ``from_logits``.
    targets : int array (N, S) padded, or (sum(target_lengths),) concatenated
        Labels in [0, C), never ``blank``; entries past a row's length are ignored.
        Unbatched input takes (S,).
    input_lengths, target_lengths : int arrays (N,) (scalars for unbatched input)
        Frames and labels of each sample; ``input_lengths <= T``.
    blank : int
    reduction : {"mean", "sum", "none"}
    zero_infinity : bool
    from_logits : bool
        ``log_probs`` holds unnormalised logits; the log-softmax over C is computed in
        the kernel and the gradient is with respect to the logits.
    batch_first : bool
        ``log_probs`` is (N, T, C) (read in place, as the (T, N, C) layout is).
    grad : bool
        Also return the gradient, shaped like ``log_probs``: the true derivative of
        the result, ``-posterior`` (torch's backward returns ``exp(log_probs) -
        posterior``, the gradient only once chained through a log_softmax), or
        ``softmax - posterior`` with ``from_logits``; 0 past each input length.
    grad_output : scalar, or (N,) for reduction="none"
    grad_out : array shaped like ``log_probs``, optional (may be ``log_probs`` itself)

    References
    ----------
    Graves, Fernandez, Gomez, Schmidhuber, "Connectionist Temporal Classification",
    ICML 2006; PyTorch ``torch.nn.CTCLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> logits = np.zeros((3, 1, 2), np.float32)  # 3 frames, 1 sample, classes {blank, a}
    >>> loss = fastloss.ctc_loss(logits, np.array([[1]]), [3], [1], from_logits=True, reduction="sum")
    >>> round(float(loss), 4)  # -log(6 / 8): 6 of the 8 paths collapse to "a"
    0.2877
    """
    impl = select("ctc_loss", backend)
    kernels = impl.kernels("ctc")
    check_options(reduction, grad)
    zero_infinity, from_logits = check_bool(zero_infinity, "zero_infinity"), check_bool(from_logits, "from_logits")
    batch_first = check_bool(batch_first, "batch_first")
    x, shape, flat, starts, in_len, tg_len, blank, batched = _ctc_arrays(
        log_probs, targets, input_lengths, target_lengths, blank, batch_first)
    n, n_time, n_classes = shape
    dtype = x.dtype
    rows, layout = _frame_rows(x, batched, batch_first)
    widths = 2 * tg_len + 1 + 2 * _PAD
    sizes = (in_len if grad else np.minimum(in_len, 2)) * widths
    table_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp) if n else sizes
    table = np.empty(int(sizes.sum()), dtype)
    log_norm = np.empty((n, n_time, 2) if from_logits else (0, 0, 2), dtype)
    shifts = np.empty((n, n_time), dtype)
    loss_shape = (n,) if batched else ()
    clamped = np.maximum(tg_len, 1)
    tail = KernelTail(reduction, grad, grad_output, loss_shape, dtype, n)
    if grad and reduction == "mean":  # the mean of each sample's loss over its target length
        tail.scale = (tail.scale / clamped).astype(dtype)
    grad_rows = tail.gradient(x, grad_out, (targets, input_lengths, target_lengths),
                              shape=(x.size // x.shape[-1], x.shape[-1]))
    neg_inf = dtype.type(-np.inf)
    kernels.ctc_alpha_beta_batch(read_only(rows), layout, from_logits, blank, read_only(flat), starts, tg_len, in_len,
                                 zero_infinity, neg_inf, table, table_starts, log_norm, shifts, tail.scale, tail.losses,
                                 grad_rows, grad)
    total = 0.0
    if reduction != "none":
        total = sum_float64((tail.losses / clamped if reduction == "mean" else tail.losses).astype(np.float64))
    return tail.result(total)


def ctc_forced_align(log_probs: ArrayLike, targets: ArrayLike, input_lengths: ArrayLike | None = None,
                     target_lengths: ArrayLike | None = None, blank: int = 0, *,
                     backend: Backend = None) -> tuple[IntArray, FloatArray]:
    r"""Viterbi forced alignment: the most probable CTC path of each sample, as
    ``torchaudio.functional.forced_align`` defines it (which takes one sample; this
    takes a batch).

    .. math::

        \pi^* = \arg\max_{\pi \in \mathcal{B}^{-1}(l)} \sum_{t < T_b} y_t(\pi_t)

    by the max-plus form of the CTC forward recursion with back-pointers. Ties are
    broken as torchaudio does: a skip only when strictly better than both other
    predecessors, then the previous label cell when strictly better than staying, and
    at the end the last label rather than the final blank unless the blank is
    strictly better. Wraps the parallel kernel :func:`ctc_viterbi_batch`.

    Parameters
    ----------
    log_probs : array (N, T, C) or (T, C)
        Log-probabilities, batch first as in torchaudio.
    targets : int array (N, S) or (S,)
        Padded labels, never ``blank``.
    input_lengths, target_lengths : int arrays (N,), optional
        Default: every sample has T frames and S labels.
    blank : int

    Returns
    -------
    labels : int array (N, T) (or (T,)), the dtype of ``targets`` (int32 or int64)
        The class of each frame on the best path; ``blank`` past the input length.
    scores : array (N, T) (or (T,))
        ``log_probs`` at each frame's label (0 past the input length).

    Raises ValueError, as torchaudio does, when a target does not fit its frames.

    References
    ----------
    torchaudio ``forced_align`` (after flashlight's CTC criterion); Graves et al. 2006.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> log_probs = np.log(np.array([[0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]))
    >>> labels, scores = fastloss.ctc_forced_align(log_probs, np.array([1, 2]))
    >>> print(labels)
    [1 0 2]
    """
    impl = select("ctc_forced_align", backend)
    kernels = impl.kernels("ctc")
    x = as_float_array(log_probs, "log_probs")
    if x.ndim not in (2, 3):
        raise ValueError(f"log_probs must be (N, T, C) or (T, C); got shape {x.shape}")
    t = np.asarray(targets)
    batched = x.ndim == 3
    n = x.shape[0] if batched else 1
    n_time = x.shape[-2]
    n_labels = t.shape[-1] if t.ndim else 0
    if input_lengths is None:
        input_lengths = np.full(n, n_time) if batched else n_time
    if target_lengths is None:
        target_lengths = np.full(n, n_labels) if batched else n_labels
    x, shape, flat, starts, in_len, tg_len, blank, batched = _ctc_arrays(
        x, t, input_lengths, target_lengths, blank, batch_first=True)
    for b in range(n):
        rows = flat[starts[b]:starts[b] + tg_len[b]]
        repeats = int(np.count_nonzero(rows[1:] == rows[:-1]))
        if in_len[b] < tg_len[b] + repeats:
            raise ValueError(f"targets of sample {b} are too long for CTC: {int(tg_len[b])} labels and {repeats} "
                             f"repeats need more than input_lengths[{b}] = {int(in_len[b])} frames")
    label_dtype = t.dtype if t.dtype in (np.int32, np.int64) else np.dtype(np.int64)
    labels = np.empty(shape[:2], np.intp)
    scores = np.empty(shape[:2], x.dtype)
    rows, layout = _frame_rows(x, batched, True)
    kernels.ctc_viterbi_batch(read_only(rows), layout, blank, read_only(flat), starts, tg_len, in_len, x.dtype.type(-np.inf),
                      labels, scores)
    labels = labels.astype(label_dtype)
    return (labels, scores) if batched else (labels[0], scores[0])


# The helper outside the table takes other libraries' arrays too; the criterion classes
# and the exports of the losses come from the table.
ctc_forced_align = interop(ctc_forced_align)
__all__ = ["ctc_forced_align"] + LOSSES.export(__name__, globals())
