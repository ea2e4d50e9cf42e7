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
  vectorisable :func:`fastloss._math.exp_fast` and :func:`fastloss._math.log_fast`.
  The allowed-skip condition is an additive 0 / -inf mask, so the loop over ``s`` has
  no branch and LLVM vectorises it.
* The emissions of a frame are gathered once into a contiguous row (and the
  log-softmax normaliser of a frame computed once, in the forward sweep).
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

from typing import TYPE_CHECKING, overload

import numpy as np

from ._backend import require_numba
from ._core.table import LOSSES
from ._jit import jit, prange
from ._layout import GradientBuffer, read_only
from ._math import exp_fast, log_fast, row_max, sum_exp_shifted, sum_float64, typed
from ._reduction import check_options, finish, loss_scale
from ._validation import as_float_array, check_bool, check_integer

if TYPE_CHECKING:
    from typing import Any, Literal

    from numpy.typing import NDArray

    from ._typing import ArrayLike, Backend, FloatArray, IntArray, Loss, Reduction, WithGrad


_PAD = 2  # -inf cells on each side of a padded row: cell s lives at s + _PAD


# --------------------------------------------------------------------------- kernels

@jit(inline="always")
def _log_add3(a, b, c):
    """log(e^a + e^b + e^c) with one max, two exp and one log.

    The compare-selects keep a NaN among the terms in the result (a NaN lands either
    in ``m`` or in one of the two exponents). An all -inf triple gives -inf.
    """
    hi = a if a > b else b
    lo = b if a > b else a
    m = hi if hi > c else c
    other = c if hi > c else hi
    shift = m if m != -np.inf else typed(0, m)
    return m + log_fast(typed(1, m) + exp_fast(lo - shift) + exp_fast(other - shift))


# The row loops run over slices from 0: with an offset range (``range(lo + 2, hi + 3)``)
# Numba's negative-index wraparound stays in the loop and LLVM does not vectorise it.

@jit()
def _gather_emissions(row, ext, shift, lo, hi, out):
    """out[p] = row[ext[p]] - shift for the padded cells p of the band s in [lo, hi]."""
    classes = ext[lo + _PAD:hi + _PAD + 1]
    dest = out[lo + _PAD:hi + _PAD + 1]
    for i in range(dest.shape[0]):
        dest[i] = row[classes[i]] - shift


@jit()
def _alpha_row(prev, cur, emit, skip, lo, hi):
    """One forward step over the band [lo, hi] of padded rows (vectorised)."""
    a, b = lo + _PAD, hi + _PAD + 1
    dest, stay, step, jump, mask, e = cur[a:b], prev[a:b], prev[a - 1:b - 1], prev[a - 2:b - 2], skip[a:b], emit[a:b]
    for i in range(dest.shape[0]):
        dest[i] = _log_add3(stay[i], step[i], jump[i] + mask[i]) + e[i]


@jit()
def _beta_row(nxt, cur, emit, skip, lo, hi):
    """One backward step over the band [lo, hi] of padded rows (vectorised)."""
    a, b = lo + _PAD, hi + _PAD + 1
    dest, stay, step, jump = cur[a:b], nxt[a:b], nxt[a + 1:b + 1], nxt[a + 2:b + 2]
    mask, e = skip[a + 2:b + 2], emit[a:b]
    for i in range(dest.shape[0]):
        dest[i] = _log_add3(stay[i], step[i], jump[i] + mask[i]) + e[i]


@jit()
def _posterior_row(alpha, beta, emit, nll, lo, hi, out):
    """out[p] = exp(alpha + beta - emission + nll): the posterior of each cell (vectorised)."""
    a, b = lo + _PAD, hi + _PAD + 1
    dest, fwd, bwd, e = out[a:b], alpha[a:b], beta[a:b], emit[a:b]
    for i in range(dest.shape[0]):
        dest[i] = exp_fast(fwd[i] + bwd[i] - e[i] + nll)


@jit()
def _fill(out, value):
    for c in range(out.shape[0]):
        out[c] = value


@jit()
def _write_scaled_softmax(row, log_norm, scale, out):
    """out[c] = scale * exp(row[c] - log_norm) (vectorised)."""
    for c in range(row.shape[0]):
        out[c] = scale * exp_fast(row[c] - log_norm)


