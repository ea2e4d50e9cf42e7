"""fastloss on Dask arrays chunked along the batch: lazy, exact, gradients as Dask arrays.

Every loss of fastloss is available here under its own name, with its own arguments::

    import dask.array as da
    import fastloss.dask as fld

    logits = da.from_array(x, chunks=(65536, -1))      # or fld.from_npy("logits.npy")
    loss, grad = fld.cross_entropy(logits, target, weight=w, grad=True)
    loss, grad = dask.compute(loss, grad)            # on the cluster

Each chunk of the batch runs the in-memory call with the call's own reduction, in
parts (:func:`fastloss._core.reduction.in_parts`): the chunks' float64 numerators and
denominators, formed by the loss's own code, add up to the reduction exactly as the
in-memory call forms it (weighted means keep their weights; see
:mod:`fastloss._core.batch`), so the result equals ``fastloss.cross_entropy(x, target, ...)``.
A mean's gradient needs the whole batch's denominator first, which the chunks' calls
form as they compute the loss: its graph is a pass for the value (no gradient), then a
pass for the gradient; a sum's or an unreduced loss's graph is one pass. Arguments
that run along the batch are rechunked to the first one's batch chunks (and to one
chunk on their other axes); shared arguments (class weights) travel whole. Results: a 0-d Dask array for a reduced
loss, a Dask array for ``reduction="none"``, and gradients as Dask arrays chunked like
their inputs (or summed over chunks, for a shared argument such as CosFace's weight).

When the call is made, the loss runs on an empty batch made from the arrays' shapes
and dtypes, to learn the result's shape and dtype and to raise bad options at once (a
loss that refuses an empty batch runs on the first sample instead, fetched from the
cluster); for CTC's concatenated targets, the target lengths are computed then too (to
split the targets). The graph has one task per chunk (reading a ``from_npy`` chunk
and evaluating it) and one that combines the reduction: on a small cluster every
further task costs a scheduler round trip.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Literal, overload

import dask
import dask.array as da
import numpy as np

from ._core import batch as _batch
from ._core.table import LOSSES
from .streaming import NpySource

__all__ = ["loss", "from_npy"]


def _call(shared, names, values):
    return {**shared, **dict(zip(names, values))}


def _chunk(entry, grad, grad_output, denominator, shared, names, *values):
    """One chunk: its losses for ``reduction="none"``, else its (numerator, denominator);
    with ``grad`` also its gradients, scaled for the whole batch's ``denominator``."""
    result = _batch.evaluate(entry, _call(shared, names, values), grad, grad_output, denominator)
    result, grads = result if grad else (result, None)
    if not isinstance(result, np.ndarray):
        result = (result.numerator, result.denominator)
    return (result, grads) if grad else result


def _combine(reduction, dtype, parts):
    """The reduced loss from the chunks' (numerator, denominator) pairs."""
    numerators, denominators = zip(*parts)
    return _batch.combine(reduction, sum(numerators), sum(denominators), dtype)


def _denominator(parts):
    return sum(denominator for _, denominator in parts)


def _sum(values):
    return sum(values[1:], values[0])


def _batch_blocks(value, axis, bounds, label):
    """Blocks of ``value`` along ``axis`` at the batch ``bounds``, one chunk elsewhere: delayed
    blocks of a Dask array, or slices of an in-memory array (each travels with its own task,
    with no task of its own to split the array on the cluster first)."""
    if not isinstance(value, da.Array):
        array = np.asarray(value)
        return [array[(slice(None),) * axis + (slice(a, b),)] for a, b in zip(bounds[:-1], bounds[1:])]
    sizes = tuple(int(b - a) for a, b in zip(bounds[:-1], bounds[1:]))
    chunks = {i: -1 for i in range(value.ndim)}
    chunks[axis] = sizes
    blocks = value.rechunk(chunks).to_delayed()
    return list(np.moveaxis(blocks, axis, 0).reshape(len(sizes), -1)[:, 0])


