r"""How a loss splits along its batch, and how the chunks' results combine exactly.

Streaming over files (:mod:`fastloss.streaming`) and Dask (:mod:`fastloss.dask`)
evaluate any loss chunk by chunk through this one mechanism:

1. :func:`layout` reads the loss's entry in the table of losses
   (:mod:`fastloss._core.table`): its data arguments (``input, target``, ``anchor,
   positive, negative``, ...) run along the batch (axis 0 unless its ``axes`` say otherwise); array options shaped like the first
   input (per-element weights) are sliced with it; every other option (class weights,
   scalars) is shared by all chunks.
2. Each chunk is evaluated with the call's own ``reduction``, within
   :func:`~fastloss._core.reduction.in_parts`: a reduced loss then comes back as its
   :class:`~fastloss._core.reduction.Parts`, the float64 numerator and the denominator
   that the loss's own wrapper formed (the sum of the kept targets' class weights for
   ``cross_entropy``, CTC's sum of per-length losses over the batch size, ...), with
   the unreduced losses. Over the whole batch

   .. math:: \mathrm{mean} = \frac{\sum_{\mathrm{chunks}} N_{\mathrm{chunk}}}
                                   {\sum_{\mathrm{chunks}} D_{\mathrm{chunk}}}

   so a denominator is stated once, where the loss is written, and the chunked result
   is formed as the in-memory call forms it.
3. A chunk's gradient needs the whole batch's denominator: it is evaluated within
   ``in_parts(denominator)``, and its mean scales the gradient by
   ``grad_output / denominator`` in place of its own.

A loss's entry states its axes only where they depart from these defaults.
Losses whose batch value is not a sum over samples (mined triplets, Dice) are marked
not decomposable there and raise a clear error.
"""
from __future__ import annotations

import inspect

import numpy as np

from .reduction import Parts, _divide, in_parts
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
    if reduction not in entry.reductions:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, entry.reductions))} for "
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


def combine(reduction, numerator, denominator, dtype):
    """The reduced result from the summed parts, as the in-memory call returns it."""
    if reduction == "sum":
        return dtype.type(numerator)
    return dtype.type(_divide(numerator, denominator))


def evaluate(entry, call, grad=False, grad_output=None, denominator=None):
    """A chunk with the call's reduction: its losses (for ``reduction="none"``) or its
    :class:`~fastloss._core.reduction.Parts`, and with ``grad`` also its gradients as a
    tuple, ``grad_output`` (the caller's, or its chunk for "none") scaled by the whole
    batch's ``denominator`` for a mean."""
    fn = entry.function
    with in_parts(denominator):
        if not grad:
            return _checked(fn(**call))
        result, grads = fn(**call, grad=True, grad_output=grad_output)
    return _checked(result), grads if isinstance(grads, tuple) else (grads,)


def _checked(result):
    """The losses of ``reduction="none"`` as an array, or a reduced call's parts."""
    return result if isinstance(result, Parts) else np.asarray(result)
