"""The CPU kernels of :mod:`fastloss.regression`: Numba functions, compiled just in time;
the wrappers that validate and call them are in ``fastloss/regression/__init__.py``."""
from __future__ import annotations

import math

from .._core.elementwise import register
from .._core.jit import jit
from .._core.numerics import exp_fast, log_fast, typed

# ---------------------------------------------------------------- scalar kernels

@jit(inline="always")
def _sign(d):
    """torch.sign: -1, 0 or 1; 0 for NaN too, as torch's CPU sign (so the L1 gradient is 0 there)."""
    one = typed(1, d)
    return one if d > 0 else (-one if d < 0 else typed(0, d))


@jit()
def _l1_point(x, y, unused, p0, p1, p2):
    d = x - y
    return abs(d), _sign(d), typed(0, d)


@jit()
def _mse_point(x, y, unused, p0, p1, p2):
    d = x - y
    return d * d, d + d, d * 0


@jit()
def _smooth_l1_point(x, y, unused, beta, p1, p2):
    """0.5 d^2 / beta for |d| < beta, else |d| - 0.5 beta; beta = 0 is the L1 loss (as torch)."""
    d = x - y
    a = abs(d)
    half = typed(0.5, d)
    if beta > 0 and not (a >= beta):  # NaN takes this branch: a NaN gradient, as torch
        return half * d * d / beta, d / beta, d * 0
    return a - half * beta, _sign(d), d * 0


@jit()
def _huber_point(x, y, unused, delta, p1, p2):
    """0.5 d^2 for |d| < delta, else delta (|d| - 0.5 delta)."""
    d = x - y
    a = abs(d)
    half = typed(0.5, d)
    if not (a >= delta):  # NaN takes this branch: a NaN gradient, as torch
        return half * d * d, d, d * 0
    return delta * (a - half * delta), delta * _sign(d), d * 0


@jit(inline="always")
def _stirling(y):
    """torch's ``full`` term: y log y - y + 0.5 log(2 pi y), masked to 0 where y <= 1 (not
    where y is NaN: NaN passes)."""
    term = y * log_fast(y) - y + typed(0.5, y) * log_fast(typed(2 * math.pi, y) * y)
    return term if not (y <= typed(1, y)) else typed(0, y)


@jit(inline="always")
def _poisson_log_input_terms(x, y):
    e = exp_fast(x)
    return e - y * x, e - y


@jit(inline="always")
def _poisson_terms(x, y, eps):
    return x - y * log_fast(x + eps), typed(1, x) - y / (x + eps)


# ``full`` picks a kernel of its own: tested inside one kernel, a loop-invariant flag keeps
# LLVM from vectorising the loop (it does not unswitch it), which made the default 3x slower.
@jit()
def _poisson_log_input_point(x, y, unused, p0, p1, p2):
    """exp(x) - y x; gradient exp(x) - y."""
    loss, grad = _poisson_log_input_terms(x, y)
    return loss, grad, x * 0


@jit()
def _poisson_log_input_full_point(x, y, unused, p0, p1, p2):
    """exp(x) - y x + Stirling; gradient exp(x) - y."""
    loss, grad = _poisson_log_input_terms(x, y)
    return loss + _stirling(y), grad, x * 0


@jit()
def _poisson_point(x, y, unused, p0, eps, p2):
    """x - y log(x + eps); gradient 1 - y / (x + eps)."""
    loss, grad = _poisson_terms(x, y, eps)
    return loss, grad, x * 0


@jit()
def _poisson_full_point(x, y, unused, p0, eps, p2):
    """x - y log(x + eps) + Stirling; gradient 1 - y / (x + eps)."""
    loss, grad = _poisson_terms(x, y, eps)
    return loss + _stirling(y), grad, x * 0


@jit()
def _gaussian_nll_point(x, y, var, eps, full, p2):
    """0.5 (log v + d^2 / v) with v = max(var, eps) (torch clamps without cutting the gradient).

    ``q = d^2 / v`` as torch forms it (d^2 overflows first), and the var gradient
    0.5 (1 / v - q / v) from it, as torch's division backward. Divisions, not products
    with 1 / v: a product followed by an add may be fused (FMA) in one loop variant and
    not in another, and the value must not depend on grad=True."""
    half = typed(0.5, x)
    v = var if not (var < eps) else eps  # NaN passes through
    d = x - y
    q = d * d / v
    log_2pi = typed(math.log(2 * math.pi), x) if full != 0 else typed(0, x)
    loss = half * (log_fast(v) + q + log_2pi)
    return loss, d / v, half * (typed(1, x) / v - q / v)


_L1 = register(_l1_point)
_MSE = register(_mse_point)
_SMOOTH_L1 = register(_smooth_l1_point)
_HUBER = register(_huber_point)
_POISSON_LOG_INPUT = register(_poisson_log_input_point)
_POISSON_LOG_INPUT_FULL = register(_poisson_log_input_full_point)
_POISSON = register(_poisson_point)
_POISSON_FULL = register(_poisson_full_point)
_GAUSSIAN_NLL = register(_gaussian_nll_point)
