"""Every public loss of fastloss as a small, valid, random float64 call: the one case list
that the tests parametrised over the whole loss set draw from.

``CASES[name].make(rng)`` gives ``(args, options)``; :func:`data` turns it into the loss
function, its arguments by name (floats cast to a dtype) and the names of its
differentiable arguments. ``test_cases_cover_every_loss`` (tests/test_torch.py) fails
until a new loss has an entry here.
"""
import dataclasses
from typing import Callable

import numpy as np
import torch

import fastloss as fl
from fastloss import _batch


def _offset(rng, shape):
    """Differences kept at least 0.2 away from 0 (L1's and the hinges' kinks), either sign."""
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0) * rng.uniform(0.2, 1.0, shape)


def _signs(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def _normal(rng, *shape):
    return rng.standard_normal(shape)


def _ctc(rng):
    log_probs = torch.log_softmax(torch.tensor(_normal(rng, 6, 3, 4)), -1).numpy()
    return [log_probs, rng.integers(1, 4, (3, 2)), np.array([6, 5, 6]), np.array([2, 1, 2])], {}


@dataclasses.dataclass(frozen=True)
class Case:
    """Small float64 inputs of one loss: ``make(rng)`` gives ``(args, options)``."""

    make: Callable
    reductions: tuple = ("none", "mean", "sum")
    gradcheck: bool = True  # False where the gradient is by definition not the value's derivative
    through: Callable = None  # applied to the first differentiable leaf before the loss (CTC: log_softmax)


X, T = (4, 3), (4,)
# Inputs are continuous random draws (a kink within gradcheck's 1e-6 step has probability
# about 1e-5 per test); the differences whose kink a loss takes directly are drawn away from it.
CASES = {
    "l1_loss": Case(lambda r: ([x := _normal(r, *X), x + _offset(r, X)], {})),
    "mse_loss": Case(lambda r: ([_normal(r, *X), _normal(r, *X)], {})),
    "smooth_l1_loss": Case(lambda r: ([x := _normal(r, *X), x + 2 * _offset(r, X)], {})),
    "huber_loss": Case(lambda r: ([x := _normal(r, *X), x + 2 * _offset(r, X)], {})),
    "poisson_nll_loss": Case(lambda r: ([_normal(r, *X), r.poisson(2.0, X).astype(float)], {})),
    "gaussian_nll_loss": Case(lambda r: ([_normal(r, *X), _normal(r, *X), r.uniform(0.5, 1.5, X)], {})),
    "cross_entropy": Case(lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {})),
    "nll_loss": Case(lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {})),
    "binary_cross_entropy": Case(lambda r: ([r.uniform(0.1, 0.9, X), r.random(X)], {})),
    "binary_cross_entropy_with_logits": Case(lambda r: ([_normal(r, *X), r.random(X)], {})),
    "kl_div": Case(lambda r: ([_normal(r, *X), r.uniform(0.1, 1.0, X)], {}),
                   reductions=("none", "mean", "sum", "batchmean")),
    "focal_loss": Case(lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {})),
    "sigmoid_focal_loss": Case(lambda r: ([_normal(r, *X), (r.random(X) < 0.5).astype(float)], {})),
    "margin_ranking_loss": Case(lambda r: ([x := _normal(r, 5), x + _offset(r, 5), _signs(r, 5)], {})),
    "hinge_embedding_loss": Case(lambda r: ([1.0 + _offset(r, X), _signs(r, X)], {})),
    "multi_margin_loss": Case(lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {})),
    "multilabel_margin_loss": Case(lambda r: ([_normal(r, *X), np.array([[0, -1, 1], [2, 1, -1], [1, 0, 2],
                                                                          [-1, 0, 0]])], {})),
    "soft_margin_loss": Case(lambda r: ([_normal(r, *X), _signs(r, X)], {})),
    "multilabel_soft_margin_loss": Case(lambda r: ([_normal(r, *X), (r.random(X) < 0.5).astype(float)], {})),
    "hinge_loss": Case(lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {})),
    "cosine_embedding_loss": Case(lambda r: ([_normal(r, *X), _normal(r, *X), _signs(r, T)], {})),
    "triplet_margin_loss": Case(lambda r: ([_normal(r, *X), _normal(r, *X), _normal(r, *X)], {})),
    "triplet_margin_with_distance_loss": Case(lambda r: ([_normal(r, *X), _normal(r, *X), _normal(r, *X)], {})),
    "contrastive_loss": Case(lambda r: ([_normal(r, *X), _normal(r, *X), r.integers(0, 2, T)], {})),
    "large_margin_cosine_loss": Case(lambda r: ([_normal(r, *X), _normal(r, 5, 3), r.integers(0, 5, T)],
                                                {"s": 8.0})),
    # The anchor probability is a stop-gradient (API contract): checked against the NumPy
    # API's gradient, itself checked against the authors' code in test_extras.py.
    "anchor_loss": Case(lambda r: ([2 * _normal(r, *X), r.integers(0, 3, T)], {}), gradcheck=False),
    "dice_loss": Case(lambda r: ([_normal(r, *X), (r.random(X) < 0.5).astype(float)], {})),
    "batch_triplet_loss": Case(lambda r: ([_normal(r, 6, 3), np.array([0, 0, 1, 1, 2, 2])], {}),
                               reductions=("mean", "mean_nonzero", "sum")),
    "ctc_loss": Case(_ctc, through=lambda leaf: leaf.log_softmax(-1)),
}

LOSSES = sorted(_batch.losses())


def data(name, rng, dtype=np.float64):
    """``(fn, call, diff)``: the NumPy loss, its arguments by name (floats in ``dtype``)
    and the names of its differentiable arguments."""
    fn = getattr(fl, name)
    args, options = CASES[name].make(rng)
    names = _batch.data_parameters(fn)
    call = {n: a.astype(dtype) if a.dtype.kind == "f" else a for n, a in zip(names, args)}
    return fn, {**call, **options}, _batch.gradient_names(fn, _batch.spec_of(fn))
