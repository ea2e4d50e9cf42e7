r"""How a loss splits along its batch, and how the chunks' results combine exactly.

Streaming over files (:mod:`fastloss.streaming`) and Dask (:mod:`fastloss.dask`)
evaluate any loss chunk by chunk through this one mechanism:

1. :func:`layout` reads the loss's entry in the table of losses
   (:mod:`fastloss._core.table`): its data arguments (``input, target``, ``anchor,
   positive, negative``, ...) run along the batch (axis 0 unless its ``axes`` say otherwise); array options shaped like the first
   input (per-element weights) are sliced with it; every other option (class weights,
   scalars) is shared by all chunks.
2. Each chunk is evaluated with ``reduction="none"``. A reduction is "sum" or an
   average (:class:`Mean`): over the whole batch

   .. math:: \mathrm{mean} = \frac{\sum_i a_i\, \ell_i}{\sum_{\mathrm{chunks}} D_{\mathrm{chunk}}}

   where :math:`\ell` is the unreduced loss, :math:`a` a per-sample factor (1 for
   nearly every loss) and :math:`D` the chunk's own denominator: its element count by
   default, the sum of the class weights of the targets kept for ``cross_entropy`` and
   ``nll_loss``, its rows for ``kl_div``'s "batchmean", ...
3. The float64 numerators and the denominators add up over chunks; the result is
   their ratio in the loss's dtype. Gradients need the global denominator first (it
   depends only on the targets): each chunk then runs with ``grad_output = g a / D``.

A loss's entry states its axes and means only where they depart from these defaults.
Losses whose batch value is not a sum over samples (mined triplets, Dice) are marked
not decomposable there and raise a clear error.
"""
from __future__ import annotations

import inspect

import numpy as np

from .reduction import _divide
from .table import LOSSES, PLUMBING, Loss, Ragged


def resolve(loss) -> Loss:
    """The table entry of a loss given by name or as the function itself; ValueError if
    it is unknown or not a per-sample loss."""
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", None)
    if name not in LOSSES or (not isinstance(loss, str) and LOSSES[name].function is not loss):
        raise ValueError(f"unknown loss {loss!r}; known losses: {', '.join(sorted(LOSSES.names()))}")
    entry = LOSSES[name]
    if not entry.decomposable:
        raise ValueError(f"{name} is not a per-sample loss (its value over a batch is not a combination "
                         f"of its values over parts of the batch); evaluate it in memory")
    return entry


def bind(entry, args, kwargs):
    """The call's arguments by name, defaults filled in, the gradient plumbing left out."""
    try:
        bound = inspect.signature(entry.function).bind(*args, **kwargs)
    except TypeError as error:
        raise ValueError(f"{entry.name}: {error}") from None
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in PLUMBING}


def check_batch_reduction(entry, reduction):
    if reduction not in entry.all_reductions:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, entry.all_reductions))} for "
                         f"{entry.name}, got {reduction!r}")


def shape_of(value):
    """The shape of an array or of a lazy source of one (anything with ``shape``)."""
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else np.shape(value)


def _label(name, value):
    label = getattr(value, "label", None)
    return f"{name} ({label})" if label else name


