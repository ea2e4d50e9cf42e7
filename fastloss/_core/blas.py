"""numpy's own BLAS, for Numba kernels that call it on their threads, one thread each.

:func:`fastloss.classification.linear_softmax_chunks` (``linear_cross_entropy`` and
CosFace) alternates GEMMs and the cross-entropy kernel. Through ``np.matmul`` every GEMM
runs on OpenBLAS's threads and every kernel on Numba's, and on a machine with few cores
the two pools take turns badly: OpenBLAS's threads spin for about 0.1 s after each GEMM
(bench/blas_spin.py), so the kernel that follows shares its cores with them and runs about
twice as long. Called from inside the Numba kernel instead, on each of its threads with
OpenBLAS set to one thread, the GEMMs and the kernel share one pool, and each thread
multiplies the rows whose logits it then turns into their gradient while they are in its
cache.

:data:`BLAS` is that library, or None where it is not found; the engine then goes
through ``np.matmul`` (as it does for shapes the in-kernel path does not take:
:func:`fastloss.classification._blas_in_kernel`). It is found for numpy's wheels, which carry OpenBLAS
(scipy-openblas, ``numpy.libs/`` or ``numpy/.dylibs/``): ``ctypes`` opens the file that
numpy has already loaded, so the GEMMs and the thread setting are numpy's own. A numpy
built against another BLAS (Accelerate, MKL) keeps the ``np.matmul`` path.

``FASTLOSS_BLAS_IN_KERNELS=0`` turns the path off (the tests run both).
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import threading

import numpy as np

#: The CBLAS constants of the calls: row-major, no transpose, transpose.
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


class OpenBLAS:
    """numpy's OpenBLAS: ``gemm[dtype]``, its ``cblas_?gemm`` as a ctypes function that a
    Numba kernel takes as an argument (and calls with raw pointers), and
    :meth:`single_threaded`, OpenBLAS on one thread for the length of a ``with``."""

    def __init__(self, library, prefix, suffix):
        index = ctypes.c_int64 if "64" in suffix else ctypes.c_int32  # the 64-bit interface's integers
        self.gemm = {}
        for dtype, letter, real in ((np.dtype(np.float32), "s", ctypes.c_float),
                                    (np.dtype(np.float64), "d", ctypes.c_double)):
            function = getattr(library, f"{prefix}cblas_{letter}gemm{suffix}")
            function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, index, index, index, real,
                                 ctypes.c_void_p, index, ctypes.c_void_p, index, real, ctypes.c_void_p, index]
            function.restype = None
            self.gemm[dtype] = function
        self._set = getattr(library, f"{prefix}openblas_set_num_threads{suffix}")
        self._set.argtypes = [ctypes.c_int]
        self._set.restype = None
        self._get = getattr(library, f"{prefix}openblas_get_num_threads{suffix}")
        self._get.restype = ctypes.c_int
        self._lock = threading.Lock()
        self._inside = 0
        self._threads = 1

    @contextlib.contextmanager
    def single_threaded(self):
        """OpenBLAS on one thread until the last of the overlapping ``with`` blocks (of any
        Python thread) ends, then its earlier setting again. Meanwhile a GEMM that another
        thread of the process starts runs on one thread too."""
        with self._lock:
            if self._inside == 0:
                self._threads = self._get()
                self._set(1)
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                if self._inside == 0:
                    self._set(self._threads)


def _numpy_openblas():
    """numpy's OpenBLAS as :class:`OpenBLAS`, or None."""
    if os.environ.get("FASTLOSS_BLAS_IN_KERNELS", "1") == "0":
        return None
    site = os.path.dirname(os.path.dirname(np.__file__))
    for path in sorted(glob.glob(os.path.join(site, "numpy.libs", "*openblas*"))
                       + glob.glob(os.path.join(os.path.dirname(np.__file__), ".dylibs", "*openblas*"))):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        # numpy 2's scipy-openblas64 ("scipy_" and "64_"), numpy 1's openblas64_ ("64_"), 32-bit builds ("")
        for prefix, suffix in (("scipy_", "64_"), ("", "64_"), ("scipy_", ""), ("", "")):
            try:
                return OpenBLAS(library, prefix, suffix)
            except AttributeError:
                continue
    return None


BLAS = _numpy_openblas()
