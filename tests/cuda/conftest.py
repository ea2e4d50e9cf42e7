"""The GPU kernels' tests, under Numba's CUDA simulator (or on a real GPU).

``tests/test_cuda.py`` runs this folder in a process of its own with
``NUMBA_ENABLE_CUDASIM=1``: the simulator must be chosen before numba is imported, which
the main test session has long done. To run it by hand::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda -p no:xdist

and on a machine with a GPU, without the variable, to run the same tests on the device.
The simulator runs each CUDA thread as a Python thread: shapes here stay tiny (a few
blocks of at most 32 threads).
"""
import os
import sys
import threading
import traceback
import zlib

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))  # tests/: the oracles' helpers

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed (pip install 'fastloss[test]')")

from fastloss._core import cuda as _cuda  # noqa: E402

try:
    _cuda.load()
except ImportError as error:  # neither the simulator nor a GPU
    pytest.skip(f"no CUDA device and NUMBA_ENABLE_CUDASIM is not set: {error}", allow_module_level=True)


# The simulator runs a block's threads as Python threads that meet at every syncthreads: a
# short GIL switch interval lets them meet about twice as fast.
sys.setswitchinterval(1e-4)


def _shared_array_once(self, shape, dtype, alignment=None):
    """numba-cuda 0.30.4's simulated ``cuda.shared.array``, with its check-then-store under a
    lock. The simulator gives a block's threads one array per source line, but without a
    lock two threads that reach the line together can each store an array of their own;
    a block reduction then sums over two halves (seen here as wrong CTC gradients with the
    short switch interval above). A real GPU has no such race."""
    if shape == 0 or alignment is not None:  # dynamic shared memory (keyed by nothing), or refused
        return _SIMULATED_SHARED_ARRAY(self, shape, dtype, alignment)
    if isinstance(dtype, numba_types.Type):
        dtype = numpy_support.as_dtype(dtype)
    caller = traceback.extract_stack(sys._getframe())[-2][0:2]  # the kernel's line, as the original keys it
    with _SHARED_LOCK:
        array = self._allocations.get(caller)
        if array is None:
            array = self._allocations[caller] = np.empty(shape, dtype)
    return array


if _cuda.simulating():
    from numba.cuda import types as numba_types
    from numba.cuda.simulator import kernelapi
    from numba.cuda.np import numpy_support

    _SHARED_LOCK = threading.Lock()
    _SIMULATED_SHARED_ARRAY = kernelapi.FakeCUDAShared.array
    kernelapi.FakeCUDAShared.array = _shared_array_once


@pytest.fixture
def rng(request):
    """A fresh generator per test, seeded from a stable hash of the test's id."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture
def cuda():
    """The ``cuda`` module the kernels run on (the simulator's under NUMBA_ENABLE_CUDASIM=1)."""
    return _cuda.load()


def host(value):
    """A device result (array or 0-d array) as a NumPy array."""
    return value.copy_to_host() if hasattr(value, "copy_to_host") else np.asarray(value)
