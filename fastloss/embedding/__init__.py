r"""Embedding losses over pairs and triplets of rows: value and gradient fused.

One parallel kernel, :func:`embedding_pair_rows`, serves the four losses of this
family; per row it computes the needed similarities (a cosine, or L_p distances
:math:`\lVert u - v + \varepsilon \rVert_p` as ``torch.pairwise_distance`` defines
them) and writes the gradient of every input in the same pass.

Two rules hold in every row:

* Exactness in the corners: each gradient is torch's backward formula, step by step
  (``clamp_min`` passes its gradient at 0 and none for NaN, ``torch.minimum`` splits a
  tie in halves, the norm's backward masks a zero norm), so that NaN and inf
  propagate exactly as through torch's autograd, and never as ``0 * inf``.
* In place: a row is read whole for its distances, then one pass over its elements
  reads element i of every input before it writes element i of the gradients, so the
  gradient buffer may be the input itself (``grad_out=anchor``); any other overlap is
  refused by :class:`fastloss._core.layout.GradientBuffer`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .._core.backends import select
from .._core.layout import read_only, sum_to_shape
from .._core.numerics import sum_float64
from .._core.reduction import check_options, finish
from .._core.table import LOSSES
from .._core.tail import KernelTail
from .._core.validation import (
    as_float_array,
    as_target_array,
    check_bool,
    check_broadcast,
    check_option,
    check_shape,
    check_two_values,
    common_shape,
)
from .cpu import CONTRASTIVE, COSINE, TRIPLET, TRIPLET_COSINE

if TYPE_CHECKING:
    from typing import Any

    from numpy.typing import NDArray

    from .._typing import ArrayLike, Backend, Grad2, Grad3, Loss, Reduction, WithGrad

# ---------------------------------------------------------------- wrappers

def _run_pairs(kernels, kind, inputs, target, params, reduction, grad, grad_output, grad_out):
    """Lay out the rows, run :func:`embedding_pair_rows`, reduce; gradients for every input.

    The inputs (of one number of dimensions) and ``target`` (one label per row) broadcast
    together, as in torch; the gradient of an input broadcast along an axis is summed over
    it, back to the input's own shape."""
    x = inputs[0]
    dtype = x.dtype
    full = x.shape
    if x.ndim:
        full = common_shape([(f"input {k}", a.shape) for k, a in enumerate(inputs)] + [("target", target.shape + (1,))])
    loss_shape = full[:-1]
    shape = (math.prod(loss_shape), full[-1] if full else 1)  # a 0-d input is one feature
    rows = [read_only(np.ascontiguousarray(np.reshape(a if a.shape == full else np.broadcast_to(a, full), shape)))
            for a in inputs]
    c = rows[2] if len(rows) == 3 else rows[0]
    y = target if target.shape == loss_shape else np.broadcast_to(target, loss_shape)
    y = read_only(np.ascontiguousarray(y.reshape(-1)))
    tail = KernelTail(reduction, grad, grad_output, loss_shape, dtype, shape[0])
    none = np.empty((shape[0], 0), dtype)  # rows of nothing: what the kernel is given for no gradient
    views = [none] * 3
    if grad:
        def rows_of(array):
            if array.shape == full and array.flags.c_contiguous:
                return array.reshape(shape)
            return np.empty(shape, dtype)  # written back by back_to (summed over broadcast axes)

        def back_to(v, s):
            return sum_to_shape(v.reshape(full), s)

        views[0] = tail.gradient(inputs[0], grad_out, (*inputs[1:], target), view=(rows_of, back_to))
        for k, a in enumerate(inputs[1:], 1):
            views[k] = tail.gradient(a, view=(rows_of, back_to))
    margin, p, eps, swap = params
    kernels.embedding_pair_rows(kind, rows[0], rows[1], c, y, dtype.type(margin), dtype.type(p), dtype.type(eps), swap,
                                tail.scale, tail.losses, *views, grad)
    return tail.result()


