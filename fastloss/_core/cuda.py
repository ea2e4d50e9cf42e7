"""The one place that chooses fastloss's CUDA implementation, and what every GPU kernel shares.

fastloss's GPU kernels are written once, in the ``numba.cuda`` dialect, in the subset that
both packages implementing it support: grid and block indices, shared arrays,
``syncthreads``, atomics and ``math``. :func:`load` gives the module they are compiled
with, first to last:

1. Numba's CUDA simulator, when ``NUMBA_ENABLE_CUDASIM=1`` is set before numba is
   imported (numba-cuda's simulator runs each CUDA thread as a Python thread on the CPU:
   tests use tiny shapes);
2. ``numba_cuda_mlir.cuda`` (numba-cuda-mlir, the maintained successor);
3. ``numba.cuda`` from numba-cuda (maintained no more; it breaks on NumPy 2.5);
4. none: :func:`load` raises ImportError, which the GPU entry point turns into a clear
   error only when a device array is passed.

``import fastloss`` imports none of them: a family's ``cuda.py`` module, which compiles
its kernels at import, is imported on the first call with a device array.

Block reductions (``block_sum``, ``block_max`` in :mod:`fastloss._core.cuda_blocks`) run in
shared memory. On a real
GPU the last 32 values are reduced with warp shuffles; the simulator has no warp
intrinsics, so there the whole reduction stays in shared memory.

Device arrays
-------------
:func:`is_device_array` recognises an array on a GPU: any object with
``__cuda_array_interface__`` (a CuPy array, a torch CUDA tensor, a Numba device array),
and the simulator's device arrays. :func:`as_device` views one as the kernels' device
array without a copy; :func:`like` turns a result back into the kind of array the caller
passed (CuPy in, CuPy out; torch in, torch out; a Numba device array as it is).

Bad values on the device
------------------------
Shapes and options are checked on the host, as for host arrays. Values that only the
kernel sees (a class index out of range, a CTC length) are checked inside it: a kernel
never reads out of bounds, gives NaN for an invalid row, and records the first invalid
row in a device flag (:func:`new_flag`, ``cuda.atomic.min``). The call then reads that
flag, one 4-byte copy to the host and so one synchronisation, and raises ValueError
(:func:`first_flagged`). ``fastloss.set_device_checks(False)`` (or
``FASTLOSS_DEVICE_CHECKS=0``) skips the read, for a pipeline that must not synchronise
or for ``torch.compile``: invalid rows are then NaN and nothing is raised.
"""
from __future__ import annotations

import functools
import math
import os
import sys

#: Threads per block of the row and block-reduction kernels: a power of two (the tree
#: reductions halve it), a multiple of the warp size.
BLOCK = 256
#: Threads per block under the simulator, where every thread is a Python thread.
SIMULATOR_BLOCK = 32
WARP = 32


def simulating():
    """Whether kernels run under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "") == "1"


@functools.cache
def load():
    """The ``cuda`` module the kernels are compiled with (see the module docstring);
    ImportError, saying what to install, when there is none."""
    if simulating():
        from numba import cuda as simulator  # numba-cuda's simulator, chosen by the environment variable

        return simulator
    errors = []
    try:
        from numba_cuda_mlir import cuda as mlir
    except ImportError as error:
        errors.append(f"numba-cuda-mlir: {error}")
    else:
        return mlir
    try:
        from numba import cuda as numba_cuda
    except ImportError as error:
        errors.append(f"numba-cuda: {error}")
    else:
        if numba_cuda.is_available():
            return numba_cuda
        errors.append("numba-cuda: no CUDA driver or GPU is available")
    raise ImportError("fastloss's GPU kernels need a CUDA GPU and one of numba-cuda-mlir (pip install "
                      "'fastloss[cuda]') or numba-cuda (pip install 'fastloss[cuda12]'); " + "; ".join(errors))


_checks = os.environ.get("FASTLOSS_DEVICE_CHECKS", "1").strip() != "0"


def set_device_checks(enabled: bool) -> bool:
    """Whether GPU calls read their validity flag and raise ValueError for bad values
    (default True; see :mod:`fastloss._core.cuda`). Returns the previous setting."""
    global _checks
    previous, _checks = _checks, bool(enabled)
    return previous


def new_flag(n_items):
    """A device flag for ``n_items`` items: one int64 holding ``n_items`` (nothing flagged).
    A kernel flags item ``i`` with ``cuda.atomic.min(flag, 0, i)``, so the first bad
    item is kept, whatever the order the threads run in."""
    import numpy as np

    return load().to_device(np.array([n_items], np.int64))


def first_flagged(flag, n_items):
    """The first item a kernel flagged, or None (also None, with no read of the device,
    when checks are off)."""
    if not _checks:
        return None
    value = int(flag.copy_to_host()[0])
    return value if value < n_items else None


def block_size():
    """Threads per block: :data:`BLOCK`, or :data:`SIMULATOR_BLOCK` under the simulator."""
    return SIMULATOR_BLOCK if simulating() else BLOCK


def is_device_array(value):
    """Whether ``value`` is an array on a GPU (or a simulated device array)."""
    if hasattr(value, "__cuda_array_interface__"):
        return True
    if simulating() and "numba" in sys.modules:
        return type(value).__name__ == "FakeCUDAArray"
    return False


def as_device(value):
    """``value`` (a device array) as a device array of the kernels' package, no copy."""
    cu = load()
    if simulating() and type(value).__name__ == "FakeCUDAArray":
        return value
    return cu.as_cuda_array(value)


def to_device(value, dtype=None):
    """``value`` on the device: a device array as it is (viewed with :func:`as_device`), a host
    array or scalar copied there, as ``dtype`` when given (a device array of another dtype
    is converted on the device by the caller, not here: TypeError)."""
    import numpy as np

    if is_device_array(value):
        array = as_device(value)
        if dtype is not None and np.dtype(array.dtype) != np.dtype(dtype):
            raise TypeError(f"a device array of dtype {array.dtype} where {np.dtype(dtype)} is needed")
        return array
    host = np.ascontiguousarray(value, dtype=dtype)
    return load().to_device(host)


def like(result, original):
    """Device array ``result`` as the kind of array ``original`` is: a CuPy array, a torch
    CUDA tensor, or the device array itself (Numba's, or the simulator's)."""
    module = type(original).__module__.split(".")[0]
    if module == "cupy":
        import cupy

        return cupy.asarray(result)
    if module == "torch":
        import torch

        return torch.as_tensor(result, device=original.device)
    return result


def grid(n_items, per_block=None):
    """``(blocks, threads)`` to cover ``n_items`` with one thread each (a grid-stride loop
    covers the rest past the grid's cap)."""
    threads = per_block or block_size()
    return max(1, min(math.ceil(n_items / threads), 65535 if not simulating() else 4)), threads
