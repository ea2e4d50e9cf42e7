"""Shared benchmark conventions.

Every benchmark is parametrised by ``impl`` in :data:`IMPLS` (:data:`CYTHON_IMPLS` for
the families with Cython kernels: classification and regression) next to loss, size and
dtype, with ``benchmark.group`` naming everything but the implementation, so that
``bench/report.py`` can put the implementations of one group side by side. Inputs
are seeded and made outside the timed region; each callable is run once before
timing, so JIT compilation and cache loading are never timed.
"""
import numpy as np
import pytest

from fastloss._core import backends as _backend
from fastloss.benchmarks import IMPLS as CYTHON_IMPLS
from fastloss.benchmarks import _torch  # noqa: F401 (re-exported for bench files)

IMPLS = tuple(impl for impl in CYTHON_IMPLS if impl != "cython")


def rng(seed=0):
    return np.random.default_rng(seed)


def run(benchmark, group, impl, fn):
    """Time ``fn`` under ``group``, after one untimed call; torch cases skip without torch,
    cython cases without the built extension."""
    if impl == "torch" and _torch() is None:
        pytest.skip("torch not installed")
    if impl == "cython" and not _backend.cython_built():
        pytest.skip("the Cython extension is not built")
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    fn()
    benchmark(fn)

torch = _torch()  # the torch module, or None when it is not installed


def torch_backward(torch_fn, args, diff=(0,)):
    """A callable running ``torch_fn`` forward and backward on tensors sharing the NumPy
    ``args``' memory, the arguments at positions ``diff`` requiring grad (None without torch)."""
    if torch is None:
        return None
    tensors = [torch.from_numpy(a) for a in args]

    def fn():
        inputs = [t.detach().requires_grad_(i in diff) for i, t in enumerate(tensors)]
        torch_fn(*inputs).backward()
    return fn
