"""Arrays in, arrays out: the losses called with torch, JAX or Array API arrays.

:meth:`fastloss._core.table.Table.export` wraps every public loss function with
:func:`interop`. A call whose first data argument is a NumPy array (the fast path: one
type check) goes straight to the function. Otherwise, when that argument is a CPU array
of torch, JAX or an Array API library (one with ``__array_namespace__``, its namespace
found by array-api-compat when installed), every argument of that library is viewed as
a NumPy array without a copy (``tensor.detach().numpy()``, ``numpy.from_dlpack``), the
function runs, and its results come back in that library: a reduced loss as a 0-d array,
arrays and every gradient through DLPack (``torch.from_numpy``, ``xp.from_dlpack``),
with no copy where the memory allows. A ``grad_out=`` of that library is written in
place (a JAX array, immutable, cannot be one). When the first data argument is a CUDA
device array (CuPy, a torch CUDA tensor, a Numba device array), the call goes to the
loss's GPU kernels instead (:func:`fastloss._core.cuda.call`); any other array on a GPU,
or on a device that is not the CPU, raises ``TypeError``. Anything else (lists, scalars, NumPy subclasses,
objects ``numpy.asarray`` takes) is passed on as before, with NumPy results.

Neither torch, JAX nor array-api-compat is imported here: torch and JAX are recognised
only when the caller has imported them, array-api-compat only when an Array API array
arrives.
"""
from __future__ import annotations

import functools
import inspect
import sys
from typing import Any, Callable

import numpy as np

from .cuda import call as call_on_gpu
from .cuda import is_device_array
from .layout import NUMPY_2_1

_DLPACK_CPU = 1  # DLDeviceType kDLCPU


def _gpu_error(name, where):
    return TypeError(
        f"{name} is {where}: fastloss's GPU kernels take CUDA device arrays (CuPy, torch CUDA tensors, Numba "
        f"device arrays) from the first data argument on; otherwise move the array to the CPU "
        f"(tensor.cpu(), jax.device_put(x, jax.devices('cpu')[0]), x.to_device(...) for an Array API array, "
        f"cupy.asnumpy(x))")


def _check_no_cuda_interface(value, name):
    """TypeError for an array that says it lives on a GPU (``__cuda_array_interface__``)."""
    if hasattr(value, "__cuda_array_interface__"):
        raise _gpu_error(name, f"a GPU array ({type(value).__name__})")


def _check_not_gpu(value, name):
    """TypeError for an array that lives on a GPU (``__cuda_array_interface__``, or a DLPack
    device that is not the CPU)."""
    _check_no_cuda_interface(value, name)
    dlpack_device = getattr(value, "__dlpack_device__", None)
    if dlpack_device is not None:
        try:
            kind = int(dlpack_device()[0])
        except Exception:  # an exporter that cannot say: let the conversion decide
            return
        if kind != _DLPACK_CPU:
            raise _gpu_error(name, f"on a device that is not the CPU (DLPack device type {kind})")


class _Torch:
    """torch tensors: viewed with ``detach().numpy()``, results by ``torch.from_numpy``."""

    name = "a torch tensor"

    def __init__(self, torch):
        self.torch = torch

    def owns(self, value):
        return isinstance(value, self.torch.Tensor)

    def _check_cpu(self, tensor, name):
        if tensor.device.type != "cpu":
            raise _gpu_error(name, f"a torch tensor on device {str(tensor.device)!r}")

    def to_numpy(self, tensor, name):
        self._check_cpu(tensor, name)
        tensor = tensor.detach().resolve_conj().resolve_neg()
        if tensor.dtype == self.torch.bfloat16:  # NumPy has no bfloat16: computed in float32, as float16 is
            tensor = tensor.float()
        return tensor.numpy()

    def writable(self, tensor, name):
        self._check_cpu(tensor, name)
        if tensor.dtype == self.torch.bfloat16:
            raise TypeError(f"{name} has dtype torch.bfloat16; the gradient is computed in float32")
        return tensor.detach().numpy()

    def from_numpy(self, array):
        if array.flags.writeable and all(s >= 0 for s in array.strides):
            return self.torch.from_numpy(array)
        return self.torch.from_numpy(array.copy())  # torch refuses negative strides, warns on read-only


class _Jax:
    """JAX arrays: viewed with ``numpy.from_dlpack``, results by ``jax.numpy.from_dlpack``."""

    name = "a JAX array"

    def __init__(self, jax):
        self.jax = jax

    def owns(self, value):
        return isinstance(value, self.jax.Array)

    def _check_cpu(self, array, name):
        platforms = {device.platform for device in array.devices()}
        if platforms != {"cpu"}:
            raise _gpu_error(name, f"a JAX array on {', '.join(sorted(platforms))}")

    def to_numpy(self, array, name):
        self._check_cpu(array, name)
        try:
            return np.from_dlpack(array)
        except (BufferError, TypeError, RuntimeError):
            return np.asarray(array)

    def writable(self, array, name):
        raise TypeError(f"{name} is a JAX array, which is immutable and cannot receive the gradient in place; "
                        f"leave {name}=None and use the returned gradient")

    def from_numpy(self, array):
        jnp = self.jax.numpy
        try:
            return jnp.from_dlpack(array)
        except (BufferError, TypeError, ValueError, RuntimeError):
            return jnp.asarray(array)


