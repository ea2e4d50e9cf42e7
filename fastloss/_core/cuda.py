"""The one place that chooses fastloss's CUDA implementation, and what every GPU kernel shares.

fastloss's GPU kernels are written once, in the ``numba.cuda`` dialect, in the subset that
both packages implementing it support: grid and block indices, shared and local arrays,
``syncthreads``, atomics, ``math`` and launch bounds (:func:`resident`; both packages'
``jit`` take ``launch_bounds``, and numba-cuda-mlir 0.6 lowers ``cuda.local.array``).
:func:`load` gives the module they are compiled with, first to last:

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

Dispatch
--------
The public losses take device arrays: their interop wrapper
(:mod:`fastloss._core.interop`) sends a call whose first data argument is a device array
to :func:`call`, which finds the loss's device entry point (:func:`entry_point`: the
function of the same name in ``fastloss.<family>.cuda``), views every device argument
with :func:`as_device`, and gives each device result back as the caller's kind of
array (:func:`like`), ``grad_out`` as the caller's own object. ``backend=`` names host
backends only: device arrays choose the GPU.
"""
from __future__ import annotations

import functools
import importlib
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
    (default True, or ``FASTLOSS_DEVICE_CHECKS=0`` in the environment for False).

    A value that only a kernel reads (a probability outside [0, 1], a class index out of
    range) makes its element or row NaN on the GPU; with checks on, the call then reads a
    4-byte flag from the device (one synchronisation) and raises the CPU path's
    ValueError. Off, nothing is read: for a pipeline that must not synchronise, or
    ``torch.compile``. Returns the previous setting. Host arrays are always checked.

    Examples
    --------
    >>> import fastloss
    >>> previous = fastloss.set_device_checks(False)
    >>> fastloss.set_device_checks(previous)
    False
    """
    global _checks
    previous, _checks = _checks, bool(enabled)
    return previous


def new_flag(n_items, slots=1):
    """A device flag for ``n_items`` items: ``slots`` int64 each holding ``n_items`` (nothing
    flagged). A kernel flags item ``i`` in slot ``k`` with ``cuda.atomic.min(flag, k, i)``,
    so the first bad item is kept, whatever the order the threads run in (a slot per kind
    of bad value, when the error says which argument holds it)."""
    import numpy as np

    return load().to_device(np.full(slots, n_items, np.int64))


def flagged(flag, n_items):
    """The first item a kernel flagged in each slot of ``flag`` (None for a slot with none),
    read in one copy; None, with no read of the device, when checks are off."""
    if not _checks:
        return None
    return tuple(int(value) if value < n_items else None for value in flag.copy_to_host())


def first_flagged(flag, n_items):
    """The first item a kernel flagged in slot 0, or None (also None, with no read of the
    device, when checks are off)."""
    slots = flagged(flag, n_items)
    return None if slots is None else slots[0]


def resident(blocks):
    """Keyword arguments of ``cuda.jit`` for a kernel launched with at most :data:`BLOCK`
    threads a block that should keep ``blocks`` blocks on one multiprocessor at once:
    ``launch_bounds``, which caps the registers a thread takes (65536 / (BLOCK * blocks)
    on sm_90) so that a memory-bound kernel has enough loads in flight. None under the
    simulator, whose ``jit`` takes no launch bounds (and has no registers)."""
    return {} if simulating() else {"launch_bounds": (BLOCK, blocks)}


def per_thread(bytes_in_flight, dtype):
    """Elements of ``dtype`` a thread loads a round when it keeps ``bytes_in_flight`` bytes
    of an array in flight (a kernel's batched loads, and the launch size they ask for)."""
    import numpy as np

    return bytes_in_flight // np.dtype(dtype).itemsize


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
    host = np.asarray(value, dtype=dtype, order="C")  # a 0-d value stays 0-d (ascontiguousarray makes it (1,))
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


def threads_for(cells):
    """Threads per block for ``cells`` items of work in a block: the power of two covering
    them, at most :func:`block_size` and at least a warp (the warp-shuffle reductions need
    whole warps; the simulator's shared-memory ones take any power of two, and fewer
    Python threads run faster)."""
    floor = 1 if simulating() else WARP
    return min(block_size(), max(floor, 1 << max(0, cells - 1).bit_length()))


def grid(n_items, per_block=None):
    """``(blocks, threads)`` to cover ``n_items`` with one thread each (a grid-stride loop
    covers the rest past the grid's cap)."""
    threads = per_block or block_size()
    return max(1, min(math.ceil(n_items / threads), 65535 if not simulating() else 4)), threads


def strided(array):
    """Device array ``array`` as ``(flat, start, strides)``: a 1-D device array over the
    memory it spans (no copy), the index in ``flat`` of its first element, and its strides
    in elements (0 along an axis of length 1), so that a kernel reads any layout, negative
    strides included, through one flat array."""
    import numpy as np

    itemsize = np.dtype(array.dtype).itemsize
    if any(s % itemsize for s in array.strides):
        raise TypeError(f"a device array with strides {array.strides} that are not multiples of its item size")
    steps = tuple(s // itemsize if n > 1 else 0 for n, s in zip(array.shape, array.strides))
    low = sum((n - 1) * s for n, s in zip(array.shape, steps) if s < 0)
    span = max(1, sum((n - 1) * abs(s) for n, s in zip(array.shape, steps)) + 1)
    if simulating() and type(array).__name__ == "FakeCUDAArray":
        host = array._ary  # the simulator's device memory is a NumPy array
        lowest = host[tuple(slice(None, None, -1) if s < 0 else slice(None) for s in steps)] if low else host
        flat = np.lib.stride_tricks.as_strided(lowest, shape=(span,), strides=(itemsize,))
        return type(array)(flat), -low, steps
    interface = array.__cuda_array_interface__
    span_view = _Interface({"shape": (span,), "strides": None, "typestr": interface["typestr"],
                            "data": (interface["data"][0] + low * itemsize, False), "version": 3}, array)
    return load().as_cuda_array(span_view), -low, steps


class _Interface:
    """An object exposing a given ``__cuda_array_interface__`` (a view to build), keeping
    the array whose memory it shows alive as long as the view."""

    def __init__(self, interface, owner):
        self.__cuda_array_interface__ = interface
        self.owner = owner


def entry_point(name, module):
    """The device entry point of loss ``name`` (the public function of module ``module``):
    ``fastloss.<family>.cuda.<name>``, the family from the table of losses; TypeError
    when there is none, ImportError (from :func:`load`) when no CUDA implementation can run."""
    from .table import LOSSES

    load()
    where = f"fastloss.{LOSSES[name].family}.cuda" if name in LOSSES else f"{module}.cuda"
    try:
        found = getattr(importlib.import_module(where), name, None)
    except ModuleNotFoundError as error:
        if error.name != where:
            raise
        found = None
    if found is not None:
        return found
    raise TypeError(f"{name} has no GPU kernel yet; move the arrays to the host (tensor.cpu(), cupy.asnumpy(x), "
                    f"array.copy_to_host()) and call it with NumPy arrays")


def call(function, names, args, kwargs):
    """``function(*args, **kwargs)`` on the GPU: its device entry point called with every
    device argument viewed by :func:`as_device` (one view per object, so that
    ``grad_out=input`` stays the input), device results as the first data argument's kind
    of array, ``grad_out`` the caller's own object; ``names``: the positional parameters."""
    entry = entry_point(function.__name__, function.__module__)
    first = args[0] if args else kwargs[names[0]]
    views: dict = {}

    def view(value):
        if not is_device_array(value):
            return value
        if id(value) not in views:
            views[id(value)] = as_device(value)
        return views[id(value)]

    new_args = [view(value) for value in args]
    new_kwargs = {key: view(value) for key, value in kwargs.items()}
    result = entry(*new_args, **new_kwargs)
    grad_out = kwargs.get("grad_out")
    written = new_kwargs.get("grad_out")

    def back(value):
        if isinstance(value, (tuple, list)):
            return type(value)(back(item) for item in value)
        if written is not None and value is written:
            return grad_out
        return like(value, first) if is_device_array(value) else value

    return back(result)
