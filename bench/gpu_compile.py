"""Compile every GPU kernel of fastloss to PTX for sm_90 (H100/H200), on a machine
without a GPU: a check that the kernels are valid for the device compiler, not only for
Numba's CUDA simulator.

Each family's ``cuda.py``, and :mod:`fastloss._core.cuda_elementwise`, lists its kernels
and launch signatures in ``PTX_SIGNATURES``, a module-level list of ``(kernel,
signatures)``; this script compiles each with ``cuda.compile_ptx(..., cc=(9, 0))``.

Needs numba-cuda and NVVM, not a driver: in a virtual environment of its own::

    python3 -m venv /tmp/venv-nvvm
    /tmp/venv-nvvm/bin/pip install 'numba-cuda[cu13]==0.30.4' 'numpy==2.4.*'
    PYTHONPATH=. /tmp/venv-nvvm/bin/python bench/gpu_compile.py

Two stand-ins make that work without a driver, here only: numba-cuda compiles the device
functions a kernel calls for the current device's compute capability, which it asks the
driver for (sm_90 is given instead), and :func:`fastloss._core.cuda.load` checks that a
GPU is there (numba-cuda's ``cuda`` module is given instead).
"""
import importlib
import os
import sys
import time
import types

CC = (9, 0)
MODULES = ["fastloss._core.cuda_elementwise", "fastloss.classification.cuda", "fastloss.ctc.cuda",
           "fastloss.embedding.cuda", "fastloss.margin.cuda", "fastloss.regression.cuda", "fastloss.triplet.cuda",
           "fastloss.extras.cuda"]


def listed():
    """``(module name, kernel, signature)`` for every kernel and launch signature that the
    GPU modules list in their ``PTX_SIGNATURES``."""
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        for kernel, signatures in getattr(module, "PTX_SIGNATURES", []):
            for signature in signatures if isinstance(signatures, list) else [signatures]:
                yield name, kernel, signature


def main():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        sys.exit("unset NUMBA_ENABLE_CUDASIM: the simulator compiles nothing")
    from numba import cuda
    from numba.cuda import dispatcher

    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=CC)
    from fastloss._core import cuda as core

    core.load = lambda: cuda
    failures = 0
    for name, kernel, signature in listed():
        start = time.perf_counter()
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=CC)
        except Exception as error:  # report every kernel, then fail
            failures += 1
            print(f"FAIL {name}.{kernel.__name__} {signature}: {type(error).__name__}: {error}")
            continue
        print(f"ok   {name}.{kernel.py_func.__qualname__} ({len(ptx)} bytes of PTX, "
              f"{time.perf_counter() - start:.1f} s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
