r"""Regression losses: value and gradient fused, every one a scalar kernel of the one
parametrised elementwise driver (:mod:`fastloss._core.elementwise`).

Each scalar kernel below returns ``(loss, dloss/dinput, dloss/dz)`` for one element
(with the vectorisable :func:`~fastloss._core.numerics.exp_fast` and :func:`~fastloss._core.numerics.log_fast`),
with ``d = input - target``; the driver broadcasts the operands, applies the
weight, reduces, and writes the gradients already scaled by ``grad_output``. Every loss
here takes keyword-only ``backend=`` ("numba" or "cython", see :mod:`fastloss._core.backends`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._core.backends import select
from .._core.elementwise import elementwise_loss
from .._core.reduction import check_options
from .._core.table import LOSSES
from .._core.validation import as_float_array, as_target_array, check_bool, check_broadcast, check_option, check_shape
from .cpu import (
    _GAUSSIAN_NLL,
    _HUBER,
    _L1,
    _MSE,
    _POISSON,
    _POISSON_FULL,
    _POISSON_LOG_INPUT,
    _POISSON_LOG_INPUT_FULL,
    _SMOOTH_L1,
)

if TYPE_CHECKING:
    from typing import Any

    from numpy.typing import NDArray

    from .._typing import ArrayLike, Backend, FloatArray, Grad2, Loss, Reduction, WithGrad

# ---------------------------------------------------------------- wrappers

def _regression_args(input, target, weight=None):
    """Validated input, target (broadcast to the input's shape) and optional weight (the input's shape)."""
    x = as_float_array(input, "input")
    y = as_target_array(target, "target", x.dtype)
    check_broadcast(y.shape, x.shape, "target")
    if weight is not None:
        weight = as_target_array(weight, "weight", x.dtype)
        check_shape(weight.shape, x.shape, "weight")
    return x, y, weight


def _weighted_mean_denominator(reduction, x, weight):
    """torch's l1_loss / mse_loss divide a weighted mean by the sum of the weights."""
    if reduction == "mean" and weight is not None:
        return weight.sum(dtype=np.float64)
    return None


