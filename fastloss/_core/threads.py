"""How many threads fastloss's parallel kernels use: one setting for the whole process.

:func:`set_num_threads`, the :func:`num_threads` context and the environment variable
``FASTLOSS_NUM_THREADS`` (read at import) set it; it holds in every Python thread,
including threads started later. Until it is set, each backend keeps its own default:
Numba's setting of the calling thread (``NUMBA_NUM_THREADS``, all the CPUs it may use,
unless ``numba.set_num_threads`` said otherwise there) and OpenMP's for the Cython
kernels (``OMP_NUM_THREADS``).

Numba's own ``numba.set_num_threads`` is thread-local: a thread started later runs
with all ``NUMBA_NUM_THREADS``. So every parallel Numba kernel is entered through
:func:`parallel_kernel`'s wrapper, which hands the process setting to Numba in the calling
thread when it differs from what it last handed there (a thread-local attribute read,
a fraction of a microsecond, against the tens of microseconds of starting a parallel
region). The Cython kernels read a cap of their own extension module, which
:func:`attach_cython` and every change of the setting keep equal to it.
"""
import contextlib
import functools
import numbers
import os
import threading
from collections.abc import Iterator

from .backends import numba

#: The process setting; None until set (each backend's default then holds).
_count = None


class _Handed(threading.local):
    """Per Python thread: the count fastloss last handed to Numba there (None: none, or
    handed back) and the thread's own count before that. Class attributes as defaults, so
    that reading them in a new thread raises nothing (an exception costs microseconds)."""

    n = None
    original = None


_handed = _Handed()
#: The loaded Cython extension modules, whose caps follow the setting.
_cython_modules: list = []


def max_threads():
    """The largest count accepted: ``numba.config.NUMBA_NUM_THREADS`` (the size of
    Numba's thread pool), or the CPUs this process may use when numba is not in use."""
    if numba is not None:
        return numba.config.NUMBA_NUM_THREADS
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _checked(n, name):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(n).__name__}")
    limit = max_threads()
    if not 1 <= n <= limit:
        raise ValueError(f"{name} must be between 1 and {limit} (numba.config.NUMBA_NUM_THREADS), got {n}")
    return int(n)


def _set(n):
    """Make ``n`` (a checked count, or None for the defaults) the process setting."""
    global _count
    _count = n
    for module in _cython_modules:
        module.set_num_threads(n or 0)


def set_num_threads(n: int) -> None:
    """Run fastloss's parallel kernels on ``n`` threads, in every thread of the process.

    ``n`` is an integer from 1 to ``numba.config.NUMBA_NUM_THREADS`` (ValueError
    otherwise; TypeError if not an integer). It covers both backends, Numba's and the
    Cython kernels' OpenMP loops, and Python threads started later; it does not limit
    BLAS (NumPy's matrix products: use threadpoolctl) or torch's own thread pool
    (``torch.set_num_threads``). Results do not depend on it, to the last bit: every
    kernel adds its row losses up after its parallel loop.

    Examples
    --------
    >>> import fastloss
    >>> before = fastloss.get_num_threads()
    >>> fastloss.set_num_threads(1)
    >>> fastloss.get_num_threads()
    1
    >>> fastloss.set_num_threads(before)
    """
    _set(_checked(n, "n"))


def get_num_threads() -> int:
    """The number of threads fastloss's parallel kernels use in the calling thread:
    the process setting (:func:`set_num_threads`, ``FASTLOSS_NUM_THREADS``), or, until
    there is one, Numba's setting in this thread (OpenMP's when numba is not in use).

    Examples
    --------
    >>> import fastloss
    >>> with fastloss.num_threads(1):
    ...     fastloss.get_num_threads()
    1
    """
    if _count is not None:
        return _count
    if numba is not None:
        return numba.get_num_threads()
    for module in _cython_modules:
        return module.get_num_threads()
    return max_threads()


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """``with fastloss.num_threads(n):`` -- :func:`set_num_threads` for the block, for the
    whole process (not only the calling thread); the previous setting is restored on
    exit, also on an exception.

    Examples
    --------
    >>> import fastloss
    >>> with fastloss.num_threads(1):
    ...     fastloss.get_num_threads()
    1
    """
    previous = _count
    set_num_threads(n)
    try:
        yield
    finally:
        _set(previous)


