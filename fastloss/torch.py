"""fastloss's losses on torch tensors: autograd functions, functional forms and criteria.

::

    import fastloss.torch as flt

    criterion = flt.CrossEntropyLoss(label_smoothing=0.1)
    loss = criterion(model(x), y)          # a 0-d tensor
    loss.backward()                        # the gradient fastloss computed in the forward call

Every loss of fastloss is here under its own name, generated from the table of losses
(:mod:`fastloss._core.table`), so a loss added to fastloss appears here with no code of
its own: the functional forms
(``flt.cross_entropy``, ``flt.ctc_loss``, ``flt.focal_loss``, ...) take the fastloss
function's arguments less the gradient plumbing (``grad``, ``grad_output``,
``grad_out``), and the criteria (``flt.CTCLoss``, ``flt.LargeMarginCosineLoss``, ...)
are ``torch.nn.Module`` classes with the constructor arguments of fastloss's criteria
(but for ``flt.LinearCrossEntropyLoss``, which holds the head's parameters as torch's
module does).
This module imports torch; ``import fastloss`` does not.

How a call runs:

* CPU tensors reach the NumPy kernels without a copy (``tensor.detach().numpy()``, any
  strides); the loss and the gradients come back as tensors over the arrays' memory
  (``torch.from_numpy``). CUDA tensors go, detached and without a copy, to the GPU
  kernels (:mod:`fastloss._core.cuda`: the dispatcher of device arrays), which give CUDA
  tensors back (``torch.as_tensor`` over the device memory); autograd runs as on the CPU.
  The GPU kernels are tested under Numba's CUDA simulator, with its device arrays; torch
  CUDA tensors have not been through this path on a GPU yet.
* The differentiable arguments are the ones fastloss differentiates
  (its table entry's ``differentiable``: the first argument, or the tuple its ``grad=True``
  returns, such as CosFace's ``features`` and ``weight``, or CTC's ``log_probs``).
  Every other argument (targets, lengths, class weights) gets no gradient, and one that
  requires grad raises a ValueError rather than silently getting none.
* With nothing to differentiate (no differentiable input requires grad, or under
  ``torch.no_grad()``), a call computes the loss alone and bypasses autograd.
* Reduced losses: when an input requires grad, forward makes one fused ``grad=True``
  call and keeps the gradient (:class:`FusedLoss` for a loss of one differentiable
  argument, the common case, with less Python; :class:`LossFunction` otherwise); backward hands it over (autograd makes it the leaf's
  ``.grad`` without a copy, as nothing else holds it), scaled in place by the incoming
  scalar unless that is 1. A retained graph's next backward computes it again.
* A criterion called with two CPU tensors, the input that requires grad and the target,
  makes that fused call straight away (:func:`functional`'s ``pair``): the same call,
  without binding the arguments and splitting them again.
* ``reduction="none"``: forward computes the values only; backward calls fastloss again
  with ``grad_output=`` the incoming gradient, which is exact for every loss (a
  per-anchor triplet loss, for one, mixes rows, so the gradient cannot be rescaled
  row by row).
* First derivatives only: a backward with ``create_graph=True`` (double backward,
  gradient penalties) raises a RuntimeError. (``once_differentiable`` would not do:
  it lets such a backward through, with the gradient a constant, whenever the incoming
  gradient needs no grad, so a second-order term would silently be zero.)
* float32 and float64 are differentiated in their own precision; an input that requires
  grad in another dtype (float16, bfloat16, complex) raises a TypeError. Without grad,
  float16 computes in float32 as in the NumPy API, and bfloat16 (which NumPy lacks) is
  converted to float32 first.
* Bad input raises what the NumPy API raises for it: these wrappers just call it.
* Under ``torch.compile`` a loss is the custom operator ``torch.ops.fastloss.<name>``
  (see :func:`custom_op`), which the compiler traces without a graph break.
"""
from __future__ import annotations

import ast
import functools
import inspect
import itertools
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import torch

import fastloss

