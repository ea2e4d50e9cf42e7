r"""Margin and ranking losses: value and gradient fused.

Three shapes of computation, one kernel each:

* elementwise (``margin_ranking_loss``, ``hinge_embedding_loss``, ``soft_margin_loss``,
  the binary ``hinge_loss``, and ``multilabel_soft_margin_loss``, a logistic loss
  summed over classes): scalar kernels of the one elementwise driver
  (:mod:`fastloss._core.elementwise`);
* a multi-class hinge over a row of class scores, :func:`class_margin_rows`, with
  :math:`h_i = \mathrm{margin} - x_t + x_i` for the competitors :math:`i \ne t`: summed
  (``multi_margin_loss``, Weston-Watkins as torch computes it) or maximised (the
  Crammer-Singer ``hinge_loss`` of scikit-learn);
* a hinge over target-set / non-target-set pairs of a row,
  :func:`multilabel_margin_rows` (``multilabel_margin_loss``).

Every kernel follows torch's own computation closely enough that NaN and inf come out
where torch's do, and reads what it needs of an element or row before it writes that
element's or row's gradient, so that ``grad_out`` may be the input itself.
"""
from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np

from .._core.backends import select
from .._core.elementwise import elementwise_loss
from .._core.layout import gradient_of_broadcast, read_only
from .._core.reduction import Parts, check_options, divides_itself
from .._core.table import LOSSES
from .._core.tail import KernelTail
from .._core.validation import (
    as_class_weight,
    as_float_array,
    as_grad_output,
    as_index_array,
    as_target_array,
    check_broadcast,
    check_class_indices,
    check_option,
    check_shape,
    check_two_values,
    common_shape,
)
from .cpu import _HINGE_EMBEDDING, _MARGIN_RANKING, _MULTILABEL_SOFT_MARGIN, _SOFT_MARGIN

if TYPE_CHECKING:
    from typing import Any, Literal

    from numpy.typing import NDArray

    from .._typing import ArrayLike, Backend, FloatArray, Grad2, Loss, Reduction, WithGrad

# ---------------------------------------------------------------- wrappers

def _input_and_target(input, target, name="input"):
    """A float input and a real target that broadcasts to it (any real values, as torch's)."""
    x = as_float_array(input, name)
    y = as_target_array(target, "target", x.dtype)
    check_broadcast(y.shape, x.shape, "target")
    return x, y


def margin_ranking_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = 0.0, *,
                        reduction: Reduction = "mean", grad: bool = False, grad_output: ArrayLike | None = None,
                        grad_out: NDArray[Any] | None = None, backend: Backend = None) -> Loss | WithGrad[Grad2]:
    r"""Margin ranking loss, as ``torch.nn.functional.margin_ranking_loss``.

    .. math:: \ell = \max(0,\ -y\,(x_1 - x_2) + \mathrm{margin})

    for any real target ``y`` (labels are -1 and 1; torch takes any value, and so does
    this). ``input1``, ``input2`` and ``target`` have one number of dimensions, as torch
    requires, and broadcast together (each gradient summed back to its input's shape). With ``grad=True`` the gradient is the tuple
    ``(d/d input1, d/d input2)`` (``grad_out`` receives the first); as torch's
    ``clamp_min``, it passes where the hinge is exactly 0, and is exactly 0 where the
    hinge is below it, whatever ``grad_output`` is.

    References
    ----------
    PyTorch ``torch.nn.MarginRankingLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> round(float(fastloss.margin_ranking_loss(np.array([1.0, 0.2]), np.array([0.5, 0.4]), np.array([1, 1]),
    ...                                          margin=0.1)), 6)
    0.15
    """
    impl = select("margin_ranking_loss", backend)
    check_options(reduction, grad)
    margin = check_option("margin_ranking_loss", "margin", margin)
    x1 = as_float_array(input1, "input1")
    y = as_target_array(target, "target", x1.dtype)
    x2 = as_float_array(input2, "input2", x1.dtype)
    if not x1.ndim == x2.ndim == y.ndim:
        raise ValueError(f"input1, input2 and target must have the same number of dimensions, as in torch; got "
                         f"shapes {x1.shape}, {x2.shape} and {y.shape}")
    full = common_shape([("input1", x1.shape), ("input2", x2.shape), ("target", y.shape)])
    if full == x1.shape:
        return elementwise_loss(_MARGIN_RANKING, x1, y, x2, None, (margin, 0.0, 0.0), reduction=reduction, grad=grad,
                                grad_output=grad_output, grad_out=grad_out, dz_like=x2,
                                backend=impl)
    result = elementwise_loss(_MARGIN_RANKING, np.broadcast_to(x1, full), y, x2, None, (margin, 0.0, 0.0),
                              reduction=reduction, grad=grad, grad_output=grad_output, grad_out=None, dz_like=x2,
                              backend=impl)
    if not grad:
        return result
    value, (dx1, dx2) = result
    return value, (gradient_of_broadcast(dx1, x1, x1.dtype, grad_out, reads=(x2, y)), dx2)


