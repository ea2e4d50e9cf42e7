"""The one seam between the losses and the code that computes them: backends as data.

A :class:`Backend` is a small record, as Liger-Kernel's backend table: its name, where
its kernels live per loss family, and whether it can run in this process. A wrapper
asks :func:`select` for the backend of its call, then takes each kernel from it by
name, ``select("cross_entropy", backend).kernels("classification").nll_rows``; the
same names in every backend. Today's backends:

* ``numba``: every loss; kernels in ``fastloss/<family>/cpu.py`` (and the elementwise
  driver in ``fastloss/_core/elementwise.py``), compiled just in time.
* ``cython``: the losses whose entry in the table of losses
  (:mod:`fastloss._core.table`) lists "cython"; kernels in the extension modules of
  ``fastloss/_cython/``, compiled when the package is built.

The GPU kernels are no ``backend=``: a call whose first data argument is a CUDA device
array runs them (:mod:`fastloss._core.cuda`), and ``backend="cuda"`` raises ValueError
saying so.

A call's backend is, first to last: its ``backend=`` argument; the environment
variable ``FASTLOSS_BACKEND`` ("numba" or "cython"), read once at import; "numba" when
numba can be imported, else "cython". A loss the default backend lacks falls back to
numba; one that an explicit ``backend=`` lacks raises ValueError. With
``FASTLOSS_BACKEND=cython``, or without numba, numba is never imported (importing it
alone takes about 0.3 s), so a process that needs only the Cython kernels starts
quickly; the losses that only Numba implements then raise ImportError saying why.
"""
import dataclasses
import functools
import importlib
import os

from .table import LOSSES

BACKENDS = ("numba", "cython")

#: The losses with Cython kernels; every other loss runs on Numba only.
CYTHON_LOSSES = LOSSES.on_backend("cython")


def _from_environment():
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


numba, DEFAULT, NUMBA_OFF_REASON = _from_environment()


def resolve(backend):
    """The backend that runs a call given ``backend=`` (None: the default)."""
    if backend is None:
        return DEFAULT
    if isinstance(backend, str) and backend == "cuda":
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))} or None; got 'cuda': device arrays "
                         f"choose the GPU (pass CuPy arrays, torch CUDA tensors or Numba device arrays), and backend= "
                         f"names the host backends only")
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))} or None; got {backend!r}")
    if backend == "numba" and numba is None:
        raise ImportError(f"backend='numba' is not available: {NUMBA_OFF_REASON}")
    return backend


@functools.cache  # once per module: it is attached to the thread setting once
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


@dataclasses.dataclass(frozen=True, eq=False)
class Backend:
    """One implementation of the kernels: ``modules`` gives the module that holds a
    family's kernels (``{family}`` is replaced), ``homes`` the exceptions by family."""

    name: str
    modules: str
    homes: dict = dataclasses.field(default_factory=dict)
    _loaded: dict = dataclasses.field(default_factory=dict, repr=False)

    def kernels(self, family):
        """The module holding ``family``'s kernels on this backend (their names are the
        same on every backend); ImportError if this backend cannot run here."""
        module = self._loaded.get(family)  # a call per kernel call: importlib's lookup alone costs 0.4 us
        if module is None:
            module = self._loaded[family] = self._load(family)
        return module

    def _load(self, family):
        if self.name == "cython":
            return cython_module(family)
        if numba is None:
            raise ImportError(f"the {family} kernels need numba, which is not in use: {NUMBA_OFF_REASON}")
        return importlib.import_module(self.homes.get(family) or self.modules.format(family=family))


NUMBA = Backend("numba", "fastloss.{family}.cpu", {"elementwise": "fastloss._core.elementwise"})
CYTHON = Backend("cython", "fastloss._cython.{family}")
BY_NAME = {"numba": NUMBA, "cython": CYTHON}


def select(loss, backend=None):
    """The :class:`Backend` that runs a call of ``loss`` (its name: a loss of the table,
    or another public function, which runs on numba only) given ``backend=``.

    ValueError for an unknown ``backend``, or one that lacks the loss's kernels; ImportError
    when nothing in this process can run the loss (numba is not in use and the loss has
    no Cython kernels)."""
    try:
        return _SELECTED[loss, backend]  # a call per loss call: one dict lookup on the common path
    except (KeyError, TypeError):  # TypeError: an unhashable backend= (an array), refused below
        pass
    if backend is not None and type(backend) is not str:
        resolve(backend)  # raises, naming the argument
    chosen = _select_for(loss, backend)
    _SELECTED[loss, backend] = chosen
    return chosen


_SELECTED: dict = {}


def _select_for(loss, backend):
    name = resolve(backend)
    covered = LOSSES[loss].backends if loss in LOSSES else ("numba",)
    if name in covered:
        return BY_NAME[name]
    if backend is not None:
        raise ValueError(f"{loss} has no {name.capitalize()} kernel: backend={name!r} covers "
                         f"{', '.join(LOSSES.on_backend(name))}; use backend='numba' (or None) for {loss}")
    if numba is None:
        raise ImportError(f"{loss} needs numba, which is not in use: {NUMBA_OFF_REASON}. Without numba fastloss "
                          f"runs the losses of its Cython backend only: {', '.join(CYTHON_LOSSES)}")
    return NUMBA