def _pair_inputs(names, arrays, ranks=None, broadcast=False):
    """The inputs as float arrays of the first one's compute dtype; ``ranks``: the numbers
    of dimensions allowed (any when None, as torch's triplet losses). Of the first one's
    shape, or with ``broadcast`` of its number of dimensions and shapes that broadcast
    together (as torch requires of them)."""
    first = as_float_array(arrays[0], names[0])
    check_rank(names[0], first.shape, ranks)
    rest = [as_float_array(a, name, first.dtype) for name, a in zip(names[1:], arrays[1:])]
    check_pair_shapes(names, [a.shape for a in [first] + rest], broadcast)
    return [first] + rest


def check_rank(name, shape, ranks):
    """ValueError unless ``shape`` has one of the numbers of dimensions ``ranks`` (any when None)."""
    if ranks is not None and len(shape) not in ranks:
        raise ValueError(f"{name} must be (N, D) or (D,), got shape {tuple(shape)}")


def check_pair_shapes(names, shapes, broadcast=False):
    """ValueError unless the inputs' ``shapes`` are the first one's, or with ``broadcast``
    of its number of dimensions and broadcasting together (see :func:`_pair_inputs`).
    Shapes only: the GPU entry points (:mod:`fastloss.embedding.cuda`) check device arrays with it."""
    first = tuple(shapes[0])
    for name, shape in zip(names[1:], shapes[1:]):
        if not broadcast:
            check_shape(shape, first, name, names[0])
        elif len(shape) != len(first):
            raise ValueError(f"{name} has shape {tuple(shape)}; expected {len(first)} dimensions as {names[0]} has "
                             f"({first}): torch broadcasts these inputs only among equal numbers of dimensions")
    if broadcast:
        common_shape(zip(names, (tuple(s) for s in shapes)))


def _labels(target, x, name="target"):
    y = as_target_array(target, name, x.dtype)
    check_shape(y.shape, x.shape[:-1], name, f"input of shape {x.shape} (one label per row)")
    return y


def _cosine_labels(target, x1, x2, name="target"):
    """One label per row of the inputs (0-d for 1-D inputs, 1-D for 2-D inputs, as torch
    requires), broadcasting with their rows."""
    y = as_target_array(target, name, x1.dtype)
    check_cosine_label_shape(y.shape, x1.shape, x2.shape, name)
    return y


def check_cosine_label_shape(shape, shape1, shape2, name="target"):
    """ValueError unless labels of ``shape`` give one label per row of inputs of shapes
    ``shape1`` and ``shape2`` (see :func:`_cosine_labels`). Shapes only."""
    shape, shape1 = tuple(shape), tuple(shape1)
    if len(shape) != len(shape1) - 1:
        raise ValueError(f"{name} has shape {shape}; expected {len(shape1) - 1} dimensions, one label per row of "
                         f"input1 of shape {shape1}")
    common_shape([("input1", shape1[:-1]), ("input2", tuple(shape2)[:-1]), (name, shape)])


def cosine_embedding_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = 0.0, *,
                          reduction: Reduction = "mean", grad: bool = False, grad_output: ArrayLike | None = None,
                          grad_out: NDArray[Any] | None = None, backend: Backend = None) -> Loss | WithGrad[Grad2]:
    r"""Cosine embedding loss, as ``torch.nn.functional.cosine_embedding_loss``.

    .. math::

        \ell = \begin{cases} 1 - \cos(x_1, x_2) & y = 1 \\ \max(0, \cos(x_1, x_2) - \mathrm{margin}) & y = -1
        \\ 0 & \text{any other } y \end{cases}, \qquad
        \cos = \frac{x_1 \cdot x_2}{\sqrt{(\lVert x_1\rVert^2 + 10^{-12})(\lVert x_2\rVert^2 + 10^{-12})}}

    Inputs (N, D) or (D,), targets (N,) or (): any real values, as in torch (only 1
    and -1 select a term). The rows of the inputs and the targets broadcast together, as
    in torch (a (1, D) input against (N, D), say; each gradient is summed back to its
    input's shape). So does a single feature against D, as in torch: the product is taken
    over the broadcast features and each squared norm over the input's own (which is then
    no cosine, but torch's number). ``grad=True`` gives ``(loss, (d/d input1, d/d input2))``.

    References
    ----------
    PyTorch ``torch.nn.CosineEmbeddingLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> x = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> y = np.array([1, -1])  # pull the first pair together (cos 0), push the second apart (cos 1)
    >>> round(float(fastloss.cosine_embedding_loss(x, np.array([[0.0, 1.0], [1.0, 1.0]]), y)), 9)
    1.0
    """
    impl = select("cosine_embedding_loss", backend)
    kernels = impl.kernels("embedding")
    check_options(reduction, grad)
    margin = check_option("cosine_embedding_loss", "margin", margin)
    x1, x2 = _pair_inputs(("input1", "input2"), (input1, input2), (1, 2), broadcast=True)
    y = _cosine_labels(target, x1, x2)
    width = max(x1.shape[-1], x2.shape[-1])
    copies = [width if x.shape[-1] == 1 and width > 1 else 1 for x in (x1, x2)]  # a broadcast single feature
    return _run_pairs(kernels, COSINE, (x1, x2), y, (margin, *copies, False), reduction, grad, grad_output, grad_out)