def l1_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = "mean", weight: ArrayLike | None = None,
            grad: bool = False, grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
            backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Mean absolute error, as ``torch.nn.functional.l1_loss``.

    .. math:: \ell = w\,|x - y|

    With ``weight`` (the input's shape), "mean" divides by :math:`\sum w` as torch
    does. The gradient is :math:`w\,\mathrm{sign}(x - y)` (0 where ``x == y``).
    ``target`` broadcasts to the input's shape.

    References
    ----------
    PyTorch ``torch.nn.L1Loss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> float(fastloss.l1_loss(np.array([1.0, 2.0]), np.array([0.0, 4.0])))
    1.5
    """
    check_options(reduction, grad)
    impl = select("l1_loss", backend)
    x, y, weight = _regression_args(input, target, weight)
    return elementwise_loss(_L1, x, y, None, weight, reduction=reduction, grad=grad, grad_output=grad_output,
                            grad_out=grad_out, denominator=_weighted_mean_denominator(reduction, x, weight),
                            backend=impl)


def mse_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = "mean", weight: ArrayLike | None = None,
             grad: bool = False, grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
             backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Mean squared error, as ``torch.nn.functional.mse_loss``.

    .. math:: \ell = w\,(x - y)^2

    With ``weight``, "mean" divides by :math:`\sum w` as torch does; the gradient is
    :math:`2 w (x - y)`.

    References
    ----------
    PyTorch ``torch.nn.MSELoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> float(fastloss.mse_loss(np.array([1.0, 2.0]), np.array([0.0, 4.0])))
    2.5
    """
    check_options(reduction, grad)
    impl = select("mse_loss", backend)
    x, y, weight = _regression_args(input, target, weight)
    return elementwise_loss(_MSE, x, y, None, weight, reduction=reduction, grad=grad, grad_output=grad_output,
                            grad_out=grad_out, denominator=_weighted_mean_denominator(reduction, x, weight),
                            backend=impl)


def smooth_l1_loss(input: ArrayLike, target: ArrayLike, *, reduction: Reduction = "mean", beta: float = 1.0,
                   grad: bool = False, grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
                   backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Smooth L1 loss, as ``torch.nn.functional.smooth_l1_loss``.

    .. math::

        \ell = \begin{cases} 0.5\,d^2 / \beta & |d| < \beta \\ |d| - 0.5\,\beta & \text{otherwise}
        \end{cases}, \qquad d = x - y

    ``beta = 0`` gives the L1 loss exactly (as torch). Gradient :math:`d / \beta`
    inside, :math:`\mathrm{sign}(d)` outside.

    References
    ----------
    Girshick, "Fast R-CNN", ICCV 2015; PyTorch ``torch.nn.SmoothL1Loss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> x = np.array([0.5, 3.0])
    >>> float(fastloss.smooth_l1_loss(x, np.array([0.0, 0.0])))
    1.3125
    """
    check_options(reduction, grad)
    impl = select("smooth_l1_loss", backend)
    beta = check_option("smooth_l1_loss", "beta", beta)
    x, y, _ = _regression_args(input, target)
    return elementwise_loss(_SMOOTH_L1, x, y, None, None, (beta, 0.0, 0.0), reduction=reduction, grad=grad,
                            grad_output=grad_output, grad_out=grad_out, backend=impl)


def huber_loss(input: ArrayLike, target: ArrayLike, reduction: Reduction = "mean", delta: float = 1.0,
               weight: ArrayLike | None = None, *, grad: bool = False, grad_output: ArrayLike | None = None,
               grad_out: NDArray[Any] | None = None, backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Huber loss, as ``torch.nn.functional.huber_loss``.

    .. math::

        \ell = w \begin{cases} 0.5\,d^2 & |d| < \delta \\ \delta\,(|d| - 0.5\,\delta) & \text{otherwise}
        \end{cases}

    ``delta > 0``. With ``weight`` (the input's shape), "mean" divides by the number of
    elements, as torch's ``huber_loss`` does (unlike its l1/mse losses).

    References
    ----------
    Huber, "Robust Estimation of a Location Parameter", 1964; PyTorch ``torch.nn.HuberLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> x = np.array([0.5, 3.0])
    >>> float(fastloss.huber_loss(x, np.array([0.0, 0.0]), delta=2.0))
    2.0625
    """
    check_options(reduction, grad)
    impl = select("huber_loss", backend)
    delta = check_option("huber_loss", "delta", delta)
    x, y, weight = _regression_args(input, target, weight)
    return elementwise_loss(_HUBER, x, y, None, weight, (delta, 0.0, 0.0), reduction=reduction, grad=grad,
                            grad_output=grad_output, grad_out=grad_out, backend=impl)


def poisson_nll_loss(input: ArrayLike, target: ArrayLike, log_input: bool = True, full: bool = False, *,
                     eps: float = 1e-8, reduction: Reduction = "mean", grad: bool = False,
                     grad_output: ArrayLike | None = None, grad_out: NDArray[Any] | None = None,
                     backend: Backend = None) -> Loss | WithGrad[FloatArray]:
    r"""Poisson negative log-likelihood, as ``torch.nn.functional.poisson_nll_loss``.

    .. math::

        \ell = e^{x} - y\,x \ \ (\texttt{log\_input}), \qquad
        \ell = x - y \log(x + \varepsilon) \ \ (\text{otherwise})

    With ``full`` Stirling's approximation of :math:`\log y!`,
    :math:`y \log y - y + \tfrac12 \log(2\pi y)`, is added where :math:`y > 1` (it does
    not depend on the input, so the gradient is unchanged).

    References
    ----------
    PyTorch ``torch.nn.PoissonNLLLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> log_rate = np.array([0.0, 1.0])
    >>> loss, g = fastloss.poisson_nll_loss(log_rate, np.array([1.0, 2.0]), grad=True)
    >>> round(float(loss), 4)
    0.8591
    >>> print(np.round(g, 4))
    [0.     0.3591]
    """
    check_options(reduction, grad)
    impl = select("poisson_nll_loss", backend)
    eps = check_option("poisson_nll_loss", "eps", eps)
    log_input, full = check_bool(log_input, "log_input"), check_bool(full, "full")
    x, y, _ = _regression_args(input, target)
    kind = ((_POISSON_LOG_INPUT_FULL if full else _POISSON_LOG_INPUT) if log_input else
            (_POISSON_FULL if full else _POISSON))
    return elementwise_loss(kind, x, y, None, None, (0.0, eps, 0.0), reduction=reduction, grad=grad,
                            grad_output=grad_output, grad_out=grad_out, backend=impl)


def _variance(var, x):
    """``var`` laid out as torch's gaussian_nll_loss lays it out, and its own shape for the gradient."""
    v = as_target_array(var, "var", x.dtype)
    own_shape = v.shape
    v = v.reshape(variance_layout(own_shape, x.shape))
    if (v < 0).any():
        raise negative_variance(v[v < 0].flat[0])
    return v, own_shape


def variance_layout(shape, input_shape):
    """The shape a variance of ``shape`` takes to broadcast to the input as torch's
    gaussian_nll_loss broadcasts it (one variance per row gains a last axis of 1);
    ValueError for any other shape."""
    layout = tuple(shape)
    if layout != tuple(input_shape):
        if len(input_shape) and layout == tuple(input_shape[:-1]):
            layout = layout + (1,)  # homoscedastic: one variance per row
        elif not (len(layout) == len(input_shape)
                  and sum(b for a, b in zip(input_shape, layout) if a != b) == 1) and len(layout):
            raise ValueError(f"var has shape {tuple(shape)}; expected the input's shape {tuple(input_shape)}, "
                             f"{tuple(input_shape[:-1])}, or one axis of size 1")
    check_broadcast(layout, input_shape, "var")
    return layout


def negative_variance(value):
    """The ValueError for a negative variance ``value``."""
    return ValueError(f"var has negative entries (e.g. {value}); variances must be >= 0")


def gaussian_nll_loss(input: ArrayLike, target: ArrayLike, var: ArrayLike, full: bool = False, eps: float = 1e-6,
                      reduction: Reduction = "mean", *, grad: bool = False, grad_output: ArrayLike | None = None,
                      grad_out: NDArray[Any] | None = None, backend: Backend = None) -> Loss | WithGrad[Grad2]:
    r"""Gaussian negative log-likelihood, as ``torch.nn.functional.gaussian_nll_loss``.

    .. math::

        \ell = \tfrac12 \Big(\log v + \frac{(x - y)^2}{v}\Big)
               \ [+\ \tfrac12 \log 2\pi \text{ if full}], \qquad v = \max(\mathrm{var}, \varepsilon)

    ``var`` has the input's shape, the input's shape without its last axis (one
    variance per row), or the input's shape with one axis of size 1; a scalar is one
    variance for all. Negative variances raise ValueError. As in torch the clamp at
    ``eps`` does not cut the gradient: with ``grad=True`` the gradient is the tuple
    ``(d/d input, d/d var)``, the latter :math:`\tfrac12 (1/v - (x - y)^2 / v^2)`
    summed to ``var``'s shape.

    References
    ----------
    Nix and Weigend, "Estimating the mean and variance of the target probability
    distribution", ICNN 1994; PyTorch ``torch.nn.GaussianNLLLoss``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> mean, var = np.array([1.0, 2.0]), np.array([1.0, 4.0])
    >>> loss, (d_input, d_var) = fastloss.gaussian_nll_loss(mean, np.array([0.0, 0.0]), var, grad=True)
    >>> round(float(loss), 4)
    0.8466
    >>> print(d_input, d_var)
    [0.5  0.25] [0. 0.]
    """
    check_options(reduction, grad)
    impl = select("gaussian_nll_loss", backend)
    eps = check_option("gaussian_nll_loss", "eps", eps)
    full = check_bool(full, "full")
    x, y, _ = _regression_args(input, target)
    v, var_shape = _variance(var, x)
    result = elementwise_loss(_GAUSSIAN_NLL, x, y, v, None, (eps, float(full), 0.0), reduction=reduction,
                              grad=grad, grad_output=grad_output, grad_out=grad_out, dz_like=v, backend=impl)
    if not grad:
        return result
    value, (dx, dv) = result
    return value, (dx, dv.reshape(var_shape))


# The criterion classes and the exports, from the table of losses.
__all__ = LOSSES.export(__name__, globals())