from ._core.criterion import Criterion
from ._core.table import LOSSES, PLUMBING
from .embedding import check_triplet_with_distance

_DIFFERENTIABLE_DTYPES = (torch.float32, torch.float64)
# The types of most option values: never tensors.
_PLAIN = frozenset({type(None), bool, int, float, str})

if TYPE_CHECKING:
    def __getattr__(name: str) -> Any:
        """For type checkers: the generated losses and criteria (set below, from fastloss's)."""


def as_array(value: Any, name: str) -> Any:
    """A CPU tensor as a NumPy array over the same memory, a CUDA tensor detached (the
    GPU kernels take it through ``__cuda_array_interface__``); anything else as it is.
    TypeError for a tensor on another device."""
    if not isinstance(value, torch.Tensor):
        return value
    if value.requires_grad:
        value = value.detach()
    if value.dtype is torch.bfloat16:  # NumPy has no bfloat16; narrow floats compute in float32 anyway
        value = value.float()
    if value.is_cpu:  # the flags, not .device: that makes an object (a microsecond)
        return value.numpy()
    if value.is_cuda:
        return value
    raise TypeError(f"{name} is a {value.device.type} tensor: fastloss computes on the CPU and on CUDA GPUs; "
                    f"pass CPU tensors ({name}.cpu())")


def _as_tensor(value):
    """A result as a tensor: a CUDA tensor (from the GPU kernels) as it is, a NumPy array
    or scalar over its memory."""
    if isinstance(value, torch.Tensor):
        return value
    return torch.from_numpy(np.asarray(value))


def _incoming(grad_output):
    """The incoming gradient as the loss function takes it: a CUDA tensor as it is, a CPU one
    as a NumPy array."""
    return grad_output if grad_output.is_cuda else grad_output.numpy()


def _as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


def split_call(fn: Callable[..., Any], call: dict[str, Any],
               differentiable: Sequence[str]) -> tuple[tuple[Any, ...], bool]:
    """Takes the arguments ``differentiable`` out of ``call`` and returns them (in that order)
    with whether autograd wants a gradient (grad mode on and one of them a tensor that
    requires grad); the other tensors of ``call`` become arrays in place (:func:`as_array`).
    One pass over the arguments, which also refuses, before any kernel runs, a tensor that
    requires a gradient fastloss cannot give."""
    grad_enabled = torch.is_grad_enabled()
    wanted = False
    for name, value in call.items():
        if type(value) in _PLAIN or not isinstance(value, torch.Tensor):  # the set first: a fifth of isinstance's cost
            continue
        if grad_enabled and value.requires_grad:
            if name not in differentiable:
                raise ValueError(f"{fn.__name__}: {name} requires grad, but fastloss differentiates only with "
                                 f"respect to {', '.join(differentiable)}; pass {name}.detach()")
            if value.dtype not in _DIFFERENTIABLE_DTYPES:
                raise TypeError(f"{fn.__name__}: {name} requires grad in dtype {value.dtype}, but fastloss "
                                f"differentiates float32 and float64 only; cast it with {name}.float() or "
                                f"{name}.double()")
            wanted = True
        elif name not in differentiable:
            call[name] = as_array(value, name)  # a new value for a key: the iteration goes on
    return tuple(map(call.pop, differentiable)), wanted


