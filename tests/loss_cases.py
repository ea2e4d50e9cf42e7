"""Every public loss of fastloss as a small, valid, random float64 call: the one case list
that the tests parametrised over the whole loss set draw from.

``CASES[name].make(rng)`` gives ``(args, options)``; :func:`data` turns it into the loss
function, its arguments by name (floats cast to a dtype) and the names of its
differentiable arguments. ``CASES[name].weights(rng)`` gives the loss's float array
options (class weights, ``pos_weight``, ``alpha``), for the tests that put hostile values
in them; :func:`reference` is the torch function the tests take as the truth:
``torch.nn.functional``'s of the same name, or the torch composition named in the case.
``test_cases_cover_every_loss`` (tests/test_torch.py) fails until a new loss has an entry here.
"""
import dataclasses
import inspect
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

import fastloss as fl
import naive_triplet
from fastloss import _batch
from references import (anchor_torch, contrastive_torch, cosface_torch, dice_torch, torch_focal,
                        torchvision_sigmoid_focal_loss)


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
    weights: Callable = None  # rng -> the loss's float array options ({} by default)
    torch: Callable = None  # the torch reference, if not torch.nn.functional's function of the same name


def _class_weight(r):
    return r.uniform(0.3, 1.5, X[1])


def _hinge_torch(input, target, margin=1.0, reduction="mean"):
    """max(0, margin - y f) for (N,) scores; Crammer-Singer for (N, C): the hinge against the
    largest competitor (torch's max gives its gradient to one index of a tie)."""
    if input.ndim == 1:
        loss = torch.clamp(margin - target * input, min=0)
    else:
        own = input.gather(1, target[:, None])[:, 0]
        others = input.masked_fill(F.one_hot(target, input.shape[1]).bool(), -torch.inf)
        loss = torch.clamp(margin - own + others.max(1).values, min=0)
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def _batch_triplet_torch(embeddings, labels, reduction="mean", **options):
    """tests/naive_triplet.py's enumeration of every triplet, with fastloss's defaults."""
    defaults = {k: p.default for k, p in inspect.signature(fl.batch_triplet_loss).parameters.items()
                if k in ("strategy", "margin", "metric", "soft_margin")}
    o = {**defaults, **options}
    return naive_triplet.batch_triplet_loss(embeddings, labels.numpy(), o["strategy"], o["margin"], o["metric"],
                                            o["soft_margin"], reduction)


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
    "cross_entropy": Case(lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {}),
                          weights=lambda r: {"weight": _class_weight(r)}),
    "nll_loss": Case(lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {}),
                     weights=lambda r: {"weight": _class_weight(r)}),
    "binary_cross_entropy": Case(lambda r: ([r.uniform(0.1, 0.9, X), r.random(X)], {}),
                                 weights=lambda r: {"weight": r.uniform(0.3, 1.5, X)}),
    "binary_cross_entropy_with_logits": Case(lambda r: ([_normal(r, *X), r.random(X)], {}),
                                             weights=lambda r: {"weight": r.uniform(0.3, 1.5, X),
                                                                "pos_weight": _class_weight(r)}),
    "kl_div": Case(lambda r: ([_normal(r, *X), r.uniform(0.1, 1.0, X)], {}),
                   reductions=("none", "mean", "sum", "batchmean")),
    "focal_loss": Case(lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {}),
                       weights=lambda r: {"alpha": _class_weight(r)}, torch=torch_focal),
    "sigmoid_focal_loss": Case(lambda r: ([_normal(r, *X), (r.random(X) < 0.5).astype(float)], {}),
                               torch=torchvision_sigmoid_focal_loss),
    "margin_ranking_loss": Case(lambda r: ([x := _normal(r, 5), x + _offset(r, 5), _signs(r, 5)], {})),
    "hinge_embedding_loss": Case(lambda r: ([1.0 + _offset(r, X), _signs(r, X)], {})),
    "multi_margin_loss": Case(lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {}),
                              weights=lambda r: {"weight": _class_weight(r)}),
    "multilabel_margin_loss": Case(lambda r: ([_normal(r, *X), np.array([[0, -1, 1], [2, 1, -1], [1, 0, 2],
                                                                          [-1, 0, 0]])], {})),
    "soft_margin_loss": Case(lambda r: ([_normal(r, *X), _signs(r, X)], {})),
    "multilabel_soft_margin_loss": Case(lambda r: ([_normal(r, *X), (r.random(X) < 0.5).astype(float)], {}),
                                        weights=lambda r: {"weight": _class_weight(r)}),
    "hinge_loss": Case(lambda r: ([_normal(r, *X), r.integers(0, 3, T)], {}), torch=_hinge_torch),
    "cosine_embedding_loss": Case(lambda r: ([_normal(r, *X), _normal(r, *X), _signs(r, T)], {})),
    "triplet_margin_loss": Case(lambda r: ([_normal(r, *X), _normal(r, *X), _normal(r, *X)], {})),
    "triplet_margin_with_distance_loss": Case(lambda r: ([_normal(r, *X), _normal(r, *X), _normal(r, *X)], {})),
    "contrastive_loss": Case(lambda r: ([_normal(r, *X), _normal(r, *X), r.integers(0, 2, T)], {}),
                             torch=contrastive_torch),
    "large_margin_cosine_loss": Case(lambda r: ([_normal(r, *X), _normal(r, 5, 3), r.integers(0, 5, T)],
                                                {"s": 8.0}), torch=cosface_torch),
    # The anchor probability is a stop-gradient (API contract): checked against the NumPy
    # API's gradient, itself checked against the authors' code in test_extras.py.
    "anchor_loss": Case(lambda r: ([2 * _normal(r, *X), r.integers(0, 3, T)], {}), gradcheck=False,
                        torch=anchor_torch),
    "dice_loss": Case(lambda r: ([_normal(r, *X), (r.random(X) < 0.5).astype(float)], {}), torch=dice_torch),
    "batch_triplet_loss": Case(lambda r: ([_normal(r, 6, 3), np.array([0, 0, 1, 1, 2, 2])], {}),
                               reductions=("mean", "mean_nonzero", "sum"), torch=_batch_triplet_torch),
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


def reference(name):
    """The torch function the tests take as the truth for loss ``name``, called with the data
    arguments in order and the options by keyword."""
    return CASES[name].torch or getattr(F, name)
