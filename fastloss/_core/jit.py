"""The one decorator factory for every CPU kernel of fastloss.

Every Numba function of the package is made by :func:`jit`, so the compilation
options are decided in one place:

* ``cache=True``: a second process loads the machine code from the on-disk cache
  instead of compiling it again (the cache key holds the CPU name and features). In a
  source checkout the cache is ``fastloss/__pycache__``; an installed copy caches in
  Numba's user-wide directory instead (:class:`InstalledPackageCacheLocator`), and
  ``NUMBA_CACHE_DIR`` overrides both.
* ``nogil=True``: kernels release the GIL, so Python threads run them concurrently.
* ``error_model="numpy"``: division by zero gives inf/NaN as in NumPy, no exception
  branch in the hot loops.
* ``fastmath``: never the global ``True``. Its ``nnan``/``ninf`` flags would let LLVM
  assume that no NaN or inf exists, and fastloss must propagate both as torch does.
  :data:`STRICT` allows only fused multiply-add contraction. :data:`REDUCE` adds
  reassociation, which LLVM needs to vectorise a floating-point sum; it is given only
  to the small summation helpers, never to code whose evaluation order matters (the
  range reduction of :func:`fastloss._core.numerics.exp_fast`, for instance).

Parallel kernels run with fastloss's thread count, and under a threading layer that is
not thread-safe (Numba's workqueue) the calls of concurrent Python threads take turns
(:func:`fastloss._core.threads.parallel_kernel`): importing fastloss leaves Numba's
configuration, and the process's warnings filters, as they were.

When numba is not in use (:mod:`fastloss._core.backends`: ``FASTLOSS_BACKEND=cython``, or
numba cannot be imported) nothing here imports it: :func:`jit` then makes stand-ins
that raise ImportError if called, ``prange`` is ``range`` and kernels registered with
:class:`KernelRegistry` keep only their names, by which the Cython backend finds its
own versions.
"""
import functools
import hashlib
import inspect
import os
import warnings

from .backends import NUMBA_OFF_REASON, numba
from .threads import parallel_kernel

STRICT = frozenset({"contract"})
REDUCE = frozenset({"contract", "reassoc", "nsz"})

if numba is None:
    # The Cython backend alone: the kernels below are never compiled, and calling
    # one says why (the losses without Cython kernels check that first).
    prange = range

    def jit(*, parallel=False, fastmath=STRICT, inline="never"):
        """Without numba: a decorator whose kernels raise ImportError when called."""
        return _without_numba

    def _without_numba(function):
        @functools.wraps(function)
        def kernel(*args, **kwargs):
            raise ImportError(f"{function.__module__}.{function.__name__} is a Numba kernel, and numba is not in "
                              f"use: {NUMBA_OFF_REASON}")

        kernel.py_func = function
        return kernel

else:
    from numba import prange  # type: ignore[no-redef]  # noqa: F401 (the family modules take prange from here)
    from numba.core import caching
    from numba.extending import NativeValue, models, overload, register_model, unbox

    def _caching(name):
        """A class of ``numba.core.caching`` (older Numba releases spell them with a leading underscore)."""
        return getattr(caching, name, None) or getattr(caching, "_" + name)

    PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # fastloss/

    class InstalledPackageCacheLocator(_caching("UserWideCacheLocator")):  # type: ignore[misc]
        """Numba's user-wide cache (``~/.cache/numba`` on Linux) for the kernels of an
        installed fastloss.

        Numba writes its cache next to the source (``__pycache__``) when it can, and only
        falls back to the user-wide directory for read-only installs. pip removes only the
        files it installed: a cache left in ``site-packages/fastloss/__pycache__`` keeps a
        ``fastloss/`` folder without its ``__init__.py``, which Python then imports as an
        empty namespace package, hiding a later editable install. So an installed copy
        (not a source checkout) caches in the user-wide directory, where Numba keys it by
        the package's full path. This locator comes after Numba's ``NUMBA_CACHE_DIR`` one,
        so a cache directory the user chose still wins, and it declines every file outside
        the package: other Numba functions of the process are cached as before.
        """

        @classmethod
        def from_function(cls, py_func, py_file):
            if not os.path.abspath(py_file).startswith(PACKAGE_DIR + os.sep):
                return None
            return super().from_function(py_func, py_file)

    # A source checkout has the project's pyproject.toml next to the package.
    if not os.path.isfile(os.path.join(os.path.dirname(PACKAGE_DIR), "pyproject.toml")):
        locators = _caching("CacheImpl")._locator_classes
        locators.insert(locators.index(_caching("UserProvidedCacheLocator")) + 1, InstalledPackageCacheLocator)

    def _quiet_compile(dispatcher):
        """``dispatcher``, whose compilations ignore one warning.

        Inlining a kernel with conditional expressions (see KernelRegistry) trips a
        pedantic SSA check of Numba on Python 3.11 that its maintainers class as a false
        alarm for inline="always" (numba issues #7802 and #9489); the compiled code is
        unaffected (the tests compare every inlined kernel with torch). Only that message
        is ignored, and only while one of fastloss's functions compiles, not process-wide.
        """
        compile_signature = dispatcher.compile

        def compile(sig):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"variable '.*' is not in scope",
                                        category=numba.NumbaIRAssumptionWarning)
                return compile_signature(sig)

        dispatcher.compile = compile
        return dispatcher

    def jit(*, parallel=False, fastmath=STRICT, inline="never"):
        """Return ``numba.njit`` with fastloss's fixed options and the given variable ones;
        a parallel kernel runs with fastloss's thread count (the Numba dispatcher is its
        ``__wrapped__``)."""
        njit = numba.njit(
            cache=True,
            nogil=True,
            error_model="numpy",
            boundscheck=False,
            parallel=parallel,
            fastmath=set(fastmath),
            inline=inline,
        )
        if parallel:
            return lambda function: parallel_kernel(_quiet_compile(njit(function)))
        return lambda function: _quiet_compile(njit(function))