class LossFunction(torch.autograd.Function):
    """Any fastloss loss as an autograd function.

    ``LossFunction.apply(fn, options, names, *inputs)`` is ``fn(**options, **dict(zip(names,
    inputs)))`` as a tensor, differentiable with respect to ``inputs`` (the arguments
    ``fn(..., grad=True)`` differentiates, in its gradient tuple's order); ``options``
    holds every other argument, already as NumPy arrays or Python values.
    """

    @staticmethod
    def forward(ctx, fn, options, names, *inputs):
        call = dict(options)
        for name, value in zip(names, inputs):
            call[name] = as_array(value, name)
        if not any(ctx.needs_input_grad[3:]):
            return _as_tensor(fn(**call))
        ctx.fn, ctx.call, ctx.grads = fn, call, None
        # The inputs' versions, checked before backward reads the arrays again (autograd's own
        # check of saved tensors would also refuse an in-place change that the fused gradient
        # below does not care about).
        ctx.inputs = [(value, value._version) for value in inputs if isinstance(value, torch.Tensor)]
        if options["reduction"] == "none":
            return _as_tensor(fn(**call))
        value, ctx.grads = fn(**call, grad=True)
        return _as_tensor(value)

    @staticmethod
    def backward(ctx, grad_output):
        _first_derivatives_only(ctx)
        grads, ctx.grads = ctx.grads, None
        if grads is None:  # reduction="none", or a retained graph's second backward: computed again
            _check_unchanged(ctx)
            _, grads = ctx.fn(**ctx.call, grad=True, grad_output=_incoming(grad_output))
        elif grad_output.is_cuda or grad_output.item() != 1:
            # Otherwise the forward call's gradient is handed over as it is: nothing else holds it,
            # so autograd makes it the leaf's .grad without a copy. (A Python comparison is
            # cheaper than a tensor one, but on a GPU it would synchronise.) Scaled in place.
            grads = tuple(_as_tensor(g).mul_(grad_output) for g in _as_tuple(grads))
        needed = ctx.needs_input_grad[3:]
        # An input left None (linear_cross_entropy's bias) has no gradient in the tuple: None for it.
        return (None, None, None) + tuple(_as_tensor(g) if need else None
                                          for g, need in itertools.zip_longest(_as_tuple(grads), needed))


class FusedLoss(torch.autograd.Function):
    """:class:`LossFunction`'s most common call with less Python: a reduced loss of one
    differentiable tensor, its gradient from the forward call (a 256x10 cross-entropy's
    forward and backward through a criterion took about 3 µs less than through
    :class:`LossFunction`).

    ``FusedLoss.apply(fn, call, name, input)`` is ``fn(**call, name=input)`` as a tensor,
    differentiable with respect to ``input``; ``call`` holds every other argument, already
    as NumPy arrays or Python values, its ``reduction`` one that reduces, and gets
    ``name``'s array.
    """

    @staticmethod
    def forward(ctx, fn, call, name, input):
        call[name] = as_array(input, name)
        value, ctx.grad = fn(**call, grad=True)
        ctx.fn, ctx.call, ctx.inputs = fn, call, ((input, input._version),)
        return _as_tensor(value)

    @staticmethod
    def backward(ctx, grad_output):
        _first_derivatives_only(ctx)
        grad, ctx.grad = ctx.grad, None
        if grad is None:  # a retained graph's second backward: computed again
            _check_unchanged(ctx)
            _, grad = ctx.fn(**ctx.call, grad=True, grad_output=_incoming(grad_output))
            return None, None, None, _as_tensor(grad)
        # As LossFunction's: handed over, scaled in place unless the incoming gradient is 1.
        grad = _as_tensor(grad)
        if grad_output.is_cuda or grad_output.item() != 1:
            grad.mul_(grad_output)
        return None, None, None, grad


# torch.func's transforms (grad, vmap, jacrev, ...) wrap tensors that have no memory a kernel
# could read: refused with a TypeError (see functional).
_transforms_active = getattr(torch._C, "_are_functorch_transforms_active", lambda: False)
# FusedLoss.apply less torch.autograd.Function.apply's Python wrapper, which binds the arguments of
# a setup_context (FusedLoss has none), sends torch.func's transforms their own way (refused before
# this) and unwraps a tensor that outlived its transform (done here, in C): a 256x10 cross-entropy's
# forward and backward took about a microsecond less.
_apply_function = super(torch.autograd.Function, FusedLoss).apply
_unwrap_if_dead = getattr(getattr(torch._C, "_functorch", None), "unwrap_if_dead", lambda tensor: tensor)


