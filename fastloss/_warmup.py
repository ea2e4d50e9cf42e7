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
    (:mod:`fastloss._backend`) there is nothing to compile: the Cython kernels were
    compiled when the package was built.

    Examples
    --------
    Skipped as a doctest: on a cold cache it compiles every kernel (seconds each).

    >>> import fastloss
    >>> fastloss.warmup()  # doctest: +SKIP
    """
    from . import _backend, _registry

    if _backend.numba is None:
        return
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        for call in _registry.warmup_calls(rng, np.dtype(dtype)):
            call()
