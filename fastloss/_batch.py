r"""How a loss splits along its batch, and how the chunks' results combine exactly.

Streaming over files (:mod:`fastloss.streaming`) and Dask (:mod:`fastloss.dask`)
evaluate any loss chunk by chunk through this one mechanism:

1. :func:`layout` reads the loss's signature: its parameters without a default (the
   data: ``input, target``, ``anchor, positive, negative``, ...) run along the batch
   (axis 0 unless :data:`SPECS` says otherwise); array options shaped like the first
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

A new loss needs an entry in :data:`SPECS` only if it departs from these defaults.
Losses whose batch value is not a sum over samples (mined triplets, Dice) are marked
not decomposable and raise a clear error.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

import numpy as np

from ._reduction import _divide
from ._validation import compute_dtype

PLUMBING = ("grad", "grad_output", "grad_out")


@dataclasses.dataclass(frozen=True)
class Ragged:
    """A 1-D argument holding the batch's variable-length items back to back (CTC's
    concatenated targets); their lengths are the argument named ``lengths``. A 2-D
    (padded) value of the same argument runs along axis 0 instead."""

    lengths: str


@dataclasses.dataclass(frozen=True)
class Mean:
    """An averaging reduction: ``denominator(call, loss_shape)`` gives a chunk's
    denominator (``call``: the chunk's arguments by name; ``loss_shape``: its unreduced
    loss's shape); ``factor(call)``, if given, the per-sample factors ``a`` (axis 0)."""

    denominator: Callable
    factor: Callable | None = None


def _elements(call, loss_shape):
    return float(np.prod(loss_shape, dtype=np.float64))


def _rows(call, loss_shape):
    return float(loss_shape[0]) if loss_shape else 1.0


def _kept_class_targets(weight_name):
    """torch's weighted mean: sum of ``weight[t]`` (or the count) over targets not ignored;
    probability targets average over the elements."""

    def denominator(call, loss_shape):
        target = np.asarray(call["target"])
        if target.dtype.kind == "f":
            return _elements(call, loss_shape)
        kept = target[target != call["ignore_index"]]
        weight = call.get(weight_name) if weight_name else None
        if weight is None:
            return float(kept.size)
        # The loss casts its class weights to the input's compute dtype before summing them.
        dtype = compute_dtype(np.asarray(call["input"][:0]))
        return float(np.asarray(weight, dtype)[kept].sum(dtype=np.float64))

    return denominator


def _per_target_length(call):
    """CTC's "mean": each sample's loss divided by its target length (at least 1)."""
    return 1.0 / np.maximum(np.asarray(call["target_lengths"], np.float64), 1.0)


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    """How one loss batches: ``axes`` overrides the batch axis of arguments by name (an
    int, ``None`` for shared, or :class:`Ragged`); ``means`` maps each averaging
    reduction to its :class:`Mean`; ``grads`` names the arguments the gradient tuple
    follows (default: the first argument), which are also the only arguments that
    :mod:`fastloss.torch` differentiates."""

    axes: dict = dataclasses.field(default_factory=dict)
    means: dict = dataclasses.field(default_factory=lambda: {"mean": Mean(_elements)})
    grads: tuple = ()
    decomposable: bool = True


SPECS = {
    "cross_entropy": BatchSpec(means={"mean": Mean(_kept_class_targets("weight"))}),
    "nll_loss": BatchSpec(means={"mean": Mean(_kept_class_targets("weight"))}),
    "focal_loss": BatchSpec(means={"mean": Mean(_kept_class_targets(None))}),  # alpha does not weight the mean
    "kl_div": BatchSpec(means={"mean": Mean(_elements), "batchmean": Mean(_rows)}),
    "ctc_loss": BatchSpec(axes={"log_probs": 1, "targets": Ragged("target_lengths")},
                          means={"mean": Mean(_rows, _per_target_length)}),
    "margin_ranking_loss": BatchSpec(grads=("input1", "input2")),
    "cosine_embedding_loss": BatchSpec(grads=("input1", "input2")),
    "contrastive_loss": BatchSpec(grads=("input1", "input2")),
    "triplet_margin_loss": BatchSpec(grads=("anchor", "positive", "negative")),
    "triplet_margin_with_distance_loss": BatchSpec(grads=("anchor", "positive", "negative")),
    "gaussian_nll_loss": BatchSpec(grads=("input", "var")),
    "large_margin_cosine_loss": BatchSpec(axes={"weight": None}, grads=("features", "weight")),
    "batch_triplet_loss": BatchSpec(decomposable=False),
    "dice_loss": BatchSpec(decomposable=False),
}


def losses():
    """Every public loss of fastloss by name: the functions with a ``reduction`` option."""
    import fastloss

    found = {}
    for name in dir(fastloss):
        fn = getattr(fastloss, name)
        if inspect.isfunction(fn) and not name.startswith("_"):
            if "reduction" in inspect.signature(fn).parameters:
                found[name] = fn
    return found


def spec_of(fn):
    """The :class:`BatchSpec` of a loss function: its entry in :data:`SPECS`, or the defaults."""
    return SPECS.get(fn.__name__, BatchSpec())


def resolve(loss):
    """``(function, spec)`` for a loss given by name or as the function itself."""
    if isinstance(loss, str):
        known = losses()
        if loss not in known:
            raise ValueError(f"unknown loss {loss!r}; known losses: {', '.join(sorted(known))}")
        fn = known[loss]
    else:
        fn = loss
    spec = spec_of(fn)
    if not spec.decomposable:
        raise ValueError(f"{fn.__name__} is not a per-sample loss (its value over a batch is not a combination "
                         f"of its values over parts of the batch); evaluate it in memory")
    return fn, spec


def bind(fn, args, kwargs):
    """The call's arguments by name, defaults filled in, the gradient plumbing left out."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as error:
        raise ValueError(f"{fn.__name__}: {error}") from None
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in PLUMBING}


def reductions(spec):
    return ("none", "sum") + tuple(spec.means)


def check_reduction(spec, fn, reduction):
    if reduction not in reductions(spec):
        raise ValueError(f"reduction must be one of {', '.join(map(repr, reductions(spec)))} for "
                         f"{fn.__name__}, got {reduction!r}")


def _shape(value):
    shape = getattr(value, "shape", None)
    return tuple(shape) if shape is not None else np.shape(value)


def _label(name, value):
    label = getattr(value, "label", None)
    return f"{name} ({label})" if label else name


def data_parameters(fn):
    """The parameters without a default, in order: the data arguments."""
    return [n for n, p in inspect.signature(fn).parameters.items()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def layout(fn, spec, call):
    """``(n, sliced)``: the batch size and, for each argument that runs along the batch,
    its axis (or its :class:`Ragged`). ValueError if the batch sizes disagree."""
    axes = {name: 0 for name in data_parameters(fn)}
    axes.update(spec.axes)
    declared = [name for name, axis in axes.items() if axis is not None]
    first = declared[0]
    first_axis = axes[first]
    first_shape = _shape(call[first])
    if len(first_shape) <= first_axis:
        raise ValueError(f"{_label(first, call[first])} has shape {first_shape}: no batch axis {first_axis} "
                         f"to split (evaluate unbatched inputs in memory)")
    n = first_shape[first_axis]
    sliced = {}
    for name in declared:
        axis, shape = axes[name], _shape(call[name])
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
        shape = _shape(value)
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
            if found[name][-1] != _shape(call[name])[0]:
                raise ValueError(f"{name} holds {_shape(call[name])[0]} items but {axis.lengths} sums to "
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


def parts(spec, call, reduction, losses):
    """``(numerator, denominator)`` of one chunk: float64 sums to add over chunks."""
    if reduction in spec.means:
        mean = spec.means[reduction]
        terms = losses if mean.factor is None else losses * _along_rows(mean.factor(call), losses.ndim)
        return float(terms.sum(dtype=np.float64)), mean.denominator(call, losses.shape)
    return float(losses.sum(dtype=np.float64)), 0.0


def finish(reduction, numerator, denominator, dtype):
    """The reduced result from the summed parts, as the in-memory call returns it."""
    if reduction == "sum":
        return dtype.type(numerator)
    return dtype.type(_divide(numerator, denominator))


def _along_rows(values, ndim):
    values = np.asarray(values)
    return values.reshape(values.shape + (1,) * (ndim - values.ndim))


def grad_output(spec, call, reduction, scale, loss_ndim):
    """``grad_output`` for a chunk evaluated with ``reduction="none"`` so that its gradient
    is the whole batch's: ``scale`` is ``g`` for "sum" and "none" (scalar, or the chunk of
    the caller's per-element array) and ``g / D`` for a mean."""
    mean = spec.means.get(reduction)
    if mean is not None and mean.factor is not None:
        return scale * _along_rows(mean.factor(call), loss_ndim)
    return scale


def gradient_names(fn, spec):
    return spec.grads or (data_parameters(fn)[0],)


def evaluate(fn, spec, call, reduction, grad=False, scale=1.0, loss_ndim=1):
    """A chunk with ``reduction="none"``: its losses, or ``(losses, grads tuple)`` with the
    gradient scaled as the whole batch's reduction asks (``loss_ndim``: the rank of the
    unreduced loss, to broadcast per-sample factors)."""
    chunk = {**call, "reduction": "none"}
    if not grad:
        return np.asarray(fn(**chunk))
    losses, grads = fn(**chunk, grad=True, grad_output=grad_output(spec, call, reduction, scale, loss_ndim))
    return np.asarray(losses), grads if isinstance(grads, tuple) else (grads,)