def _first_derivatives_only(ctx):
    """RuntimeError in a backward with ``create_graph=True``: a second derivative is on its way."""
    if torch.is_grad_enabled():
        raise RuntimeError(f"fastloss.torch.{ctx.fn.__name__} gives first derivatives only: it cannot be "
                           f"differentiated twice (backward with create_graph=True)")


def _check_unchanged(ctx):
    """RuntimeError, as autograd's, if an input was changed in place since the forward call."""
    for tensor, version in ctx.inputs:
        if tensor._version != version:
            raise RuntimeError(f"one of the variables needed for gradient computation has been modified by an "
                               f"inplace operation: fastloss.torch.{ctx.fn.__name__}'s input of shape "
                               f"{tuple(tensor.shape)} is at version {tensor._version}; expected version {version}")


def binder(fn: Callable[..., Any], parameters: Sequence[inspect.Parameter]) -> Callable[..., dict[str, Any]]:
    """A function of ``parameters`` (positional-or-keyword, then keyword-only) that returns
    its arguments by name, defaults applied: ``inspect.Signature.bind`` then
    ``apply_defaults``, generated once as dataclasses generate ``__init__`` (a call costs
    about a tenth), and named after ``fn`` for its TypeErrors."""
    defaults = {f"_{p.name}": p.default for p in parameters if p.default is not p.empty}
    head = []
    for p in parameters:
        if p.kind is p.KEYWORD_ONLY and "*" not in head:
            head.append("*")
        head.append(p.name if p.default is p.empty else f"{p.name}=_{p.name}")
    body = ", ".join(f"{p.name!r}: {p.name}" for p in parameters)
    namespace = dict(defaults)
    exec(f"def {fn.__name__}({', '.join(head)}):\n    return {{{body}}}\n", namespace)
    return namespace[fn.__name__]


def functional(name: str) -> Callable[..., torch.Tensor]:
    """The torch form of fastloss loss ``name``: its arguments less ``grad``, ``grad_output``
    and ``grad_out``, tensors in, a tensor out, differentiable by autograd; under
    ``torch.compile``, the custom operator ``torch.ops.fastloss.<name>``."""
    entry = LOSSES[name]
    fn = entry.function
    parameters = [p for p in inspect.signature(fn).parameters.values() if p.name not in PLUMBING]
    bind = binder(fn, parameters)
    differentiable = entry.differentiable
    operator = custom_op(name)
    single = differentiable[0] if len(differentiable) == 1 else None

    def run(call: dict[str, Any]) -> torch.Tensor:
        """The loss of a bound call (every argument by name, defaults applied), which it takes apart."""
        if torch.compiler.is_compiling():
            return operator(call)
        if _transforms_active():
            raise TypeError(f"fastloss.torch.{fn.__name__} cannot run under torch.func's transforms (grad, vmap, "
                            f"jacrev, ...): its kernels read the tensors' memory; differentiate it with autograd "
                            f"(loss.backward(), torch.autograd.grad)")
        inputs, wanted = split_call(fn, call, differentiable)
        if not wanted:
            # Nothing to differentiate (evaluation, torch.no_grad()): the loss alone, past autograd.
            return _as_tensor(fn(**call, **{name: as_array(v, name) for name, v in zip(differentiable, inputs)}))
        if single is not None and call["reduction"] != "none":
            return _apply_function(fn, call, single, _unwrap_if_dead(inputs[0]))
        return LossFunction.apply(fn, call, differentiable, *inputs)

    def loss(*args: Any, **kwargs: Any) -> torch.Tensor:
        return run(bind(*args, **kwargs))

    # A criterion's most common call: a loss of two data arguments, the differentiable one first,
    # the second the parameter that bind gives a second positional argument.
    second = parameters[1].name
    paired = tuple(entry.data) == (single, second) and parameters[0].name == single

    def pair(options: dict[str, Any], input: Any, other: Any) -> torch.Tensor:
        """``loss(input, other, **options)`` for a criterion, whose options are plain values
        (its tensors are buffers). Where ``input`` is a CPU tensor that requires grad in
        float32 or float64, ``other`` a CPU tensor that does not, grad mode is on and the
        reduction reduces, this is the call that ``run`` would make, made straight away: a
        256x10 cross-entropy's forward and backward took about 3 µs less than through the
        binding and the splitting (40 µs). Otherwise ``run`` makes it."""
        if (not torch.compiler.is_compiling() and type(input) is torch.Tensor and type(other) is torch.Tensor
                and input.requires_grad and not other.requires_grad and input.is_cpu and other.is_cpu
                and input.dtype in _DIFFERENTIABLE_DTYPES and other.dtype is not torch.bfloat16
                and options["reduction"] != "none" and torch.is_grad_enabled() and not _transforms_active()):
            call = dict(options)
            call[second] = other.numpy()
            return _apply_function(fn, call, single, _unwrap_if_dead(input))
        return run(bind(input, other, **options))

    loss.pair = pair if paired else None  # type: ignore[attr-defined]  # for the criteria (Loss.forward)
    loss.__name__ = loss.__qualname__ = fn.__name__
    loss.__module__ = __name__
    loss.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    loss.__doc__ = (f":func:`fastloss.{fn.__name__}` on torch tensors, differentiable with respect to "
                    f"{', '.join(differentiable)}.\n\nSame arguments, less the gradient plumbing: "
                    f"``loss.backward()`` gives the gradient. See :mod:`fastloss.torch`.")
    return loss