def overload_jit_options(fastmath=STRICT):
    """Options for ``numba.extending.overload`` implementations (same policy as :func:`jit`)."""
    return dict(fastmath=set(fastmath), error_model="numpy", boundscheck=False, nogil=True)


class KernelKind:
    """A registered kernel's handle, passed to a driver as its first argument.

    Numba types each handle as its own :class:`KernelKindType`, so a driver compiles
    (and caches) one specialisation per kernel, with the kernel inlined. This replaces
    ``numba.literally``, which re-resolves the literal through an exception on every
    call from Python (milliseconds), and first-class function arguments or closures,
    which Numba 0.68 cannot cache. ``name`` (the kernel function's name) is how the
    Cython backend finds its own version of the kernel.
    """

    __slots__ = ("name", "key", "_numba_type_")

    def __init__(self, registry, name, key):
        self.name = name
        self.key = key
        # The attribute by which Numba's typeof finds the type first: a call passing the
        # handle costs 1 us less than through a typeof_impl registration.
        self._numba_type_ = None if numba is None else KernelKindType(registry, key)

    def __repr__(self):
        return f"KernelKind({self.key!r})"


if numba is not None:
    class KernelKindType(numba.types.Dummy):  # type: ignore[name-defined, unused-ignore]  # defined or not, as mypy follows numba
        def __init__(self, registry, key):
            self.registry = registry
            self.kernel_key = key
            super().__init__(name=f"KernelKind({registry}:{key})")

        def __reduce__(self):  # the cache index pickles signatures
            return (KernelKindType, (self.registry, self.kernel_key))

    register_model(KernelKindType)(models.OpaqueModel)

    @unbox(KernelKindType)
    def _unbox_kernel_kind(typ, obj, c):
        return NativeValue(c.context.get_dummy_value())


def _compile_source(source, namespace):
    """The one function defined by ``source``, with ``namespace`` as its globals."""
    scope = dict(namespace)
    exec(source, scope)  # noqa: S102 -- fixed templates, parameter names from a signature
    return scope[source.split("(")[0].split()[-1]]


class KernelRegistry:
    """Scalar or row kernels, all of one signature, that one parametrised driver applies.

    ``kind = registry.register(kernel)``; inside a driver ``registry.call(kind, *args)``
    calls ``kernel(*args)``, resolved when the driver is compiled and inlined into it
    at Numba IR level (an inline="always" twin of the kernel), so that the driver's
    loop over a kernel's exp and log polynomials vectorises: LLVM's own inliner
    declines kernels of that size, and a call per element costs 5x. ``parameters``
    names the kernels' arguments (their number counts): the registry spells them out, as Numba does not
    inline through ``*args``. The key holds a hash of the kernel's source: Numba keys a
    driver's cache on the driver's file only, so an edited kernel must change the key,
    or a stale build would be loaded.
    """

    def __init__(self, name, parameters):
        self.name = name
        self.kernels = {}
        self.parameters = tuple(parameters)
        registry = self
        args = ", ".join(self.parameters)
        self.call = _compile_source(f"def call(kind, {args}):\n    raise NotImplementedError\n", {})

        if numba is None:
            return

        def typing(kind, *args):
            if not (isinstance(kind, KernelKindType) and kind.registry == registry.name):
                return None
            return registry.kernels[kind.kernel_key]

        overload(self.call, inline="always", jit_options=overload_jit_options(STRICT))(
            _compile_source(f"def typing(kind, {args}):\n    return select(kind)\n", {"select": typing}))

    def register(self, kernel):
        """A :class:`KernelKind` for ``kernel`` (a :func:`jit` function of the registry's parameters)."""
        function = kernel.py_func
        name = function.__name__
        if numba is None:
            return KernelKind(self.name, name, name)  # never compiled: no cache key needed
        if len(inspect.signature(function).parameters) != len(self.parameters):
            raise TypeError(f"{function.__name__}: the {self.name} kernels take {len(self.parameters)} arguments")
        source = inspect.getsource(function).encode()
        key = f"{function.__module__}.{name}-{hashlib.sha1(source).hexdigest()[:12]}"
        options = {k: v for k, v in kernel.targetoptions.items() if k not in ("nopython", "inline")}
        twin = numba.njit(**options, inline="always")(function)
        args = ", ".join(self.parameters)
        self.kernels[key] = _compile_source(f"def impl(kind, {args}):\n    return twin({args})\n", {"twin": twin})
        return KernelKind(self.name, name, key)