def _triplet_inputs(anchor, positive, negative, p=2.0, broadcast=False):
    """The three triplet inputs, any equal shapes (D = the last axis; a 0-d input is one
    feature), or with ``broadcast`` any shapes of one number of dimensions that broadcast
    together; torch's norm of no features is refused for p < 0 and p = +-inf, as there."""
    a, pos, neg = _pair_inputs(("anchor", "positive", "negative"), (anchor, positive, negative), broadcast=broadcast)
    check_triplet_width((a.shape, pos.shape, neg.shape), p)
    return a, pos, neg


def check_triplet_width(shapes, p):
    """ValueError for inputs of zero features with p < 0 or infinite p (torch's norm of no
    features is not defined there). Shapes only, as :func:`check_pair_shapes`."""
    a = tuple(shapes[0])
    if len(a) and 0 in (tuple(s)[-1] for s in shapes) and (p < 0 or math.isinf(p)):
        raise ValueError(f"p={p}: the L_p norm of zero features is not defined for p < 0 or infinite p, and "
                         f"anchor has shape {a}")


def triplet_margin_loss(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike, margin: float = 1.0,
                        p: float = 2.0, eps: float = 1e-6, swap: bool = False, *, reduction: Reduction = "mean",
                        grad: bool = False, grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
                        backend: Backend = None) -> Loss | WithGrad[Grad3]:
    r"""Triplet margin loss, as ``torch.nn.functional.triplet_margin_loss``.

    .. math::

        \ell = \max(0,\ \mathrm{margin} + d(a, p) - d(a, n)), \qquad
        d(u, v) = \lVert u - v + \varepsilon \rVert_p

    with ``eps`` added to the difference as ``torch.pairwise_distance`` adds it, the norm
    over the last axis (inputs of one number of dimensions whose shapes broadcast together,
    as in torch, each gradient summed back to its input's shape; a 0-d input is one feature). With
    ``swap`` (Balntas et al. 2016) :math:`d(a, n)` is replaced by :math:`d(p, n)` when
    that is smaller. ``margin > 0`` (ValueError otherwise, as torch); ``p`` any real or
    ``inf`` as ``torch.linalg.vector_norm`` takes it (p = 0 counts the nonzero entries and
    has no gradient). ``grad=True`` gives ``(loss, (d/d anchor, d/d positive, d/d negative))``.

    References
    ----------
    Schroff et al., "FaceNet", CVPR 2015; Balntas et al., "Learning local feature
    descriptors with triplets and shallow convolutional neural networks", BMVC 2016;
    PyTorch ``torch.nn.TripletMarginLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> a, p, n = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]), np.array([[0.0, 1.0]])
    >>> round(float(fastloss.triplet_margin_loss(a, p, n, eps=0.0)), 12)
    5.0
    """
    impl = select("triplet_margin_loss", backend)
    kernels = impl.kernels("embedding")
    check_options(reduction, grad)
    margin = check_option("triplet_margin_loss", "margin", margin)
    p = check_option("triplet_margin_loss", "p", p)
    eps = check_option("triplet_margin_loss", "eps", eps)
    swap = check_bool(swap, "swap")
    a, pos, neg = _triplet_inputs(anchor, positive, negative, p, broadcast=True)
    return _run_pairs(kernels, TRIPLET, (a, pos, neg), np.zeros((), a.dtype), (margin, p, eps, swap), reduction, grad,
                      grad_output, grad_out)


