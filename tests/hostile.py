"""Hostile inputs for the property tests of single losses: NaN, +-inf and huge values put at
random positions of a call's arrays, and the comparison with the torch float64 oracle.

The bar (issue "exactness in the corners"): where torch raises, fastloss raises
ValueError; otherwise the values agree everywhere, NaN and inf included, and the
gradients agree wherever the input element itself is finite. ``grad_output`` gets NaN
only: an infinite one makes torch's autograd add infinite terms of opposite signs in
the graph of each formula, which no fused gradient reproduces.
"""
import warnings

import numpy as np
import torch

HUGE = 1e300
# Huge values of one sign only: huge terms of both signs cancel in a sum (a reduction, the
# weights of a mean), whose rounding then depends on the order of the additions.
SPECIALS = (np.nan, np.inf, -np.inf, HUGE)


def sprinkle(rng, a, specials=SPECIALS, p=0.3):
    """A float64 copy of ``a`` with about a fraction ``p`` of its entries replaced by ``specials``."""
    a = np.array(a, dtype=np.float64, copy=True)
    mask = rng.random(a.shape) < p
    a[mask] = rng.choice(specials, int(mask.sum()))
    return a


def _torch(fn, arrays, diff, kwargs, grad_output):
    tensors = [torch.tensor(a) if isinstance(a, np.ndarray) else a for a in arrays]
    for i in diff:
        tensors[i].requires_grad_(True)
    options = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = fn(*tensors, **options)
        value.backward(torch.tensor(grad_output, dtype=value.dtype).expand(value.shape))
    return value.detach().numpy(), [tensors[i].grad.numpy() for i in diff]


def _agree(actual, expected, what):
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64), rtol=1e-7,
                               atol=1e-300, equal_nan=True, err_msg=what)


def check_hostile(fl_fn, torch_fn, arrays, diff, kwargs, grad_output, backend="numba", torch_kwargs=None):
    """fastloss on ``arrays`` (float64) against torch: both raise (fastloss a ValueError),
    or the values agree and the gradients of ``arrays[i]``, ``i`` in ``diff``, agree
    where ``arrays[i]`` is finite. ``torch_kwargs`` default to ``kwargs``."""
    try:
        expected, expected_grads = _torch(torch_fn, arrays, diff, kwargs if torch_kwargs is None else torch_kwargs,
                                          grad_output)
    except (RuntimeError, ValueError):
        try:
            fl_fn(*arrays, **kwargs, grad=True, grad_output=grad_output, backend=backend)
        except ValueError:
            return
        raise AssertionError("torch raises; fastloss computes")
    with np.errstate(all="ignore"):
        value, grads = fl_fn(*arrays, **kwargs, grad=True, grad_output=grad_output, backend=backend)
    _agree(value, expected, "value")
    grads = grads if isinstance(grads, tuple) else (grads,)
    for g, e, i in zip(grads, expected_grads, diff):
        finite = np.isfinite(arrays[i])
        _agree(np.where(finite, g, 0), np.where(finite, e, 0), f"gradient of argument {i}")
