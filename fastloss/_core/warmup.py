"""Compile (or load from the cache) every kernel ahead of the first real call."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable

    from numpy.typing import DTypeLike


def warmup(dtypes: Iterable[DTypeLike] = ("float32", "float64")) -> None:
    """Run every public loss once, with and without its gradient, on tiny C-contiguous inputs.

    The first call of a Numba kernel in a process compiles it (about a second per
    kernel) or loads it from the on-disk cache (a fraction of that); call this at
    start-up to pay that cost before timing-sensitive work. Strided or transposed
    inputs compile their own specialisations on first use. When numba is not in use
    (:mod:`fastloss._core.backends`) there is nothing to compile: the Cython kernels were
    compiled when the package was built.

    Examples
    --------
    Skipped as a doctest: on a cold cache it compiles every kernel (seconds each).

    >>> import fastloss
    >>> fastloss.warmup()  # doctest: +SKIP
    """
    from . import backends as _backend

    if _backend.numba is None:
        return
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        for call in calls(rng, np.dtype(dtype)):
            call()


def calls(rng, dtype):
    """Tiny calls that reach every kernel: each loss's example call and its variants (its
    entry in :mod:`fastloss._core.table`), with and without the gradient, the
    public functions that are not losses (mining, forced alignment), and
    linear_cross_entropy's vocabulary blocks (which no tiny call of it reaches)."""
    from .. import classification, ctc, triplet
    from .table import LOSSES

    found = []
    for entry in LOSSES:
        for make in (entry.example, *entry.variants):
            args, options = entry.call(rng, dtype, make)
            for grad in (False, True):
                found.append(lambda fn=entry.function, a=args, o=options, g=grad: fn(*a, **o, grad=g))
    embeddings, labels = rng.standard_normal((6, 3)).astype(dtype), np.array([0, 0, 1, 1, 2, 2])
    log_probs = rng.standard_normal((2, 3, 3)).astype(dtype)
    found += [lambda: triplet.mine_triplets(embeddings, labels),
              lambda: ctc.ctc_forced_align(log_probs, np.array([[1, 2], [2, 2]]), [3, 3], [2, 1])]
    found += classification.vocabulary_block_calls(rng, dtype)
    return found