# The named distances of triplet_margin_with_distance_loss: (kernel row kind, p, eps).
DISTANCES = {
    None: (TRIPLET, 2.0, 1e-6),  # torch.pairwise_distance, torch's default
    "euclidean": (TRIPLET, 2.0, 0.0),  # torch.linalg.vector_norm(x - y, dim=-1)
    "cosine": (TRIPLET_COSINE, 2.0, 0.0),  # 1 - F.cosine_similarity(x, y, dim=-1)
}


def _callable_triplet(distance_function, a, pos, neg, margin, swap, reduction):
    """The hinge of a Python ``distance_function`` on the arrays, as torch composes it; each
    distance of one value per row of the inputs' broadcast shape (or one that broadcasts to it)."""
    full = common_shape([("anchor", a.shape), ("positive", pos.shape), ("negative", neg.shape)])
    loss_shape = full[:-1]

    def distance(x, y, names):
        name = f"distance_function({names})"
        d = as_target_array(distance_function(x, y), name, a.dtype)
        check_broadcast(d.shape, loss_shape, name)
        return np.broadcast_to(d, loss_shape)

    d_neg = distance(a, neg, "anchor, negative")
    if swap:
        d_neg = np.minimum(d_neg, distance(pos, neg, "positive, negative"))
    losses = np.asarray(np.maximum(margin + distance(a, pos, "anchor, positive") - d_neg, 0), a.dtype)
    n_rows = losses.size
    total = sum_float64(np.ascontiguousarray(losses).reshape(-1)) if reduction != "none" else 0.0
    return finish(total, losses, reduction, n_rows, a.dtype)


def check_triplet_with_distance(anchor, positive, negative, distance_function, margin, swap, reduction, grad=False):
    """Every check of :func:`triplet_margin_with_distance_loss`, before any distance is taken
    (:mod:`fastloss.torch` runs them for a callable too): ``(anchor, positive, negative,
    the named distance's kernel parameters or None for a callable, margin, swap)``."""
    check_options(reduction, grad)
    margin = check_option("triplet_margin_with_distance_loss", "margin", margin)
    swap = check_bool(swap, "swap")
    named = _distance_function(distance_function, grad)
    return (*_triplet_inputs(anchor, positive, negative, broadcast=True), named, margin, swap)


def _distance_function(distance_function, grad):
    """The kernel parameters of a named distance, or None for a Python callable (TypeError
    with ``grad``: no gradient can be formed of it); ValueError or TypeError otherwise."""
    if callable(distance_function):
        if grad:
            raise TypeError("distance_function is a Python callable, of which fastloss cannot form a gradient "
                            "(only its values can be called on arrays): use distance_function=None, 'euclidean' "
                            "or 'cosine', which have fused gradients, or fastloss.torch."
                            "triplet_margin_with_distance_loss, where autograd differentiates the callable's "
                            "torch operations")
        return None
    if distance_function is None or isinstance(distance_function, str):
        if distance_function in DISTANCES:
            return DISTANCES[distance_function]
        raise ValueError(f"distance_function must be None, 'euclidean', 'cosine' or a callable; "
                         f"got {distance_function!r}")
    raise TypeError(f"distance_function must be None, 'euclidean', 'cosine' or a callable; "
                    f"got {type(distance_function).__name__}")


