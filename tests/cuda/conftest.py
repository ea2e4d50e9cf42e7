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