# ---------------------------------------------------------------- custom operators, for torch.compile

_OPERATOR_SCHEMA = "(Tensor?[] tensors, Tensor? grad_output, str options) -> Tensor[]"


@functools.lru_cache(maxsize=None)
def _decode(options: str) -> tuple[tuple[str, ...], dict[str, Any], bool]:
    """An operator's ``options`` string: the names of its ``tensors``, every other argument, and
    whether the gradient is wanted (a Python literal, made by :func:`custom_op`'s ``call``)."""
    names, others, want_grad = ast.literal_eval(options)
    return names, others, want_grad


def _fake_value(fn, names, tensors, others):
    """The loss's shape and dtype for fake (shape-only) tensors: ``fn`` run on stand-ins of
    the tensors' shapes and dtypes that are all ones (valid for every loss of the table).
    Only tracing runs it. The stand-ins are C-contiguous arrays, as the eager calls' arrays
    usually are, so that the kernels compiled for those serve (a new specialisation would
    compile during tracing). A first run of a kernel was seen to change the OpenMP
    thread count that torch reads, which tracing must leave as it is: restored here."""
    stand_ins = {}
    for name, tensor in zip(names, tensors):
        if tensor is not None:
            dtype = "float32" if tensor.dtype == torch.bfloat16 else str(tensor.dtype).removeprefix("torch.")
            stand_ins[name] = np.ones(tuple(int(n) for n in tensor.shape), dtype)
    threads = torch.get_num_threads()
    try:
        value = np.asarray(fn(**others, **stand_ins))
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return value.shape, getattr(torch, value.dtype.name)