@jit()
def _log_softmax_norm(row):
    """log(sum_c exp(row[c])), stable; NaN if the row holds a NaN or is all -inf (as torch)."""
    top = row_max(row)
    # typed: the forward and backward sweeps must subtract the same (float32) normaliser
    return typed(top + np.log(sum_exp_shifted(row, top)), top)


@jit()
def _extended_labels(targets, start, n_labels, blank, neg_inf):
    """The padded extended target l' (blank between labels; pads read the blank) and the
    additive skip mask: skip[p] = 0 where s - 2 -> s is allowed, -inf elsewhere; both of
    length 2 n_labels + 1 + 2 _PAD."""
    zero = typed(0, neg_inf)
    padded = 2 * n_labels + 1 + 2 * _PAD
    ext = np.full(padded, blank, np.intp)
    skip = np.full(padded, neg_inf)  # in neg_inf's dtype
    for k in range(n_labels):
        p = 2 * k + 1 + _PAD
        ext[p] = targets[start + k]
        if k > 0 and targets[start + k] != targets[start + k - 1]:
            skip[p] = zero
    return ext, skip


@jit(parallel=True)
def ctc_alpha_beta_batch(log_probs, layout, from_logits, blank, targets, target_starts, target_lengths,
                         input_lengths, zero_infinity, neg_inf, table, table_starts, log_norm, scale, loss, grad,
                         want_grad):
    """CTC loss of each sample of ``log_probs`` (or logits), and its gradient.

    ``log_probs`` and ``grad`` are C-contiguous (rows, C) views of a (T, N, C) or
    (N, T, C) array, so every class row is contiguous and its loops vectorise;
    ``layout = (n_batch, n_time, batch_stride, frame_stride)`` locates frame t of
    sample b at row ``b * batch_stride + t * frame_stride``.

    Parallel over the batch; per sample a forward sweep fills the alpha table (a
    slice of ``table`` from ``table_starts[b]``: T_b rows of 2 L_b + 5 cells, or two
    rolling rows without ``want_grad``) and, if ``want_grad``, a backward sweep keeps
    beta in two rolling rows and writes the gradient row of each frame as it goes,
    multiplied by ``scale[b]``: ``-posterior`` for log-probabilities, ``softmax -
    posterior`` for logits (``from_logits``, whose per-frame normalisers go to
    ``log_norm`` (N, T)). ``loss[b]`` gets the negative
    log-likelihood; +inf for an infeasible sample (0 with ``zero_infinity``). As in
    torch, a NaN (or +inf) loss gives a NaN gradient over the sample's frames; a
    zeroed infinite loss a zero gradient; frames past ``input_lengths[b]`` get 0.
    """
    n_batch, n_time, batch_stride, frame_stride = layout
    for b in prange(n_batch):
        n_frames = input_lengths[b]
        n_labels = target_lengths[b]
        width = 2 * n_labels + 1
        padded = width + 2 * _PAD
        zero = typed(0, neg_inf)
        first = b * batch_stride
        ext, skip = _extended_labels(targets, target_starts[b], n_labels, blank, neg_inf)
        if n_frames == 0:
            nll = zero if n_labels == 0 else -neg_inf
        else:
            # the whole alpha table for the backward sweep; two rolling rows for the loss alone
            n_rows = n_frames if want_grad else min(n_frames, 2)
            alpha = table[table_starts[b]:table_starts[b] + n_rows * padded].reshape((n_rows, padded))
            emit = np.empty(padded, loss.dtype)
            for t in range(n_frames):
                row = log_probs[first + t * frame_stride]
                shift = zero
                if from_logits:
                    shift = _log_softmax_norm(row)
                    log_norm[b, t] = shift
                cur = alpha[t % n_rows]
                if t == 0:
                    # torch's first row: the first blank and the first label, no other cell.
                    _fill(cur, neg_inf)
                    cur[_PAD] = row[blank] - shift
                    if n_labels > 0:
                        cur[_PAD + 1] = row[ext[_PAD + 1]] - shift
                    continue
                lo = max(0, width - 2 * (n_frames - t))
                cur[0] = neg_inf
                cur[1] = neg_inf
                _gather_emissions(row, ext, shift, lo, width - 1, emit)
                _alpha_row(alpha[(t - 1) % n_rows], cur, emit, skip, lo, width - 1)
            last = alpha[(n_frames - 1) % n_rows]
            if n_labels == 0:
                log_lik = last[_PAD]
            else:
                log_lik = _log_add3(last[width - 1 + _PAD], last[width - 2 + _PAD], neg_inf)
            # torch's log-sum-exp gives NaN when its largest term is +inf (inf - inf).
            nll = -log_lik if log_lik != -neg_inf else log_lik - log_lik
        infinite = nll == -neg_inf
        loss[b] = zero if infinite and zero_infinity else nll
        if not want_grad:
            continue
        for t in range(n_frames, n_time):
            _fill(grad[first + t * frame_stride], zero)
        if not (nll < -neg_inf):  # +inf or NaN: zeros if zeroed, NaN otherwise (torch)
            value = zero if infinite and zero_infinity else typed(np.nan, neg_inf)
            for t in range(n_frames):
                _fill(grad[first + t * frame_stride], value)
            continue
        s_b = scale[b]
        rows = np.empty((3, padded), loss.dtype)  # two rolling beta rows and the posteriors
        _fill(rows[0], neg_inf)
        _fill(rows[1], neg_inf)
        post = rows[2]
        for t in range(n_frames - 1, -1, -1):
            row = log_probs[first + t * frame_stride]
            shift = log_norm[b, t] if from_logits else zero
            lo = max(0, width - 2 * (n_frames - t))
            hi = min(2 * t + 1, width - 1)
            cur = rows[t & 1]
            _gather_emissions(row, ext, shift, lo, hi, emit)
            if t == n_frames - 1:
                cur[width - 1 + _PAD] = emit[width - 1 + _PAD]
                if n_labels > 0:
                    cur[width - 2 + _PAD] = emit[width - 2 + _PAD]
            else:
                _beta_row(rows[(t + 1) & 1], cur, emit, skip, lo, hi)
                # the two cells below the band are read by the next (earlier) step
                cur[lo] = neg_inf
                cur[lo + 1] = neg_inf
            _posterior_row(alpha[t], cur, emit, nll, lo, hi, post)
            out = grad[first + t * frame_stride]
            if from_logits:
                _write_scaled_softmax(row, shift, s_b, out)
            else:
                _fill(out, zero)
            blank_mass = zero
            for p in range(lo + _PAD, hi + _PAD + 1):
                if p & 1 == 0:  # even s: a blank cell
                    blank_mass += post[p]
                else:
                    out[ext[p]] -= s_b * post[p]
            out[blank] -= s_b * blank_mass


