"""The CPU kernels of :mod:`fastloss.ctc`: Numba functions, compiled just in time;
the wrappers that validate and call them are in ``fastloss/ctc/__init__.py``."""
from __future__ import annotations

import numpy as np

from .._core.jit import jit, prange
from .._core.numerics import exp_fast, log_fast, row_max, sum_exp_shifted, typed

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
def _gather_shifted_emissions(row, ext, norm, lo, hi, out):
    """:func:`_gather_emissions` relative to the frame's shift, which it returns: the
    largest of the band's emissions when it is finite, else ``norm`` (the frame's
    log-softmax normaliser, or 0 for log-probabilities), as without the shift.

    Every path takes one emission per frame, so the log-likelihood is the shifted
    tables' plus the sum over frames of (shift - norm). The tables then hold numbers near
    0 however large the logits: a logit of 1e300 beside the target's classes no longer
    swallows their finite parts (y - 1e300 is -1e300 for every y), and the posteriors
    stay exact."""
    classes = ext[lo + _PAD:hi + _PAD + 1]
    top = typed(-np.inf, norm)
    for i in range(classes.shape[0]):
        v = row[classes[i]]
        top = v if v > top else top
    shift = top if abs(top) < np.inf else norm
    _gather_emissions(row, ext, shift, lo, hi, out)
    return shift


@jit()
def _alpha_row(prev, cur, emit, skip, lo, hi):
    """One forward step over the band [lo, hi] of padded rows (vectorised)."""
    a, b = lo + _PAD, hi + _PAD + 1
    dest, stay, step, jump, mask, e = cur[a:b], prev[a:b], prev[a - 1:b - 1], prev[a - 2:b - 2], skip[a:b], emit[a:b]
    for i in range(dest.shape[0]):
        dest[i] = _log_add3(stay[i], step[i], jump[i] + mask[i]) + e[i]


@jit()
def _beta_posterior_row(nxt, cur, emit, skip, alpha, nll, lo, hi, out):
    """One backward step over the band [lo, hi] of padded rows, and the posterior of each
    of its cells (vectorised).

    beta = b + emission, with b the log-sum of the successors; posterior = exp(alpha + b +
    nll). Formed from b, never as beta - emission: an emission of -1e300 (a huge logit
    elsewhere in the frame) would swallow beta's finite part, and the difference would
    not be the posterior's 0."""
    a, b = lo + _PAD, hi + _PAD + 1
    dest, stay, step, jump = cur[a:b], nxt[a:b], nxt[a + 1:b + 1], nxt[a + 2:b + 2]
    mask, e, fwd, post = skip[a + 2:b + 2], emit[a:b], alpha[a:b], out[a:b]
    for i in range(dest.shape[0]):
        rest = _log_add3(stay[i], step[i], jump[i] + mask[i])
        dest[i] = rest + e[i]
        post[i] = exp_fast(fwd[i] + rest + nll)


@jit()
def _last_posterior_row(cur, emit, alpha, nll, lo, hi, out):
    """The last frame's :func:`_beta_posterior_row`: b = 0 on its final cells (the two
    ending cells, those of the band from ``hi - 1``), -inf below."""
    for p in range(lo + _PAD, hi + _PAD + 1):
        rest = typed(0, nll) if p >= hi + _PAD - 1 else typed(-np.inf, nll)
        cur[p] = rest + emit[p]
        out[p] = exp_fast(alpha[p] + rest + nll)


@jit()
def _fill(out, value):
    for c in range(out.shape[0]):
        out[c] = value


@jit()
def _write_scaled_softmax(row, top, log_sum, scale, out):
    """out[c] = scale * exp((row[c] - top) - log_sum), the softmax by
    :func:`_log_softmax_norm`'s two parts (vectorised)."""
    for c in range(row.shape[0]):
        out[c] = scale * exp_fast((row[c] - top) - log_sum)


@jit()
def _log_softmax_norm(row):
    """(max, log(sum_c exp(row[c] - max))): the log-softmax normaliser in two parts, so that
    (y - max) - log_sum keeps the log_sum beside a huge max (two logits of 1e300: -log 2,
    where 1e300 + log 2 would round to 1e300); NaN if the row holds a NaN or is all -inf (as
    torch). Typed: the forward and backward sweeps must subtract the same (float32) numbers."""
    top = row_max(row)
    return top, typed(np.log(sum_exp_shifted(row, top)), top)


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
                         input_lengths, zero_infinity, neg_inf, table, table_starts, log_norm, shifts, scale, loss,
                         grad, want_grad):
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
    ``log_norm`` (N, T, 2), :func:`_log_softmax_norm`'s parts). Each frame's emissions are taken relative to its
    :func:`_gather_shifted_emissions`, kept in ``shifts`` (N, T) for the backward sweep. ``loss[b]`` gets the negative
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
        shifted_lik = zero  # the log-likelihood of the shifted tables (see _gather_shifted_emissions)
        if n_frames == 0:
            nll = zero if n_labels == 0 else -neg_inf
        else:
            # the whole alpha table for the backward sweep; two rolling rows for the loss alone
            n_rows = n_frames if want_grad else min(n_frames, 2)
            alpha = table[table_starts[b]:table_starts[b] + n_rows * padded].reshape((n_rows, padded))
            emit = np.empty(padded, loss.dtype)
            log_scale = zero  # the sum over frames of (shift - norm)
            for t in range(n_frames):
                row = log_probs[first + t * frame_stride]
                top = zero
                log_sum = zero
                if from_logits:
                    top, log_sum = _log_softmax_norm(row)
                    log_norm[b, t, 0] = top
                    log_norm[b, t, 1] = log_sum
                lo = max(0, width - 2 * (n_frames - t)) if t else 0
                hi = width - 1 if t else min(1, width - 1)  # torch's first row: the first blank and label
                shift = _gather_shifted_emissions(row, ext, top + log_sum, lo, hi, emit)
                shifts[b, t] = shift
                log_scale += (shift - top) - log_sum
                cur = alpha[t % n_rows]
                if t == 0:
                    _fill(cur, neg_inf)
                    for p in range(_PAD, hi + _PAD + 1):
                        cur[p] = emit[p]
                    continue
                cur[0] = neg_inf
                cur[1] = neg_inf
                _alpha_row(alpha[(t - 1) % n_rows], cur, emit, skip, lo, width - 1)
            last = alpha[(n_frames - 1) % n_rows]
            if n_labels == 0:
                shifted_lik = last[_PAD]
            else:
                shifted_lik = _log_add3(last[width - 1 + _PAD], last[width - 2 + _PAD], neg_inf)
            log_lik = shifted_lik + log_scale
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
            lo = max(0, width - 2 * (n_frames - t))
            hi = min(2 * t + 1, width - 1)
            cur = rows[t & 1]
            _gather_emissions(row, ext, shifts[b, t], lo, hi, emit)
            if t == n_frames - 1:
                _last_posterior_row(cur, emit, alpha[t], -shifted_lik, lo, hi, post)
            else:
                _beta_posterior_row(rows[(t + 1) & 1], cur, emit, skip, alpha[t], -shifted_lik, lo, hi, post)
            # the two cells below the band are read by the next (earlier) step
            cur[lo] = neg_inf
            cur[lo + 1] = neg_inf
            out = grad[first + t * frame_stride]
            if from_logits:
                _write_scaled_softmax(row, log_norm[b, t, 0], log_norm[b, t, 1], s_b, out)
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
