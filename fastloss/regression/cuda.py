"""The GPU entry points of :mod:`fastloss.regression`: every loss here is a scalar kernel
of ``cpu.py`` run by the one GPU elementwise driver (:mod:`fastloss._core.cuda_elementwise`).

Each entry point takes the public function's parameters (``backend`` is ignored: device
arrays chose the GPU), checks shapes and options as the CPU wrapper does, and returns
device arrays: a reduced loss as a 0-d device array of the input's dtype.
"""
from __future__ import annotations

from .._core.cuda_elementwise import (
    check_variance,
    device_input,
    elementwise_loss,
    launch,
    plumbing,
    secondary,
    value_at,
    weight_sum,
)
from .._core.reduction import check_options
from .._core.validation import check_bool, check_broadcast, check_option, check_shape
from . import negative_variance, variance_layout
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


def _regression_args(input, target, weight=None):
    """The device input, the target (broadcast to the input's shape) and the optional weight
    (the input's shape), as the CPU's ``_regression_args`` checks them."""
    x = device_input(input, "input")
    y = secondary(target, "target", x.dtype)
    check_broadcast(y.shape, x.shape, "target")
    if weight is not None:
        weight = secondary(weight, "weight", x.dtype)
        check_shape(weight.shape, x.shape, "weight")
    return x, y, weight


def l1_loss(input, target, *, reduction="mean", weight=None, grad=False, grad_output=None, grad_out=None,
            backend=None):
    """:func:`fastloss.l1_loss` on the GPU: the elementwise driver with the L1 kernel (and,
    for a weighted mean, a device sum of the weights first)."""
    check_options(reduction, grad)
    x, y, weight = _regression_args(input, target, weight)
    denominator = weight_sum(weight) if reduction == "mean" and weight is not None else None
    return launch(_L1, x, y, None, weight, denominator=denominator, **plumbing(reduction, grad, grad_output, grad_out))


def mse_loss(input, target, *, reduction="mean", weight=None, grad=False, grad_output=None, grad_out=None,
             backend=None):
    """:func:`fastloss.mse_loss` on the GPU: the elementwise driver with the squared-error
    kernel (and, for a weighted mean, a device sum of the weights first)."""
    check_options(reduction, grad)
    x, y, weight = _regression_args(input, target, weight)
    denominator = weight_sum(weight) if reduction == "mean" and weight is not None else None
    return launch(_MSE, x, y, None, weight, denominator=denominator,
                   **plumbing(reduction, grad, grad_output, grad_out))


def smooth_l1_loss(input, target, *, reduction="mean", beta=1.0, grad=False, grad_output=None, grad_out=None,
                   backend=None):
    """:func:`fastloss.smooth_l1_loss` on the GPU: the elementwise driver with its kernel."""
    check_options(reduction, grad)
    beta = check_option("smooth_l1_loss", "beta", beta)
    x, y, _ = _regression_args(input, target)
    return launch(_SMOOTH_L1, x, y, params=(beta, 0.0, 0.0), **plumbing(reduction, grad, grad_output, grad_out))


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None, *, grad=False, grad_output=None,
               grad_out=None, backend=None):
    """:func:`fastloss.huber_loss` on the GPU: the elementwise driver with its kernel."""
    check_options(reduction, grad)
    delta = check_option("huber_loss", "delta", delta)
    x, y, weight = _regression_args(input, target, weight)
    return launch(_HUBER, x, y, None, weight, (delta, 0.0, 0.0), **plumbing(reduction, grad, grad_output, grad_out))


def poisson_nll_loss(input, target, log_input=True, full=False, *, eps=1e-8, reduction="mean", grad=False,
                     grad_output=None, grad_out=None, backend=None):
    """:func:`fastloss.poisson_nll_loss` on the GPU: the elementwise driver with the kernel
    of ``log_input`` and ``full``."""
    check_options(reduction, grad)
    eps = check_option("poisson_nll_loss", "eps", eps)
    log_input, full = check_bool(log_input, "log_input"), check_bool(full, "full")
    x, y, _ = _regression_args(input, target)
    kind = ((_POISSON_LOG_INPUT_FULL if full else _POISSON_LOG_INPUT) if log_input else
            (_POISSON_FULL if full else _POISSON))
    return launch(kind, x, y, params=(0.0, eps, 0.0), **plumbing(reduction, grad, grad_output, grad_out))


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean", *, grad=False, grad_output=None,
                      grad_out=None, backend=None):
    """:func:`fastloss.gaussian_nll_loss` on the GPU: the elementwise driver with its kernel,
    the variance's gradient summed over its broadcast axes on the device; a negative
    variance is flagged in the kernel and raises the CPU path's ValueError."""
    check_options(reduction, grad)
    eps = check_option("gaussian_nll_loss", "eps", eps)
    full = check_bool(full, "full")
    x, y, _ = _regression_args(input, target)
    v = secondary(var, "var", x.dtype)
    var_shape = tuple(v.shape)
    layout = variance_layout(var_shape, x.shape)
    v = v.reshape(layout) if layout != var_shape else v
    result, bad = elementwise_loss(_GAUSSIAN_NLL, x, y, v, None, (eps, float(full), 0.0), dz_like=layout,
                                   check=check_variance, **plumbing(reduction, grad, grad_output, grad_out))
    if bad is not None and bad[2] is not None:
        raise negative_variance(value_at(v, bad[2], x.shape))
    if not grad:
        return result
    value, (dx, dv) = result
    return value, (dx, dv.reshape(var_shape) if layout != var_shape else dv)