@jit()
def _max3_step(prev, cur, emit, skip, lo, hi, back, t):
    """One Viterbi step: cur = emission + max over the allowed predecessors, with
    torchaudio's tie rule (skip only if strictly best, then s - 1 if strictly better)."""
    for p in range(lo + _PAD, hi + _PAD + 1):
        x0 = prev[p]
        x1 = prev[p - 1]
        x2 = prev[p - 2] + skip[p]
        if x2 > x1 and x2 > x0:
            best, step = x2, 2
        elif x1 > x0:
            best, step = x1, 1
        else:
            best, step = x0, 0
        cur[p] = best + emit[p]
        back[t, p - _PAD] = step


@jit(parallel=True)
def ctc_viterbi_batch(log_probs, layout, blank, targets, target_starts, target_lengths, input_lengths, neg_inf,
                      labels, scores):
    """Best CTC path of each sample of ``log_probs`` (rows located as in
    :func:`ctc_alpha_beta_batch`): ``labels[b, t]`` the class of frame t on the path,
    ``scores[b, t]`` its log-probability; frames past ``input_lengths[b]`` get the
    blank and score 0. Parallel over the batch; back-pointers take T_b (2 L_b + 1) bytes."""
    n_batch, n_time, batch_stride, frame_stride = layout
    for b in prange(n_batch):
        n_frames = input_lengths[b]
        n_labels = target_lengths[b]
        width = 2 * n_labels + 1
        padded = width + 2 * _PAD
        zero = typed(0, neg_inf)
        first = b * batch_stride
        ext, skip = _extended_labels(targets, target_starts[b], n_labels, blank, neg_inf)
        for t in range(n_frames, n_time):
            labels[b, t] = blank
            scores[b, t] = zero
        if n_frames == 0:
            continue
        rows = np.empty((3, padded), scores.dtype)
        _fill(rows[0], neg_inf)
        _fill(rows[1], neg_inf)
        emit = rows[2]
        back = np.zeros((n_frames, width), np.int8)
        row = log_probs[first]
        rows[0, _PAD] = row[blank]
        if n_labels > 0:
            rows[0, _PAD + 1] = row[ext[_PAD + 1]]
        for t in range(1, n_frames):
            _gather_emissions(log_probs[first + t * frame_stride], ext, zero, 0, width - 1, emit)
            _max3_step(rows[(t - 1) & 1], rows[t & 1], emit, skip, 0, width - 1, back, t)
        last = rows[(n_frames - 1) & 1]
        s = width - 1
        if n_labels > 0 and not (last[width - 1 + _PAD] > last[width - 2 + _PAD]):
            s = width - 2
        for t in range(n_frames - 1, -1, -1):
            k = ext[s + _PAD]
            labels[b, t] = k
            scores[b, t] = log_probs[first + t * frame_stride, k]
            s -= back[t, s]