def hinge_embedding_loss(input: ArrayLike, target: ArrayLike, margin: float = 1.0, *, reduction: Reduction = "mean",
                         grad: bool = False, grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
                         backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Hinge embedding loss, as ``torch.nn.functional.hinge_embedding_loss``.

    .. math:: \ell = [y \ne 1] \max(0, \mathrm{margin} - x) + [y \ne -1]\, x

    that is :math:`x` for :math:`y = 1`, :math:`\max(0, \mathrm{margin} - x)` for
    :math:`y = -1`, and their sum for any other real target, exactly as torch computes it
    (its own tests use targets in {-1, 0}). The gradient of the hinge passes where it is
    >= 0 (torch's ``clamp_min``).

    References
    ----------
    PyTorch ``torch.nn.HingeEmbeddingLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> fastloss.hinge_embedding_loss(np.array([0.3, 0.3, 2.0]), np.array([1, -1, 0]), reduction="none")
    array([0.3, 0.7, 2. ])
    """
    impl = select("hinge_embedding_loss", backend)
    check_options(reduction, grad)
    margin = check_option("hinge_embedding_loss", "margin", margin)
    x, y = _input_and_target(input, target)
    return elementwise_loss(_HINGE_EMBEDDING, x, y, None, None, (margin, 0.0, 0.0), reduction=reduction, grad=grad,
                            grad_output=grad_output, grad_out=grad_out, backend=impl)


def soft_margin_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = "mean", grad: bool = False,
                     grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
                     backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Two-class logistic loss, as ``torch.nn.functional.soft_margin_loss``.

    .. math:: \ell = \log(1 + e^{-y x})

    for any real target ``y`` (labels are -1 and 1). Computed as a softplus, so that in
    float32 it gives torch's float64 value where torch's float32 ``log1p(exp(.))``
    overflows (``-y x`` above about 88); where even float64's ``exp(-y x)`` overflows
    (above about 709.78) the value is inf and the gradient NaN, as torch's. Gradient
    :math:`-y\,\sigma(-y x)`.

    References
    ----------
    PyTorch ``torch.nn.SoftMarginLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> fastloss.soft_margin_loss(np.array([0.0, 200.0]), np.array([1.0, -1.0]), reduction="none")
    array([  0.69314718, 200.        ])
    """
    impl = select("soft_margin_loss", backend)
    check_options(reduction, grad)
    x, y = _input_and_target(input, target)
    return elementwise_loss(_SOFT_MARGIN, x, y, None, None, reduction=reduction, grad=grad,
                            grad_output=grad_output, grad_out=grad_out, backend=impl)


def multilabel_soft_margin_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None, *,
                                reduction: Reduction = "mean", grad: bool = False, grad_output: ArrayLike | None = None,
                                grad_out: NDArray[Any] | None = None,
                                backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Multi-label one-versus-all logistic loss, as ``torch.nn.functional.multilabel_soft_margin_loss``.

    .. math::

        \ell_n = -\frac{1}{C} \sum_c w_c \big[y_{nc} \log \sigma(x_{nc})
                 + (1 - y_{nc}) \log \sigma(-x_{nc})\big]

    for input (N, C) or (C,) and targets of the same shape. As in torch, input, target
    and ``weight`` broadcast together, the terms are summed over the axis ``input.ndim - 1``
    of that shape and divided by input's own last extent (the gradient summed back to the
    input's shape). torch's formula, through two log-sigmoids, not the binary cross-entropy
    with logits: the two differ where the input is infinite (an input of -inf with
    target 1 gives inf here and in torch, NaN in ``binary_cross_entropy_with_logits``).

    References
    ----------
    PyTorch ``torch.nn.MultiLabelSoftMarginLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> round(float(fastloss.multilabel_soft_margin_loss(np.array([[0.0, 2.0]]), np.array([[1.0, 0.0]]))), 6)
    1.410038
    """
    impl = select("multilabel_soft_margin_loss", backend)
    check_options(reduction, grad)
    x = as_float_array(input, "input")
    if x.ndim == 0:
        raise ValueError("input must be (N, C) or (C,), got a scalar")
    y = as_target_array(target, "target", x.dtype)
    w = None if weight is None else as_target_array(weight, "weight", x.dtype)
    # torch's terms broadcast input, target and weight together, then sum over the axis
    # input.dim() - 1 of the result and divide by input's own last extent.
    full = common_shape([("input", x.shape), ("target", y.shape)] + ([] if w is None else [("weight", w.shape)]))
    axis = x.ndim - 1
    n_classes = x.shape[-1]
    w = np.full((), 1.0 / n_classes, x.dtype) if w is None else (w / x.dtype.type(n_classes)).astype(x.dtype)
    row_shape = full[:axis] + full[axis + 1:]
    n_rows = int(np.prod(row_shape, dtype=np.int64))
    xf = x if full == x.shape else np.broadcast_to(x, full)
    out = grad_out if xf is x else None
    go = None
    if reduction == "none" and grad and grad_output is not None:
        go = as_grad_output(grad_output, x.dtype)
        check_broadcast(go.shape, row_shape, "grad_output")
        go = np.expand_dims(np.broadcast_to(go, row_shape), axis)
    result = elementwise_loss(_MULTILABEL_SOFT_MARGIN, xf, y, None, w, reduction=reduction, grad=grad,
                              grad_output=grad_output if go is None else go, grad_out=out,
                              denominator=n_rows if reduction != "none" else None, backend=impl)
    value, dx = result if grad else (result, None)
    if grad and xf is not x:
        dx = gradient_of_broadcast(dx, x, x.dtype, grad_out, reads=(y, w))
    if isinstance(value, Parts):  # a chunk's parts: its unreduced losses are the rows' sums
        value = dataclasses.replace(value, losses=_class_sums(value.losses, axis))
    elif reduction == "none":
        value = _class_sums(value, axis)
    return (value, dx) if grad else value  # type: ignore[return-value]


def _class_sums(losses, axis):
    """multilabel_soft_margin_loss's per-sample losses from its per-class terms."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, a float32 overflow inf, as in torch
        return losses.sum(axis=axis, dtype=np.float64).astype(losses.dtype)  # float64, as the reduced sums are


def _class_scores(input):
    """torch's class scores: (N, C), (C,) (one row) or a scalar (one row of one class).

    Returns the input, its number of rows and of classes.
    """
    x = as_float_array(input, "input")
    return (x, *class_shape(x.shape))


def class_shape(shape):
    """(rows, classes) of class scores of ``shape`` as torch takes them (see
    :func:`_class_scores`); ValueError for any other shape. Shapes only: the GPU entry
    points (:mod:`fastloss.margin.cuda`) check device arrays with it."""
    if len(shape) > 2 or (len(shape) and shape[-1] == 0):
        raise ValueError(f"input must be (N, C) or (C,) with C >= 1, or a scalar; got shape {tuple(shape)}")
    return (shape[0] if len(shape) == 2 else 1), (shape[-1] if len(shape) else 1)


def check_target_rows(target_shape, input_shape, n_rows):
    """ValueError unless a target of ``target_shape`` holds one class index per row of the
    scores: (N,), or () for a single row."""
    if len(target_shape) > 1 or math.prod(target_shape) != n_rows:
        raise ValueError(f"target has shape {tuple(target_shape)}; expected ({n_rows},) (one class index per row of "
                         f"the input of shape {tuple(input_shape)})" + (", or ()" if n_rows == 1 else ""))


def _scores_and_targets(input, target):
    """Class scores (:func:`_class_scores`) and one class index per row, as torch takes
    them: a target of shape (N,), or () for a single row. Returns the input, the flat
    targets, the number of classes and the shape of the unreduced loss ((N,), or ()
    when the target is a scalar)."""
    x, n_rows, n_classes = _class_scores(input)
    t = as_index_array(target, "target")
    check_target_rows(t.shape, x.shape, n_rows)
    check_class_indices(t, n_classes, "target")
    return x, t.reshape(-1), n_classes, t.shape


def _run_class_rows(kernels, kernel, x, n_classes, loss_shape, divisor, reduction, grad, grad_output, grad_out, args):
    """Common tail of the row losses over (N, C) scores: scale, gradient buffer, kernel, reduction.

    As torch's kernels, the kernel forms the gradient in units of 1 / divisor (of
    1 / (N divisor) for a mean), the argument it takes after ``args``, and multiplies it
    by grad_output last. The kernels read a row whole before they write its gradient,
    so the gradient may be written over the scores (``grad_out=input``).
    """
    dtype = x.dtype
    rows = read_only(np.ascontiguousarray(x.reshape(-1, n_classes)))
    n_rows = rows.shape[0]
    unit = dtype.type(1.0 / (divisor * max(n_rows, 1) if divides_itself(reduction) else divisor))
    # The scale is grad_output itself: the mean's 1 / N is in ``unit``, as in torch (a denominator of 1).
    tail = KernelTail(reduction, grad, grad_output, loss_shape, dtype, 1)
    grad_rows = tail.gradient(x, grad_out, args, shape=(n_rows, n_classes))
    getattr(kernels, kernel)(rows, *args, unit, tail.scale, tail.losses, grad_rows, grad)
    return tail.result(denominator=n_rows)


def check_power(p):
    """multi_margin_loss's ``p``, 1 or 2 (ValueError otherwise); torch takes a bool p as the
    integer it is (True is 1; False is refused as 0 is)."""
    if (int(p) if isinstance(p, (bool, np.bool_)) else check_option("multi_margin_loss", "p", p)) not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    return int(p)


def multi_margin_loss(input: ArrayLike, target: ArrayLike, p: Literal[1, 2] = 1, margin: float = 1.0,
                      weight: ArrayLike | None = None, *, reduction: Reduction = "mean", grad: bool = False,
                      grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
                      backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Multi-class hinge loss, as ``torch.nn.functional.multi_margin_loss``.

    .. math:: \ell_n = \frac{w_{t}}{C} \sum_{i \ne t} \max(0,\ \mathrm{margin} - x_{t} + x_i)^p,
              \qquad t = t_n,\ p \in \{1, 2\}

    As torch: input (N, C), (C,) or a scalar (one class); integer targets (N,), or ()
    or (1,) for a single row; ``weight`` (C,). The unreduced loss has the
    target's shape. A NaN hinge counts as 0, as in torch's kernel. Wraps the parallel
    kernel :func:`class_margin_rows` (one pass over a row for the value, one for the
    gradient).

    References
    ----------
    Weston and Watkins, "Support Vector Machines for Multi-Class Pattern
    Recognition", ESANN 1999; PyTorch ``torch.nn.MultiMarginLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> round(float(fastloss.multi_margin_loss(np.array([[0.1, 0.2, 0.4, 0.8]]), np.array([3]))), 6)
    0.325
    """
    impl = select("multi_margin_loss", backend)
    check_options(reduction, grad)
    p = check_power(p)
    margin = check_option("multi_margin_loss", "margin", margin)
    x, t, n_classes, loss_shape = _scores_and_targets(input, target)
    w = as_class_weight(weight, n_classes, x.dtype)
    dtype = x.dtype.type
    args = (read_only(t), read_only(w), dtype(margin), int(p), False, dtype(n_classes))
    return _run_class_rows(impl.kernels("margin"), "class_margin_rows", x, n_classes, loss_shape, n_classes, reduction, grad, grad_output,
                           grad_out, args)


def check_multilabel_shape(target_shape, input_shape, n_classes):
    """ValueError unless a multilabel target of ``target_shape`` fits scores of ``input_shape``:
    the same (N, C), or C entries for a single row."""
    t_ndim, t_size = len(target_shape), math.prod(target_shape)
    if (len(input_shape) == 2 and tuple(target_shape) != tuple(input_shape)) or (
            len(input_shape) < 2 and (t_ndim > 1 or t_size != n_classes)):
        raise ValueError(f"target has shape {tuple(target_shape)}; expected "
                         f"{tuple(input_shape) if len(input_shape) == 2 else (n_classes,)} "
                         f"to match the input of shape {tuple(input_shape)}")


def check_multilabel_targets(rows, n_classes):
    """ValueError for the first bad entry of (N, C) multilabel targets: a class index
    outside [0, C) before the row's first negative entry, or a first negative entry
    that is not -1 (the index first, over all rows, then the end marker)."""
    if rows.size == 0 or (rows.min() >= -1 and rows.max() < n_classes):
        return  # every entry a class index or -1: nothing can be wrong (two passes, not the cumsums below)
    ended = np.cumsum(rows < 0, axis=1) > 0
    bad = ~ended & (rows >= n_classes)
    first_negative = rows[ended & (np.cumsum(ended, axis=1) == 1)]
    if bad.any() or (first_negative != -1).any():
        value = rows[bad][0] if bad.any() else first_negative[first_negative != -1][0]
        raise ValueError(f"target holds {value}; entries must be class indices in [0, {n_classes}), ended by -1")


def multilabel_margin_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = "mean", grad: bool = False,
                           grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
                           backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Multi-class multi-label hinge loss, as ``torch.nn.functional.multilabel_margin_loss``.

    .. math:: \ell_n = \sum_{j \in Y_n} \sum_{i \notin Y_n} \frac{\max(0,\ 1 - (x_{j} - x_i))}{C}

    ``target`` holds the class indices of :math:`Y_n`, ended by the first -1 (all C
    entries if there is none); the entries before it must lie in [0, C). As torch:
    input (N, C) with target (N, C), or one row, (C,) or a scalar (one class), with a
    target of C entries, () or (C,); the unreduced loss is (N,) for a 2-D target, ()
    otherwise. A NaN hinge counts as 0, as in torch's kernel. Wraps the parallel kernel
    :func:`multilabel_margin_rows`.

    References
    ----------
    PyTorch ``torch.nn.MultiLabelMarginLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> round(float(fastloss.multilabel_margin_loss(np.array([[0.1, 0.2, 0.4, 0.8]]), np.array([[3, 0, -1, -1]]))), 6)
    0.85
    """
    impl = select("multilabel_margin_loss", backend)
    check_options(reduction, grad)
    x, n_rows, n_classes = _class_scores(input)
    t = as_index_array(target, "target")
    check_multilabel_shape(t.shape, x.shape, n_classes)
    rows = t.reshape(n_rows, n_classes)
    check_multilabel_targets(rows, n_classes)
    loss_shape = (n_rows,) if t.ndim == 2 else ()
    return _run_class_rows(impl.kernels("margin"), "multilabel_margin_rows", x, n_classes, loss_shape, n_classes, reduction, grad, grad_output,
                           grad_out, (read_only(np.ascontiguousarray(rows)),))


def hinge_loss(input: ArrayLike, target: ArrayLike, margin: float = 1.0, reduction: Reduction = "mean", *,
               grad: bool = False, grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
               backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""SVM hinge loss: binary, or the Crammer-Singer multi-class form of
    ``sklearn.metrics.hinge_loss``.

    Binary, for (N,) scores :math:`f` and labels :math:`y \in \{-1, 1\}`:

    .. math:: \ell_n = \max(0,\ \mathrm{margin} - y_n f_n)

    Multi-class, for (N, C) scores and integer targets (Crammer and Singer 2001):

    .. math:: \ell_n = \max\big(0,\ \mathrm{margin} - x_{n,t_n} + \max_{i \ne t_n} x_{n,i}\big)

    With ``margin=1`` and ``reduction="mean"`` both equal ``sklearn.metrics.hinge_loss``.
    Binary targets must be -1 or 1: scikit-learn maps any two labels (0 and 1, say) to
    -1 and 1, so another value here would silently give another number than it does.
    Value and gradient are those of torch's ``clamp(margin - y f, min=0)`` and
    ``clamp(margin - x_t + max_i x_i, min=0)``, NaN and inf included (a NaN competitor
    makes its row NaN, as ``max`` does): the gradient passes where the hinge is >= 0, as
    ``clamp_min``'s, and is exactly 0 where it is below, whatever ``grad_output`` is;
    multi-class ties for the largest competitor go to the first index. Binary runs the
    elementwise kernel of :func:`margin_ranking_loss`; multi-class runs
    :func:`class_margin_rows` with ``worst_only=True``.

    References
    ----------
    Crammer and Singer, "On the Algorithmic Implementation of Multiclass Kernel-based
    Vector Machines", JMLR 2001; scikit-learn ``sklearn.metrics.hinge_loss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> float(fastloss.hinge_loss(np.array([0.5, -2.0, 0.3]), np.array([1, -1, -1])))
    0.6
    """
    impl = select("hinge_loss", backend)
    check_options(reduction, grad)
    margin = check_option("hinge_loss", "margin", margin)
    x = as_float_array(input, "input")
    if x.ndim == 2:
        x, t, n_classes, loss_shape = _scores_and_targets(x, target)
        if n_classes < 2:
            raise ValueError(f"multi-class hinge_loss needs at least 2 classes, got input shape {x.shape}")
        dtype = x.dtype.type
        args = (read_only(t), read_only(np.ones(n_classes, x.dtype)), dtype(margin), 1, True, dtype(1))
        return _run_class_rows(impl.kernels("margin"), "class_margin_rows", x, n_classes, loss_shape, 1, reduction, grad, grad_output,
                               grad_out, args)
    if x.ndim != 1:
        raise ValueError(f"input must be (N,) binary scores or (N, C) class scores, got shape {x.shape}")
    x, y = _input_and_target(x, target)
    check_shape(y.shape, x.shape, "target")
    check_two_values(y, -1, 1, "target")
    # margin_ranking_loss's kernel with input2 = 0: clamp_min(margin - y (f - 0), 0)
    return elementwise_loss(_MARGIN_RANKING, x, y, np.zeros((), x.dtype), None, (margin, 0.0, 0.0),
                            reduction=reduction, grad=grad, grad_output=grad_output, grad_out=grad_out,
                            backend=impl)


# The criterion classes and the exports, from the table of losses.
__all__ = LOSSES.export(__name__, globals())