def _probe(entry, call, sliced, ragged, grad):
    """The loss (and gradient) of an empty batch, or if the loss refuses one, of the first
    sample: shapes, dtypes, and bad options raised when the call is made. The empty batch
    is made here from the arrays' shapes and dtypes, with no round trip to the cluster."""
    head = _batch.take(call, sliced, 0, 0, ragged)
    if all(not isinstance(v, da.Array) or not np.isnan(v.shape).any() for v in head.values()):
        empty = {k: (np.empty(v.shape, v.dtype) if isinstance(v, da.Array) else v) for k, v in head.items()}
        try:
            return _batch.evaluate(entry, {**empty, "reduction": "none"}, grad)
        except (ValueError, TypeError, IndexError):
            pass  # the first sample tells, or raises what is wrong
    head = _batch.take(call, sliced, 0, 1, ragged)
    lazy = [k for k, v in head.items() if isinstance(v, da.Array)]
    head.update(zip(lazy, dask.compute(*(head[k] for k in lazy))))  # one round trip for all of them
    return _batch.evaluate(entry, {**head, "reduction": "none"}, grad)


@overload
def loss(loss: str | Callable[..., Any], *args: Any, grad: Literal[False] = ..., grad_output: Any = ...,
         **kwargs: Any) -> da.Array: ...


@overload
def loss(loss: str | Callable[..., Any], *args: Any, grad: Literal[True], grad_output: Any = ...,
         **kwargs: Any) -> tuple[da.Array, Any]: ...


@overload
def loss(loss: str | Callable[..., Any], *args: Any, grad: bool, grad_output: Any = ...,
         **kwargs: Any) -> da.Array | tuple[da.Array, Any]: ...


def loss(loss: str | Callable[..., Any], *args: Any, grad: bool = False, grad_output: Any = None,
         **kwargs: Any) -> da.Array | tuple[da.Array, Any]:
    """``loss`` (a name or a fastloss function) applied to Dask (or NumPy) arrays, lazily.

    Takes the loss's own arguments. Returns a Dask array: 0-d for a reduced loss, the
    unreduced losses for ``reduction="none"``; with ``grad=True``, ``(loss, grad)`` where
    ``grad`` is a Dask array (a tuple of them for several differentiable inputs).
    ``grad_output``: a scalar for reduced losses, or an array shaped like the unreduced
    loss (NumPy or Dask) for ``reduction="none"``.
    """
    entry = _batch.resolve(loss)
    call = _batch.bind(entry, args, kwargs)
    reduction = call["reduction"]
    _batch.check_batch_reduction(entry, reduction)
    n, sliced = _batch.layout(entry, call)
    if n == 0:
        raise ValueError(f"{entry.name}: the batch is empty; evaluate it in memory")
    for axis in sliced.values():
        if isinstance(axis, _batch.Ragged):  # small: the lengths of each sample's targets
            call[axis.lengths] = np.asarray(dask.compute(call[axis.lengths])[0])
    ragged = _batch.offsets(call, sliced)
    reference = next((call[k] for k, a in sliced.items() if isinstance(call[k], da.Array)
                      and not isinstance(a, _batch.Ragged)), None)
    if reference is not None:
        sizes = reference.chunks[sliced[next(k for k in sliced if call[k] is reference)]]
    else:
        sizes = (n,)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    names = list(sliced)
    columns = []
    for name, axis in sliced.items():
        if isinstance(axis, _batch.Ragged):
            columns.append(_batch_blocks(call[name], 0, ragged[name][bounds], name))
        else:
            columns.append(_batch_blocks(call[name], axis, bounds, name))
    blocks = list(zip(*columns))
    shared = {k: v for k, v in call.items() if k not in sliced}
    probe = _probe(entry, call, sliced, ragged, grad)
    head_losses = probe[0] if grad else probe
    rest, dtype = head_losses.shape[1:], head_losses.dtype
    loss_shapes = [(int(b - a),) + rest for a, b in zip(bounds[:-1], bounds[1:])]
    g = 1.0 if grad_output is None else grad_output
    scales, denominator = [g] * len(blocks), None
    if grad and reduction == "none" and np.ndim(g) != 0:
        full = da.broadcast_to(g if isinstance(g, da.Array) else np.asarray(g), (n,) + rest)
        scales = _batch_blocks(full, 0, bounds, "grad_output")
    if not grad or reduction not in ("none", "sum"):
        results = [dask.delayed(_chunk)(entry, False, None, None, shared, names, *values) for values in blocks]
        if grad:  # a mean: the gradient needs the whole batch's denominator, which the chunks' own calls form
            denominator = dask.delayed(_denominator)(results)
    if grad:
        parts = [dask.delayed(_chunk, nout=2)(entry, True, scale, denominator, shared, names, *values)
                 for scale, values in zip(scales, blocks)]
        if denominator is None:  # "none" and "sum": the gradient's pass gives the losses too
            results = [p[0] for p in parts]
    if reduction == "none":
        value = da.concatenate([da.from_delayed(r, shape, dtype) for r, shape in zip(results, loss_shapes)])
    else:
        # One task adds the chunks' parts and divides: every further task would cost a scheduler round trip.
        value = da.from_delayed(dask.delayed(_combine)(reduction, dtype, results), (), dtype)
    if not grad:
        return value
    grads = tuple(_gradient(k, name, parts, call, sliced, bounds, ragged, head)
                  for k, (name, head) in enumerate(zip(entry.differentiable, probe[1])))
    return value, grads if len(grads) > 1 else grads[0]