# ---------------------------------------------------------------- wrappers

def _lengths(value, n, name, batched, upper=None):
    """Per-sample lengths as an intp array (n,), checked to be in [0, upper]."""
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    expected = ((n,),) if batched else ((), (1,))
    if array.shape not in expected:
        raise ValueError(f"{name} has shape {array.shape}; expected {expected[0]} (one length per sample)")
    array = array.reshape(n).astype(np.intp)
    if n and array.min() < 0:
        i = int(np.argmin(array))
        raise ValueError(f"{name}[{i}] = {int(array[i])} is negative")
    if upper is not None and n and array.max() > upper:
        i = int(np.argmax(array))
        raise ValueError(f"{name}[{i}] = {int(array[i])} exceeds the input's {upper} frames")
    return array


def _ctc_arrays(log_probs, targets, input_lengths, target_lengths, blank, batch_first):
    """Validated kernel inputs: the float array, its (N, T, C) shape, flat targets with
    each sample's start, lengths, blank, and whether the input was batched."""
    x = as_float_array(log_probs, "log_probs")
    if x.ndim not in (2, 3):
        raise ValueError(f"log_probs must be (T, N, C), (N, T, C) with batch_first, or unbatched (T, C); "
                         f"got shape {x.shape}")
    batched = x.ndim == 3
    shape = (x.shape if batch_first else (x.shape[1], x.shape[0], x.shape[2])) if batched else (1,) + x.shape
    n, n_time, n_classes = shape
    blank = check_integer(blank, "blank")
    if not 0 <= blank < n_classes:
        raise ValueError(f"blank = {blank} is not a class index in [0, {n_classes})")
    in_len = _lengths(input_lengths, n, "input_lengths", batched, n_time)
    tg_len = _lengths(target_lengths, n, "target_lengths", batched)
    t = np.asarray(targets)
    if t.dtype.kind not in "iu":
        raise TypeError(f"targets must hold integer class indices, got dtype {t.dtype}")
    if t.ndim == 2 or (not batched and t.ndim == 1):
        rows = t.reshape(1, -1) if t.ndim == 1 else t
        if rows.shape[0] != n:
            raise ValueError(f"targets has {rows.shape[0]} rows for a batch of {n} samples (log_probs {x.shape})")
        if n and tg_len.max() > rows.shape[1]:
            i = int(np.argmax(tg_len))
            raise ValueError(f"target_lengths[{i}] = {int(tg_len[i])} is longer than its row of targets "
                             f"({rows.shape[1]} entries)")
        flat = np.ascontiguousarray(rows, np.intp).reshape(-1)
        starts = np.arange(n, dtype=np.intp) * rows.shape[1]
        used = np.arange(rows.shape[1]) < tg_len[:, None]
        values = rows[used]
    elif t.ndim == 1:
        if t.shape[0] != int(tg_len.sum()):
            raise ValueError(f"concatenated targets have {t.shape[0]} entries; target_lengths sum to "
                             f"{int(tg_len.sum())}")
        flat = np.ascontiguousarray(t, np.intp)
        starts = np.concatenate([[0], np.cumsum(tg_len)[:-1]]).astype(np.intp) if n else tg_len.copy()
        values = flat
    else:
        raise ValueError(f"targets must be padded (N, S) or concatenated (sum(target_lengths),); got shape {t.shape}")
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