def custom_op(name: str) -> Callable[[Mapping[str, Any]], torch.Tensor]:
    """Register fastloss loss ``name`` as the torch custom operator ``fastloss::<name>``
    (:func:`torch.library.custom_op`, with its fake implementation and its autograd
    formula) and return ``call``, which calls it with the loss's bound arguments.

    One schema serves every loss: ``(Tensor?[] tensors, Tensor? grad_output, str options)
    -> Tensor[]``. ``tensors`` are the call's tensors, the differentiable ones first, in
    the order of the table entry's ``differentiable``; ``options`` is the Python literal of
    their names, every other argument (numbers, strings, None; a constant of the traced
    graph) and whether the gradient is wanted. The result is ``[loss, *gradients]``:
    with a reduction the gradient comes from the same fused call, as in eager mode, and the
    backward formula scales it; ``reduction="none"`` computes the loss only, and backward
    calls the operator again with ``grad_output``.
    """
    entry = LOSSES[name]
    fn = entry.function
    differentiable = entry.differentiable

    @torch.library.custom_op(f"fastloss::{name}", mutates_args=(), schema=_OPERATOR_SCHEMA)
    def operator(tensors, grad_output, options):
        names, others, want_grad = _decode(options)
        call = {**others, **{name: as_array(tensor, name) for name, tensor in zip(names, tensors)}}
        if not want_grad:
            return [_as_tensor(fn(**call))]
        value, grads = fn(**call, grad=True, grad_output=None if grad_output is None else _incoming(grad_output))
        return [_as_tensor(value), *(_as_tensor(g) for g in _as_tuple(grads))]

    @operator.register_fake
    def _(tensors, grad_output, options):
        names, others, want_grad = _decode(options)
        shape, dtype = _fake_value(fn, names, tensors, others)
        value = tensors[0].new_empty(shape, dtype=dtype)
        if not want_grad:
            return [value]
        return [value, *(torch.empty_like(t, memory_format=torch.contiguous_format)
                         for t in tensors[:len(differentiable)] if t is not None)]

    def setup_context(ctx, inputs, output):
        tensors, _, options = inputs
        names, others, _ = _decode(options)
        ctx.present = [t is not None for t in tensors]
        ctx.none = others["reduction"] == "none"
        if ctx.none:  # the inputs, for the operator's second call
            ctx.options = repr((names, others, True))
            ctx.save_for_backward(*(t for t in tensors if t is not None))
        else:  # the fused gradients
            ctx.save_for_backward(*output[1:])

    def backward(ctx, grads_of_outputs):
        grad_output = grads_of_outputs[0]
        if ctx.none:
            saved = iter(ctx.saved_tensors)
            tensors = [next(saved) if present else None for present in ctx.present]
            grads = iter(operator(tensors, grad_output, ctx.options)[1:])
        else:
            grads = iter(g * grad_output for g in ctx.saved_tensors)
        return [next(grads) if present and i < len(differentiable) else None
                for i, present in enumerate(ctx.present)], None, None

    operator.register_autograd(backward, setup_context=setup_context)

    def call(arguments: Mapping[str, Any]) -> torch.Tensor:
        order = [*differentiable, *(k for k in arguments if k not in differentiable)]
        names = tuple(k for k in order if k in differentiable or isinstance(arguments[k], torch.Tensor))
        others = {k: v for k, v in arguments.items() if k not in names}
        want_grad = torch.is_grad_enabled() and any(
            isinstance(arguments[k], torch.Tensor) and arguments[k].requires_grad for k in differentiable)
        return operator([arguments[k] for k in names], None, repr((names, others, want_grad)))[0]

    return call


class Loss(torch.nn.Module):
    """A fastloss criterion as a ``torch.nn.Module``: options fixed at construction,
    ``crit(*inputs)`` gives the loss tensor.

    Tensor options (class weights, ``pos_weight``) are registered as buffers, so that
    ``.to()``, ``.double()`` and ``state_dict()`` carry them, as in torch's criteria.
    """

    function: Any = None  # the functional form, set by each generated class
    _pair: Any = None  # its form for two inputs and the options (see functional), where it has one

    def __init__(self, *args, **kwargs):
        super().__init__()
        bound = self.__signature__.bind(*args, **kwargs)
        bound.apply_defaults()
        self.options = {}
        for name, value in bound.arguments.items():
            if isinstance(value, torch.Tensor):
                self.register_buffer(name, value)
            else:
                self.options[name] = value

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        # The buffers straight from their dict: ``named_buffers`` costs microseconds a call. One
        # set to None (``crit.weight = None``) is passed as None, the argument's default.
        if len(inputs) == 2 and not self._buffers and self._pair is not None:
            return self._pair(self.options, *inputs)
        return type(self).function(*inputs, **self.options, **self._buffers)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items() if not hasattr(v, "shape"))


