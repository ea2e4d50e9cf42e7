"""Shared benchmark conventions.

Every benchmark is parametrised by ``impl`` in :data:`IMPLS` next to loss, size and
dtype, with ``benchmark.group`` naming everything but the implementation, so that
``bench/report.py`` can put the implementations of one group side by side. Inputs
are seeded and made outside the timed region; each callable is run once before
timing, so JIT compilation and cache loading are never timed.
"""
import numpy as np
import pytest

IMPLS = ("numpy", "torch", "fastloss")

try:
    import torch
except ImportError:  # torch is an optional bench dependency
    torch = None


def rng(seed=0):
    return np.random.default_rng(seed)


def logits(n, c, dtype, seed=0):
    return (rng(seed).standard_normal((n, c)) * 2).astype(dtype)


def run(benchmark, group, impl, fn):
    """Time ``fn`` under ``group``; torch cases skip when torch is absent."""
    if impl == "torch" and torch is None:
        pytest.skip("torch not installed")
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    fn()  # compile / warm caches outside the timing
    benchmark(fn)