def layout(entry, call):
    """``(n, sliced)``: the batch size and, for each argument that runs along the batch,
    its axis (or its :class:`Ragged`). ValueError if the batch sizes disagree."""
    axes = {name: 0 for name in entry.data}
    axes.update(entry.axes)
    declared = [name for name, axis in axes.items() if axis is not None]
    first = declared[0]
    first_axis = axes[first]
    first_shape = shape_of(call[first])
    if len(first_shape) <= first_axis:
        raise ValueError(f"{_label(first, call[first])} has shape {first_shape}: no batch axis {first_axis} "
                         f"to split (evaluate unbatched inputs in memory)")
    n = first_shape[first_axis]
    sliced = {}
    for name in declared:
        axis, shape = axes[name], shape_of(call[name])
        if isinstance(axis, Ragged) and len(shape) == 1:
            sliced[name] = axis
            continue
        axis = 0 if isinstance(axis, Ragged) else axis
        if len(shape) <= axis:
            continue  # a scalar: shared by every chunk
        if shape[axis] != n:
            raise ValueError(f"{_label(name, call[name])} has {shape[axis]} rows along axis {axis} but "
                             f"{_label(first, call[first])} has {n}: the batch sizes differ")
        sliced[name] = axis
    for name, value in call.items():
        # Array options shaped like the first input (per-element weights) follow the batch.
        if name in axes or value is None or isinstance(value, (str, bytes, bool, int, float)):
            continue
        shape = shape_of(value)
        if len(shape) == len(first_shape) and shape[first_axis] == n:
            sliced[name] = first_axis
    return n, sliced


def offsets(call, sliced):
    """For each ragged argument, the cumulative offsets of its items (int64, n + 1)."""
    found = {}
    for name, axis in sliced.items():
        if isinstance(axis, Ragged):
            lengths = np.asarray(call[axis.lengths], np.int64)
            found[name] = np.concatenate([[0], np.cumsum(lengths)])
            if found[name][-1] != shape_of(call[name])[0]:
                raise ValueError(f"{name} holds {shape_of(call[name])[0]} items but {axis.lengths} sums to "
                                 f"{found[name][-1]}")
    return found


def take(call, sliced, start, stop, ragged_offsets):
    """The arguments of the chunk of samples [start, stop)."""
    chunk = dict(call)
    for name, axis in sliced.items():
        if isinstance(axis, Ragged):
            bounds = ragged_offsets[name]
            chunk[name] = call[name][int(bounds[start]):int(bounds[stop])]
        else:
            chunk[name] = call[name][(slice(None),) * axis + (slice(start, stop),)]
    return chunk


def parts(entry, call, reduction, losses):
    """``(numerator, denominator)`` of one chunk: float64 sums to add over chunks."""
    if reduction in entry.means:
        mean = entry.means[reduction]
        terms = losses if mean.factor is None else losses * _along_rows(mean.factor(call), losses.ndim)
        return float(terms.sum(dtype=np.float64)), mean.denominator(call, losses.shape)
    return float(losses.sum(dtype=np.float64)), 0.0


def combine(reduction, numerator, denominator, dtype):
    """The reduced result from the summed parts, as the in-memory call returns it."""
    if reduction == "sum":
        return dtype.type(numerator)
    return dtype.type(_divide(numerator, denominator))


def _along_rows(values, ndim):
    values = np.asarray(values)
    return values.reshape(values.shape + (1,) * (ndim - values.ndim))


def grad_output(entry, call, reduction, scale, loss_ndim):
    """``grad_output`` for a chunk evaluated with ``reduction="none"`` so that its gradient
    is the whole batch's: ``scale`` is ``g`` for "sum" and "none" (scalar, or the chunk of
    the caller's per-element array) and ``g / D`` for a mean."""
    mean = entry.means.get(reduction)
    if mean is not None and mean.factor is not None:
        return scale * _along_rows(mean.factor(call), loss_ndim)
    return scale


def evaluate(entry, call, reduction, grad=False, scale=1.0, loss_ndim=1):
    """A chunk with ``reduction="none"``: its losses, or ``(losses, grads tuple)`` with the
    gradient scaled as the whole batch's reduction asks (``loss_ndim``: the rank of the
    unreduced loss, to broadcast per-sample factors)."""
    chunk = {**call, "reduction": "none"}
    fn = entry.function
    if not grad:
        return np.asarray(fn(**chunk))
    losses, grads = fn(**chunk, grad=True, grad_output=grad_output(entry, call, reduction, scale, loss_ndim))
    return np.asarray(losses), grads if isinstance(grads, tuple) else (grads,)