def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0, swap=False,
                                      reduction="mean", grad=False, grad_output=None, grad_out=None, backend=None):
    r"""Triplet margin loss with a distance of choice, as
    ``torch.nn.functional.triplet_margin_with_distance_loss``.

    .. math::

        \ell = \max(0,\ \mathrm{margin} + d(a, p) - d(a, n))

    with :math:`d(a, n)` replaced by :math:`d(p, n)` when that is smaller if ``swap``
    (Balntas et al. 2016). ``distance_function``:

    * ``None``: torch's default, ``torch.pairwise_distance``:
      :math:`\lVert u - v + 10^{-6} \rVert_2`;
    * ``"euclidean"``: :math:`\lVert u - v \rVert_2` (``torch.linalg.vector_norm(u - v, dim=-1)``);
    * ``"cosine"``: :math:`1 - \cos(u, v)` with torch's ``cosine_similarity(u, v, dim=-1)``
      (each norm clamped below at :math:`10^{-8}`);
    * a Python callable ``f(u, v)`` on the arrays, giving one distance per row: values only,
      as fastloss cannot differentiate it; ``grad=True`` raises TypeError. In
      ``fastloss.torch`` a callable of torch operations is differentiated by autograd.

    The named distances share the fused kernel of :func:`triplet_margin_loss`. Inputs of
    one number of dimensions whose shapes broadcast together, as in torch (the distance
    over the last axis; each gradient summed back to its input's shape); ``margin > 0``
    (ValueError otherwise, as torch). ``grad=True`` gives
    ``(loss, (d/d anchor, d/d positive, d/d negative))``.

    References
    ----------
    Schroff et al., "FaceNet", CVPR 2015; Balntas et al., BMVC 2016; PyTorch
    ``torch.nn.TripletMarginWithDistanceLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> a, p, n = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), np.array([[1.0, 1.0]])
    >>> round(float(fastloss.triplet_margin_with_distance_loss(a, p, n, distance_function="cosine")), 6)
    1.707107
    >>> l1 = lambda u, v: np.abs(u - v).sum(-1)
    >>> float(fastloss.triplet_margin_with_distance_loss(a, p, n, distance_function=l1, margin=0.5))
    1.5
    """
    impl = select("triplet_margin_with_distance_loss", backend)
    kernels = impl.kernels("embedding")
    a, pos, neg, named, margin, swap = check_triplet_with_distance(anchor, positive, negative, distance_function,
                                                                   margin, swap, reduction, grad)
    if named is None:
        return _callable_triplet(distance_function, a, pos, neg, margin, swap, reduction)
    kind, p, eps = named
    return _run_pairs(kernels, kind, (a, pos, neg), np.zeros((), a.dtype), (margin, p, eps, swap), reduction, grad,
                      grad_output, grad_out)


def contrastive_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = 1.0,
                     reduction: Reduction = "mean", *, grad: bool = False, grad_output: ArrayLike | None = None,
                     grad_out: NDArray[Any] | None = None, backend: Backend = None) -> Loss | WithGrad[Grad2]:
    r"""Contrastive loss (Hadsell, Chopra, LeCun, CVPR 2006).

    .. math:: \ell = y\,d^2 + (1 - y) \max(0,\ \mathrm{margin} - d)^2, \qquad d = \lVert x_1 - x_2 \rVert_2

    with ``y = 1`` for a similar pair and ``y = 0`` for a dissimilar one (other values
    raise ValueError). Hadsell et al. write the same loss with :math:`Y = 1 - y` and
    factors 1/2. Where :math:`d = 0` the gradient of :math:`d` is taken as 0 (torch's norm
    backward). Inputs (N, D) or (D,); ``grad=True`` gives ``(loss, (d/d input1, d/d input2))``.

    References
    ----------
    Hadsell, Chopra and LeCun, "Dimensionality Reduction by Learning an Invariant
    Mapping", CVPR 2006.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> x1, x2 = np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([[3.0, 4.0], [0.3, 0.4]])
    >>> float(fastloss.contrastive_loss(x1, x2, np.array([1, 0])))
    12.625
    """
    impl = select("contrastive_loss", backend)
    kernels = impl.kernels("embedding")
    check_options(reduction, grad)
    margin = check_option("contrastive_loss", "margin", margin)
    x1, x2 = _pair_inputs(("input1", "input2"), (input1, input2), (1, 2))
    y = _labels(target, x1)
    check_two_values(y, 0, 1, "target")
    return _run_pairs(kernels, CONTRASTIVE, (x1, x2), y, (margin, 2.0, 0.0, False), reduction, grad, grad_output, grad_out)


# The criterion classes and the exports, from the table of losses.
__all__ = LOSSES.export(__name__, globals())
