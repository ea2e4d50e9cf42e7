"""Every public loss of fastloss as a small, valid, random float64 call: the one case list
that the tests parametrised over the whole loss set draw from, read off the table of
losses (``fastloss._core.table``), which holds each loss's example call, its float array
options and its reference.

``CASES[name].make(rng)`` gives ``(args, options)``; :func:`data` turns it into the loss
function, its arguments by name (floats cast to a dtype) and the names of its
differentiable arguments. ``CASES[name].weights(rng)`` gives the loss's float array
options (class weights, ``pos_weight``, ``alpha``), for the tests that put hostile values
in them; :func:`reference` is the torch function the tests take as the truth:
``torch.nn.functional``'s of the same name, or the torch composition in references.py
that the table names. What only the tests need is stated here: ``THROUGH`` and
``NO_GRADCHECK``.
"""
import dataclasses
from typing import Callable

import numpy as np
import torch.nn.functional as F

import references
from fastloss._core.table import LOSSES as TABLE


def _normal(rng, *shape):
    return rng.standard_normal(shape)


def _ctc(rng):
    return TABLE["ctc_loss"].example(rng)


# Applied to the first differentiable leaf before the loss: CTC's log-probabilities are
# differentiated through torch's log_softmax, fastloss's through from_logits=True.
THROUGH = {"ctc_loss": lambda leaf: leaf.log_softmax(-1)}
# The anchor probability is a stop-gradient (API contract): checked against the NumPy
# API's gradient, itself checked against the authors' code in test_extras.py.
NO_GRADCHECK = {"anchor_loss"}


@dataclasses.dataclass(frozen=True)
class Case:
    """One loss's test case, from its table entry."""

    make: Callable
    reductions: tuple
    gradcheck: bool  # False where the gradient is by definition not the value's derivative
    through: Callable = None  # see THROUGH
    weights: Callable = None  # rng -> the loss's float array options
    torch: Callable = None  # the torch reference, if not torch.nn.functional's function of the same name


def _reference(entry):
    if entry.reference is None:
        return None
    module, _, name = entry.reference.partition(".")
    assert module == "references", entry.reference
    return getattr(references, name)


CASES = {entry.name: Case(entry.example, entry.reductions, entry.name not in NO_GRADCHECK,
                          THROUGH.get(entry.name), entry.weights, _reference(entry)) for entry in TABLE}

LOSSES = sorted(CASES)


def data(name, rng, dtype=np.float64):
    """``(fn, call, diff)``: the NumPy loss, its arguments by name (floats in ``dtype``)
    and the names of its differentiable arguments that the call gives (an optional one,
    linear_cross_entropy's ``linear_bias``, is left out of the example)."""
    entry = TABLE[name]
    args, options = entry.call(rng, dtype)
    call = {**dict(zip(entry.data, args)), **options}
    return entry.function, call, tuple(k for k in entry.differentiable if k in call)


def reference(name):
    """The torch function the tests take as the truth for loss ``name``, called with the data
    arguments in order and the options by keyword."""
    return CASES[name].torch or getattr(F, name)