def module(base: type[Criterion], functions: Mapping[str, Callable[..., torch.Tensor]]) -> type[Loss]:
    """The ``torch.nn.Module`` form of fastloss criterion class ``base``."""
    name = base.function.__name__
    function = functions[name]
    pair = getattr(function, "pair", None)
    return type(base.__name__, (Loss,), {
        "function": staticmethod(function),
        "_pair": None if pair is None else staticmethod(pair),
        "__signature__": base.__signature__,
        "__doc__": f"Criterion form of :func:`fastloss.torch.{name}`: ``{base.__name__}{base.__signature__}``.",
        "__module__": __name__,
        "__qualname__": base.__name__,
    })


def with_distance_function(loss):
    """``triplet_margin_with_distance_loss`` on tensors: a named distance (or None) runs
    fastloss's fused kernel through :func:`functional`'s ``loss``; a Python callable is
    composed with torch operations as ``torch.nn.functional`` composes it, so that autograd
    differentiates the callable, after the NumPy API's checks of every other argument."""
    signature = loss.__signature__

    def call(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        options = bound.arguments
        if not callable(options["distance_function"]):
            return loss(*args, **kwargs)
        check_triplet_with_distance(*(as_array(options[name], name) for name in ("anchor", "positive", "negative")),
                                    options["distance_function"], options["margin"], options["swap"],
                                    options["reduction"])
        return torch.nn.functional.triplet_margin_with_distance_loss(
            options["anchor"], options["positive"], options["negative"], distance_function=options["distance_function"],
            margin=options["margin"], swap=options["swap"], reduction=options["reduction"])

    functools.update_wrapper(call, loss)
    call.__signature__ = signature
    return call


class LinearCrossEntropyLoss(torch.nn.Module):
    """:func:`fastloss.torch.linear_cross_entropy` as torch's ``nn.LinearCrossEntropyLoss``:
    the module holds the head, ``self.linear`` (a ``torch.nn.Linear(in_features,
    num_classes, bias=bias)``), and ``crit(input, target)`` gives the loss of
    ``input @ linear.weight.T + linear.bias``, autograd reaching the input, the weight and
    the bias. The arguments are torch's, less ``out_features`` (K-dimensional heads) and
    ``options``, with fastloss's ``chunk_size`` and ``backend``; ``weight`` is a buffer.
    """

    def __init__(self, in_features: int, num_classes: int, *, bias: bool = False, device: Any = None,
                 dtype: Any = None, reduction: str = "mean", weight: torch.Tensor | None = None,
                 ignore_index: int | None = None, label_smoothing: float = 0.0, chunk_size: int | None = None,
                 backend: str | None = None) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(in_features, num_classes, bias=bias, device=device, dtype=dtype)
        self.register_buffer("weight", weight)
        self.options = {"reduction": reduction, "ignore_index": ignore_index, "label_smoothing": label_smoothing,
                        "chunk_size": chunk_size, "backend": backend}

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _FUNCTIONS["linear_cross_entropy"](input, self.linear.weight, target, linear_bias=self.linear.bias,
                                                  weight=self.weight, **self.options)

    def extra_repr(self) -> str:
        return (f"in_features={self.linear.in_features}, num_classes={self.linear.out_features}, "
                f"bias={self.linear.bias is not None}, " + ", ".join(f"{k}={v!r}" for k, v in self.options.items()))


_FUNCTIONS = {name: functional(name) for name in LOSSES.names()}
_FUNCTIONS["triplet_margin_with_distance_loss"] = with_distance_function(
    _FUNCTIONS["triplet_margin_with_distance_loss"])
_MODULES = {entry.criterion: module(getattr(fastloss, entry.criterion), _FUNCTIONS) for entry in LOSSES}
_MODULES["LinearCrossEntropyLoss"] = LinearCrossEntropyLoss  # holds the head's parameters, as torch's does
globals().update(_FUNCTIONS)
globals().update(_MODULES)

__all__ = ["LossFunction", "FusedLoss", "Loss", "functional", "module", *sorted(_FUNCTIONS), *sorted(_MODULES)]
