"""Which kernels run a call: Numba's, compiled just in time (every loss), or the Cython
extension's, compiled ahead of time when the package is built (the losses whose entry
in the table of losses, :mod:`fastloss._core.table`, lists "cython" among its backends).

A call's backend is, first to last: its ``backend=`` argument; the environment
variable ``FASTLOSS_BACKEND`` ("numba" or "cython"), read once at import; "numba" when
numba can be imported, else "cython". With ``FASTLOSS_BACKEND=cython``, or without
numba, numba is never imported (importing it alone takes about 0.3 s), so a process
that needs only the Cython kernels starts quickly; the losses that only Numba
implements then raise ImportError saying why.

Validation, layout and reductions are shared: only the kernel call differs, at two
choke points (``classification._run_rows`` and ``_elementwise.elementwise_loss``).
"""
import functools
import importlib
import os

BACKENDS = ("numba", "cython")

from .table import LOSSES

#: The losses with Cython kernels; every other loss runs on Numba only.
CYTHON_LOSSES = LOSSES.on_backend("cython")


def _select():
    """``(numba module or None, default backend, why numba is not in use or None)``."""
    requested = os.environ.get("FASTLOSS_BACKEND", "").strip().lower()
    if requested not in ("",) + BACKENDS:
        raise ValueError(f"FASTLOSS_BACKEND={requested!r}: expected 'numba' or 'cython' (or unset)")
    if requested == "cython":
        return None, "cython", "FASTLOSS_BACKEND=cython is set, so numba is not imported"
    try:
        import numba
    except ImportError as error:
        if requested == "numba":
            raise ImportError(f"FASTLOSS_BACKEND=numba but numba cannot be imported: {error}") from error
        return None, "cython", f"numba cannot be imported ({error})"
    return numba, "numba", None


numba, DEFAULT, NUMBA_OFF_REASON = _select()


def resolve(backend):
    """The backend that runs a call given ``backend=`` (None: the default)."""
    if backend is None:
        return DEFAULT
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))} or None; got {backend!r}")
    if backend == "numba" and numba is None:
        raise ImportError(f"backend='numba' is not available: {NUMBA_OFF_REASON}")
    return backend


@functools.cache  # a call per kernel call: importlib's lookup alone costs 0.4 us
def cython_module(name):
    """The compiled module ``fastloss._cython.<name>``; ImportError if the extension was not built."""
    try:
        module = importlib.import_module(f"fastloss._cython.{name}")
    except ImportError as error:
        raise ImportError(
            f"the Cython backend is not built ({error}); install fastloss from its source with a C compiler "
            f"(pip install .), or use backend='numba'") from error
    from . import threads  # imports this module: not at the top

    threads.attach_cython(module)  # its parallel loops follow fastloss.set_num_threads
    return module


def cython_built():
    """Whether the Cython extension modules were built and import."""
    try:
        for name in ("classification", "elementwise"):
            cython_module(name)
    except ImportError:
        return False
    return True


def is_cython(backend):
    """True when the call with ``backend=`` runs on the Cython kernels."""
    return DEFAULT == "cython" if backend is None else resolve(backend) == "cython"


def require_numba(loss, backend):
    """For a loss without Cython kernels (``loss``: its name, or a public function that
    runs one): ValueError if ``backend="cython"`` was asked for, ImportError if numba is
    not in use (then nothing can run the loss)."""
    if resolve(backend) != "cython" or loss in CYTHON_LOSSES:
        return
    covered = ", ".join(CYTHON_LOSSES)
    if backend == "cython":
        raise ValueError(f"{loss} has no Cython kernel: backend='cython' covers {covered}; "
                         f"use backend='numba' (or None) for {loss}")
    raise ImportError(f"{loss} needs numba, which is not in use: {NUMBA_OFF_REASON}. Without numba fastloss "
                      f"runs the losses of its Cython backend only: {covered}")
