"""The one decorator factory for every CPU kernel of fastloss.

Every Numba function of the package is made by :func:`jit`, so the compilation
options are decided in one place:

* ``cache=True``: a second process loads the machine code from ``__pycache__``
  instead of compiling it again (the cache key holds the CPU name and features).
* ``nogil=True``: kernels release the GIL, so Python threads run them concurrently.
* ``error_model="numpy"``: division by zero gives inf/NaN as in NumPy, no exception
  branch in the hot loops.
* ``fastmath``: never the global ``True``. Its ``nnan``/``ninf`` flags would let LLVM
  assume that no NaN or inf exists, and fastloss must propagate both as torch does.
  :data:`STRICT` allows only fused multiply-add contraction. :data:`REDUCE` adds
  reassociation, which LLVM needs to vectorise a floating-point sum; it is given only
  to the small summation helpers, never to code whose evaluation order matters (the
  range reduction of :func:`fastloss._math.exp_fast`, for instance).

Parallel kernels need a thread-safe threading layer (OpenMP or TBB) so that several
Python threads may call them at once; the workqueue layer is not thread-safe.
"""
import os

import numba

STRICT = frozenset({"contract"})
REDUCE = frozenset({"contract", "reassoc", "nsz"})

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "threadsafe"


def jit(*, parallel=False, fastmath=STRICT, inline="never"):
    """Return ``numba.njit`` with fastloss's fixed options and the given variable ones."""
    return numba.njit(
        cache=True,
        nogil=True,
        error_model="numpy",
        boundscheck=False,
        parallel=parallel,
        fastmath=set(fastmath),
        inline=inline,
    )


def overload_jit_options(fastmath=STRICT):
    """Options for ``numba.extending.overload`` implementations (same policy as :func:`jit`)."""
    return dict(fastmath=set(fastmath), error_model="numpy", boundscheck=False, nogil=True)