def _row_view(array):
    """The (rows, C) view :func:`_frame_rows` gives, or a C-contiguous scratch array."""
    if array.flags.c_contiguous:
        return array.reshape(-1, array.shape[-1])
    return np.empty((array.size // array.shape[-1], array.shape[-1]), array.dtype)


@overload
def ctc_loss(log_probs: ArrayLike, targets: ArrayLike, input_lengths: ArrayLike, target_lengths: ArrayLike,
             blank: int = ..., reduction: Reduction = ..., zero_infinity: bool = ..., *, from_logits: bool = ...,
             batch_first: bool = ..., grad: Literal[False] = ..., grad_output: ArrayLike | None = ...,
             grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss: ...


@overload
def ctc_loss(log_probs: ArrayLike, targets: ArrayLike, input_lengths: ArrayLike, target_lengths: ArrayLike,
             blank: int = ..., reduction: Reduction = ..., zero_infinity: bool = ..., *, from_logits: bool = ...,
             batch_first: bool = ..., grad: Literal[True], grad_output: ArrayLike | None = ...,
             grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> WithGrad[FloatArray]: ...


@overload
def ctc_loss(log_probs: ArrayLike, targets: ArrayLike, input_lengths: ArrayLike, target_lengths: ArrayLike,
             blank: int = ..., reduction: Reduction = ..., zero_infinity: bool = ..., *, from_logits: bool = ...,
             batch_first: bool = ..., grad: bool, grad_output: ArrayLike | None = ...,
             grad_out: NDArray[Any] | None = ..., backend: Backend = ...) -> Loss | WithGrad[FloatArray]: ...


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
    require_numba("ctc_loss", backend)
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
    log_norm = np.empty((n, n_time) if from_logits else (0, 0), dtype)
    loss = np.empty(n, dtype)
    loss_shape = (n,) if batched else ()
    clamped = np.maximum(tg_len, 1)
    if grad:
        factor = loss_scale(reduction, grad_output, loss_shape, n, dtype)
        scale = np.ascontiguousarray(np.broadcast_to(factor, loss_shape), dtype).reshape(n)
        if reduction == "mean":
            scale = (scale / clamped).astype(dtype)
        buffer = GradientBuffer(x, dtype, grad_out, reads=(targets, input_lengths, target_lengths, scale))
        grad_rows = buffer.view(_row_view, lambda scratch, shape: scratch.reshape(shape))
    else:
        scale = np.empty(0, dtype)
        grad_rows = np.empty((0, 0), dtype)
    neg_inf = dtype.type(-np.inf)
    ctc_alpha_beta_batch(read_only(rows), layout, from_logits, blank, read_only(flat), starts, tg_len, in_len,
                         zero_infinity, neg_inf, table, table_starts, log_norm, scale, loss, grad_rows, grad)
    if reduction == "mean":
        total = sum_float64((loss / clamped).astype(np.float64))
    else:
        total = sum_float64(loss.astype(np.float64)) if reduction == "sum" else 0.0
    result = finish(total, loss.reshape(loss_shape), reduction, n, dtype)
    return (result, buffer.result()) if grad else result


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
    require_numba("ctc_forced_align", backend)
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
    ctc_viterbi_batch(read_only(rows), layout, blank, read_only(flat), starts, tg_len, in_len, x.dtype.type(-np.inf),
                      labels, scores)
    labels = labels.astype(label_dtype)
    return (labels, scores) if batched else (labels[0], scores[0])


# The criterion classes and the exports, from the table of losses.
__all__ = ["ctc_forced_align"] + LOSSES.export(__name__, globals())