def _gradient(k, name, parts, call, sliced, bounds, ragged, head):
    """The gradient for argument ``name``: blocks along its batch axis, or summed if shared."""
    blocks = [p[1][k] for p in parts]
    value_shape = _batch.shape_of(call[name])
    axis = sliced.get(name)
    if axis is None:
        return da.from_delayed(dask.delayed(_sum)(blocks), value_shape, head.dtype)
    if isinstance(axis, _batch.Ragged):
        edges, axis = ragged[name][bounds], 0
    else:
        edges = bounds
    shapes = [value_shape[:axis] + (int(b - a),) + value_shape[axis + 1:] for a, b in zip(edges[:-1], edges[1:])]
    return da.concatenate([da.from_delayed(b, s, head.dtype) for b, s in zip(blocks, shapes)], axis=axis)


def _read_rows(path, start, stop):
    return NpySource(path).rows(start, stop)


def from_npy(path: str | os.PathLike[str], chunk_rows: int = 65536) -> da.Array:
    """A ``.npy`` file as a Dask array in chunks of ``chunk_rows`` rows, read where the
    chunk is computed (each task memory-maps its own rows: nothing travels from the
    client, the workers need the path). One task per chunk, which a loss's chunk task
    takes as it is."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    source = NpySource(path)
    if not source.shape:
        raise ValueError(f"{path} holds a 0-d array: there is no batch axis to chunk")
    n, rest = source.shape[0], source.shape[1:]
    starts = range(0, max(n, 1), chunk_rows)
    stops = [min(n, a + chunk_rows) for a in starts]
    name = "from_npy-" + dask.base.tokenize(os.path.abspath(path), os.stat(path).st_mtime_ns, chunk_rows)
    graph = {(name, i) + (0,) * len(rest): (_read_rows, path, a, b) for i, (a, b) in enumerate(zip(starts, stops))}
    chunks = (tuple(b - a for a, b in zip(starts, stops)),) + tuple((d,) for d in rest)
    return da.Array(graph, name, chunks, dtype=source.dtype)


def __getattr__(name: str) -> Callable[..., Any]:
    """``fastloss.dask.<loss>``: every fastloss loss, by name, on Dask arrays."""
    if name.startswith("_") or name not in LOSSES:
        raise AttributeError(f"module 'fastloss.dask' has no attribute {name!r}")
    fn = LOSSES[name].function

    @functools.wraps(fn)
    def on_dask(*args: Any, **kwargs: Any) -> Any:
        return loss(fn, *args, **kwargs)

    on_dask.__doc__ = f"``{name}`` on Dask arrays chunked along the batch (see :func:`fastloss.dask.loss`)."
    return on_dask


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LOSSES.names()))