#: How a parallel kernel is entered: ``_UNCHECKED`` until the first call has looked at
#: Numba's threading layer, then None (the layer is thread-safe) or a lock that
#: serialises the calls of concurrent Python threads (it is not).
_UNCHECKED = object()
_layer_guard = _UNCHECKED
#: The threading layers under which several Python threads may launch parallel regions at once.
THREAD_SAFE_LAYERS = ("tbb", "omp")


def parallel_kernel(dispatcher):
    """A parallel Numba kernel as fastloss calls it (from Python only): the process
    setting is handed to Numba in the calling thread first, when it is not what was last
    handed there; under a threading layer that is not thread-safe, the call waits for
    any other thread's (see :func:`_guarded`). The dispatcher itself is the result's
    ``__wrapped__``."""
    def kernel(*args):
        if _count != _handed.n:
            _hand_to_numba()
        if _layer_guard is None:
            return dispatcher(*args)
        return _guarded(dispatcher, args)

    return functools.update_wrapper(kernel, dispatcher, updated=())


def _guarded(dispatcher, args):
    """A kernel call when the threading layer is unchecked or not thread-safe.

    fastloss leaves the choice of Numba's threading layer to Numba (``NUMBA_THREADING_LAYER``,
    else TBB, OpenMP, then the workqueue). The workqueue layer aborts the process when two
    Python threads launch parallel regions at once, so under it the calls of concurrent
    threads take turns through a lock (each call still runs on all its threads), with one
    RuntimeWarning the first time a call has to wait.
    """
    global _layer_guard
    if _layer_guard is _UNCHECKED:
        with _check_lock:
            if _layer_guard is _UNCHECKED:
                from numba.np.ufunc import parallel

                parallel._launch_threads()  # Numba picks its layer here (once per process)
                _layer_guard = None if numba.threading_layer() in THREAD_SAFE_LAYERS else threading.Lock()
        if _layer_guard is None:
            return dispatcher(*args)
    if not _layer_guard.acquire(blocking=False):
        _warn_waiting()
        _layer_guard.acquire()
    try:
        return dispatcher(*args)
    finally:
        _layer_guard.release()


_check_lock = threading.Lock()


@functools.cache
def _warn_waiting():
    import warnings

    warnings.warn(f"Numba's threading layer is {numba.threading_layer()!r}, which cannot run parallel regions "
                  f"of several Python threads at once: fastloss's calls from concurrent threads take turns. "
                  f"Install tbb (pip install tbb) or an OpenMP runtime to run them side by side.", RuntimeWarning,
                  stacklevel=4)


def _hand_to_numba():
    """``numba.set_num_threads`` in this thread to the process setting; without a setting
    (it was removed), back to the thread's own count from before fastloss first changed
    it. A thread is left as it is until there is a setting."""
    if _handed.n is None:
        _handed.original = numba.get_num_threads()
    numba.set_num_threads(_handed.original if _count is None else _count)
    _handed.n = _count


def attach_cython(module):
    """Give a newly loaded Cython extension module the process setting, and keep it in step."""
    module.set_num_threads(_count or 0)
    _cython_modules.append(module)


if os.environ.get("FASTLOSS_NUM_THREADS", "").strip():
    try:
        _from_env = int(os.environ["FASTLOSS_NUM_THREADS"])
    except ValueError:
        raise ValueError(f"FASTLOSS_NUM_THREADS={os.environ['FASTLOSS_NUM_THREADS']!r}: expected an integer") from None
    _count = _checked(_from_env, "FASTLOSS_NUM_THREADS")