class _ArrayAPI:
    """Arrays of an Array API namespace ``xp``: viewed with ``numpy.from_dlpack``, results
    by ``xp.from_dlpack`` (``xp.asarray`` when the memory cannot be shared)."""

    def __init__(self, xp, kind):
        self.xp = xp
        self.kind = kind
        self.name = f"an array of {getattr(xp, '__name__', type(xp).__name__)}"

    def owns(self, value):
        return type(value) is self.kind

    def to_numpy(self, array, name):
        _check_not_gpu(array, name)
        device = getattr(array, "device", None)
        if device is not None and "cpu" not in str(device).lower() and self._has_cpu_device():
            raise _gpu_error(name, f"{self.name} on device {device!r}, not the CPU")
        return np.from_dlpack(array)

    def _has_cpu_device(self):
        """Whether the namespace names a CPU device (then an array on another one is not on the CPU,
        as array_api_strict's ``"device1"``), from its inspection API."""
        try:
            devices = self.xp.__array_namespace_info__().devices()
        except Exception:  # a namespace without the inspection API: trust DLPack's device
            return False
        return any("cpu" in str(device).lower() for device in devices)

    def writable(self, array, name):
        view = self.to_numpy(array, name)
        if not view.flags.writeable:
            why = "" if NUMPY_2_1 else f" (as every array is before NumPy 2.1; this is NumPy {np.__version__})"
            raise TypeError(f"{name} ({self.name}) is read-only through DLPack{why} and cannot receive the "
                            f"gradient in place; leave {name}=None and use the returned gradient")
        return view

    def from_numpy(self, array):
        if not NUMPY_2_1 and array.flags.writeable:
            # Before NumPy 2.1 an array that comes through DLPack is read-only, and a
            # read-only array cannot be exported again: the result is built by asarray.
            return self.xp.asarray(array)
        try:
            return self.xp.from_dlpack(array)
        except (BufferError, TypeError, ValueError, RuntimeError, AttributeError):
            return self.xp.asarray(array)


def _library(value, name):
    """The library adapter of ``value`` (not a NumPy array), or None to call as before."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return _Torch(torch)
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(value, getattr(jax, "Array", ())):
        return _Jax(jax)
    if hasattr(value, "__array_namespace__"):
        _check_not_gpu(value, name)
        try:
            from array_api_compat import array_namespace
        except ImportError:  # array-api-compat is optional: the array names its own namespace
            xp = value.__array_namespace__()
        else:
            xp = array_namespace(value)
        library = _ArrayAPI(xp, type(value))
        library.to_numpy(value, name)  # its device checked before any other argument is read
        return library
    return None


def _call_foreign(function, names, args, kwargs):
    """The slow path: ``function(*args, **kwargs)`` with a first data argument that is not
    exactly a ``numpy.ndarray``; ``names``: the function's positional parameters."""
    first_name = names[0]
    first = args[0] if args else kwargs.get(first_name)
    if isinstance(first, (np.ndarray, np.generic)):
        return function(*args, **kwargs)
    if is_device_array(first):  # fastloss._core.cuda imports a CUDA package only here, on the first such call
        return call_on_gpu(function, names, args, kwargs)
    _check_not_gpu_anywhere(args, kwargs, names)
    library = _library(first, first_name)
    if library is None:
        return function(*args, **kwargs)

    views: dict[int, np.ndarray] = {}  # one NumPy view per array: grad_out=input stays the input

    def convert(value, name):
        if not library.owns(value):
            return value
        if id(value) not in views:
            views[id(value)] = library.to_numpy(value, name)
        return views[id(value)]

    grad_out = kwargs.get("grad_out")
    originals: dict[int, Any] = {}  # the NumPy view of grad_out -> the caller's array
    if grad_out is not None and library.owns(grad_out):
        view = library.writable(grad_out, "grad_out")
        views[id(grad_out)] = view
        originals[id(view)] = grad_out
    new_args = [convert(value, _name(names, i)) for i, value in enumerate(args)]
    new_kwargs = {key: convert(value, key) for key, value in kwargs.items()}
    result = function(*new_args, **new_kwargs)
    return _back(result, library, originals)


def _back(result, library, originals):
    if isinstance(result, tuple):
        return tuple(_back(item, library, originals) for item in result)
    if isinstance(result, list):
        return [_back(item, library, originals) for item in result]
    if isinstance(result, np.ndarray):
        original = originals.get(id(result))
        return original if original is not None else library.from_numpy(result)
    if isinstance(result, np.generic):
        return library.from_numpy(np.asarray(result))
    return result


def _name(names, i):
    return names[i] if i < len(names) else f"argument {i + 1}"


def _check_not_gpu_anywhere(args, kwargs, names):
    for i, value in enumerate(args):
        _check_no_cuda_interface(value, _name(names, i))
    for key, value in kwargs.items():
        _check_no_cuda_interface(value, key)


def interop(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` taking the arrays of other libraries (see the module docstring), its
    first parameter being its first data argument. Signature, name and docstring are kept
    (``functools.wraps``)."""
    if getattr(function, "__fastloss_interop__", False):
        return function
    names = tuple(name for name, p in inspect.signature(function).parameters.items()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    first_name = names[0]
    ndarray = np.ndarray

    @functools.wraps(function)
    def loss(*args, **kwargs):
        if args:
            if type(args[0]) is ndarray:  # the fast path (a call without keywords skips the dict)
                return function(*args, **kwargs) if kwargs else function(*args)
        elif type(kwargs.get(first_name)) is ndarray:
            return function(**kwargs)
        return _call_foreign(function, names, args, kwargs)

    loss.__fastloss_interop__ = True  # type: ignore[attr-defined]
    return loss
