"""The types of fastloss's public signatures, each stated once.

The family modules import these under ``typing.TYPE_CHECKING`` only (their
annotations are strings, ``from __future__ import annotations``), so a call pays
nothing for them. Each loss function is annotated once, returning ``Loss | WithGrad[G]``;
the package's stub, ``fastloss/__init__.pyi``, generated from the table of losses by
``python -m fastloss._core.stubs`` (:mod:`fastloss._core.stubs`), gives every loss three
``typing.overload`` signatures made from the function's: ``grad=False`` (the default)
returns :data:`Loss`, ``grad=True`` returns ``WithGrad[G]`` with ``G`` the loss's
gradient (:data:`FloatArray`, or :data:`Grad2` / :data:`Grad3` for two or three
differentiable inputs, from the table), and a ``bool`` known only at run time returns
either; and a class for each criterion. (One generic Protocol over the functions'
``ParamSpec`` cannot say this: PEP 612 allows no keyword parameter such as ``grad``
beside ``*args: P.args, **kwargs: P.kwargs``.)
"""
from __future__ import annotations

import os
from typing import Any, Literal, Tuple, TypeVar, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

# ArrayLike and DTypeLike, the inputs' types, are numpy.typing's.
__all__ = ["FloatArray", "IntArray", "Loss", "WithGrad", "Grad2", "Grad3", "Reduction", "Backend", "Metric", "Curve"]

FloatArray = NDArray[np.floating[Any]]
"""A gradient or unreduced losses, float32 or float64 (float16 inputs compute in float32)."""

IntArray = NDArray[np.integer[Any]]
"""Indices (mined triplets, aligned labels)."""

Loss = Union[np.floating[Any], FloatArray]
"""A loss, a NumPy float scalar for ``reduction="mean"`` or ``"sum"`` and an array for ``"none"``."""

G = TypeVar("G")
WithGrad = Tuple[Loss, G]
"""What ``grad=True`` returns, ``(loss, grad)``."""

Grad2 = Tuple[FloatArray, FloatArray]
"""The gradients of a loss of two differentiable inputs, in positional order."""

Grad3 = Tuple[FloatArray, FloatArray, FloatArray]
"""The gradients of a loss of three differentiable inputs (a triplet), in positional order."""

Reduction = Literal["mean", "sum", "none"]
"""The reductions of torch's losses (``kl_div`` adds "batchmean", ``batch_triplet_loss`` "mean_nonzero")."""

Backend = Union[Literal["numba", "cython"], None]
"""Which kernels run a call (None for ``FASTLOSS_BACKEND``, else Numba when it can be imported)."""

Metric = Literal["euclidean", "squared_euclidean", "cosine"]
"""The distances of the triplet losses and miners."""

Curve = Union[ArrayLike, str, "os.PathLike[str]"]
"""A loss curve, as losses, (step, loss) rows, or a CSV or JSON file (:func:`fastloss.diagnose.load_curve`)."""
