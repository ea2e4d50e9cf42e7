"""Arrays in, arrays out: every loss called with torch CPU tensors, array_api_strict arrays
and (when installed) JAX CPU arrays.

Expected numbers come from the NumPy API on the same values: each loss's table example
(``entry.example(rng)``, floats cast to float32 or float64), called once with NumPy arrays
and once with the library's arrays; value and every gradient must be the same bits
(``assert_array_equal``; the NumPy API is tested against torch in the family test files),
of the library's array type and of the NumPy result's dtype. No-copy is observed through a
spy in place of the NumPy function: the arrays it is given share memory with the caller's
tensors, and the tensors it returns share memory with the arrays it returned.
"""
import functools
import subprocess
import sys

import numpy as np
import pytest
import torch

import fastloss as fl
from fastloss._core.interop import interop
from fastloss._core.layout import NUMPY_2_1
from fastloss._core.table import LOSSES

xs = pytest.importorskip("array_api_strict")
try:
    import jax
    import jax.numpy as jnp
except ImportError:  # JAX is optional (not in the test extra: too large)
    jax = None

LIBRARIES = ["torch", "array_api_strict"] + (["jax"] if jax is not None else [])
NAMES = LOSSES.names()
DTYPES = [np.float32, np.float64]


def _to(library, array):
    """``array`` (NumPy) as an array of ``library`` with its own memory and the same values."""
    if library == "torch":
        return torch.from_numpy(array.copy())
    if library == "array_api_strict":
        return xs.asarray(array, copy=True)
    return jnp.array(array)


def _is_of(library, value):
    if library == "torch":
        return isinstance(value, torch.Tensor) and value.device.type == "cpu"
    if library == "array_api_strict":
        return type(value) is type(xs.asarray(0.0))
    return isinstance(value, jax.Array)


def _numpy(library, value):
    """The library's array as NumPy (a view where it allows)."""
    return value.numpy() if library == "torch" else np.from_dlpack(value)


def _example(name, dtype, library="torch"):
    """The table's example call of ``name``, floats in ``dtype`` (integer arrays as they are)."""
    args, options = LOSSES[name].call(np.random.default_rng(7), dtype)
    if library == "jax" and not jax.config.jax_enable_x64:
        args = [a.astype(np.int32) if a.dtype.kind in "iu" else a for a in args]
    return args, options


def _grads(result, n):
    return list(result) if n > 1 else [result]


def _skip_jax_float64(library, dtype):
    if library == "jax" and dtype == np.float64 and not jax.config.jax_enable_x64:
        pytest.skip("JAX without jax_enable_x64 has no float64 arrays")


def test_wrapped_functions_keep_signature_name_doc_and_criteria():
    import inspect

    for entry in LOSSES:
        function = getattr(fl, entry.name)
        assert function is entry.function and function.__wrapped__ is not function
        assert function.__name__ == entry.name and function.__doc__ == function.__wrapped__.__doc__
        assert inspect.signature(function) == inspect.signature(function.__wrapped__)
        assert getattr(fl, entry.criterion).function is function


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", NAMES)
def test_value_and_gradients_match_numpy(name, library, dtype):
    _skip_jax_float64(library, dtype)
    entry = LOSSES[name]
    args, options = _example(name, dtype, library)
    n_grads = len(entry.differentiable)
    for reduction in entry.reductions:
        expected_loss, expected_grad = entry.function(*args, **options, reduction=reduction, grad=True)
        loss, grad = entry.function(*[_to(library, a) for a in args], **options, reduction=reduction, grad=True)
        plain = entry.function(*[_to(library, a) for a in args], **options, reduction=reduction)
        for got, expected in [(loss, expected_loss), (plain, expected_loss),
                              *zip(_grads(grad, n_grads), _grads(expected_grad, n_grads))]:
            assert _is_of(library, got), (reduction, type(got))
            got = _numpy(library, got)
            assert got.dtype == np.asarray(expected).dtype == dtype
            np.testing.assert_array_equal(got, expected)
        if reduction != "none":
            assert loss.ndim == 0


# The functions outside the table of losses, each with a call on NumPy arrays.
HELPERS = {
    "pairwise_distances": lambda r: ([r.standard_normal((6, 3))], {"metric": "cosine"}),
    "mine_triplets": lambda r: ([r.standard_normal((6, 3)), np.array([0, 0, 1, 1, 2, 2])], {"margin": 0.5}),
    "ctc_forced_align": lambda r: ([np.log(r.dirichlet(np.ones(4), (2, 5))), np.array([[1, 2], [3, 3]]),
                                    np.array([5, 4]), np.array([2, 2])], {}),
}


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("name", HELPERS)
def test_helpers_take_the_library_arrays(name, library):
    """Their results are the NumPy call's, as arrays of the caller's library (integer
    index arrays included); JAX without x64 gets its arrays in float32 and int32."""
    args, options = HELPERS[name](np.random.default_rng(3))
    if library == "jax" and not jax.config.jax_enable_x64:
        args = [a.astype(np.int32 if a.dtype.kind in "iu" else np.float32) for a in args]
    function = getattr(fl, name)
    expected = function(*args, **options)
    got = function(*[_to(library, a) for a in args], **options)
    expected, got = (expected, got) if isinstance(expected, tuple) else ((expected,), (got,))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert _is_of(library, g), type(g)
        np.testing.assert_array_equal(_numpy(library, g), e)


@pytest.mark.parametrize("library", ["torch", "array_api_strict"])
@pytest.mark.parametrize("name", NAMES)
def test_grad_out_of_the_library_is_written_in_place(name, library):
    entry = LOSSES[name]
    args, options = _example(name, np.float32)
    expected_loss, expected_grad = entry.function(*args, **options, grad=True)
    first = _grads(expected_grad, len(entry.differentiable))[0]
    out = _to(library, np.zeros_like(first))
    if library == "array_api_strict" and not NUMPY_2_1:  # DLPack gives NumPy read-only views before 2.1
        with pytest.raises(TypeError, match=r"read-only through DLPack \(as every array is before NumPy 2.1"):
            entry.function(*[_to(library, a) for a in args], **options, grad=True, grad_out=out)
        return
    loss, grad = entry.function(*[_to(library, a) for a in args], **options, grad=True, grad_out=out)
    assert _grads(grad, len(entry.differentiable))[0] is out
    np.testing.assert_array_equal(_numpy(library, out), first)
    np.testing.assert_array_equal(_numpy(library, loss), expected_loss)


def test_grad_out_is_the_input_tensor():
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    t = np.array([0, 3, 1, 2, 2])
    expected = fl.cross_entropy(x, t, grad=True)
    tx = torch.from_numpy(x.copy())
    loss, grad = fl.cross_entropy(tx, torch.from_numpy(t), grad=True, grad_out=tx)
    assert grad is tx
    np.testing.assert_array_equal(tx.numpy(), expected[1])
    np.testing.assert_array_equal(loss.numpy(), expected[0])


def _spy(entry):
    """``entry``'s function behind the interop wrapper, recording what the NumPy function
    is given and what it returns."""
    raw = entry.function.__wrapped__
    seen = {}

    @functools.wraps(raw)
    def spy(*args, **kwargs):
        seen["args"] = args
        seen["result"] = raw(*args, **kwargs)
        return seen["result"]

    return interop(spy), seen


@pytest.mark.parametrize("name", NAMES)
def test_torch_arrays_are_not_copied(name):
    entry = LOSSES[name]
    args, options = _example(name, np.float64)
    tensors = [_to("torch", a) for a in args]
    function, seen = _spy(entry)
    reduction = "none" if "none" in entry.reductions else entry.reductions[0]
    loss, grad = function(*tensors, **options, reduction=reduction, grad=True)
    for tensor, given in zip(tensors, seen["args"]):
        assert type(given) is np.ndarray and np.shares_memory(tensor.numpy(), given)
    n = len(entry.differentiable)
    returned = [seen["result"][0]] + _grads(seen["result"][1], n)
    for tensor, array in zip([loss] + _grads(grad, n), returned):
        assert np.shares_memory(tensor.numpy(), np.asarray(array)) or np.ndim(array) == 0


@pytest.mark.parametrize("name", ["cross_entropy", "triplet_margin_loss", "ctc_loss"])
def test_array_api_arrays_are_not_copied(name):
    entry = LOSSES[name]
    args, options = _example(name, np.float64)
    arrays = [_to("array_api_strict", a) for a in args]
    function, seen = _spy(entry)
    loss, _ = function(*arrays, **options, reduction="none", grad=True)
    for array, given in zip(arrays, seen["args"]):
        assert np.shares_memory(np.from_dlpack(array), given)
    assert np.shares_memory(np.from_dlpack(loss), seen["result"][0])


def test_keywords_criteria_and_bfloat16():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    value = fl.mse_loss(input=tx, target=ty)
    assert isinstance(value, torch.Tensor) and value.item() == fl.mse_loss(x, y)
    crit = fl.MSELoss(reduction="none")
    assert isinstance(crit(tx, ty), torch.Tensor)
    _, grad = crit.value_and_grad(tx, ty)
    np.testing.assert_array_equal(grad.numpy(), fl.mse_loss(x, y, reduction="none", grad=True)[1])
    # bfloat16 (no NumPy dtype) is computed in float32, as float16 is
    half = fl.mse_loss(tx.bfloat16(), ty.bfloat16(), grad=True)
    expected = fl.mse_loss(tx.bfloat16().float().numpy(), ty.bfloat16().float().numpy(), grad=True)
    assert half[0].dtype == half[1].dtype == torch.float32
    np.testing.assert_array_equal(half[1].numpy(), expected[1])


def test_tensors_requiring_grad_are_read_without_autograd():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    loss, grad = fl.cross_entropy(x, torch.tensor([0, 1, 2, 1]), grad=True)
    assert not loss.requires_grad and x.grad is None
    np.testing.assert_array_equal(grad.numpy(), fl.cross_entropy(x.detach().numpy(), np.array([0, 1, 2, 1]),
                                                                 grad=True)[1])


def test_lists_and_numpy_keep_numpy_results():
    loss = fl.cross_entropy([[1.0, 2.0], [0.5, -1.0]], [0, 1])
    assert type(loss) is np.float64
    loss, grad = fl.mse_loss([1.0, 2.0], np.array([0.0, 1.0]), reduction="none", grad=True)
    assert type(loss) is np.ndarray and type(grad) is np.ndarray
    # the first data argument decides: a NumPy input with a tensor target gives NumPy results
    assert type(fl.mse_loss(np.ones(3), torch.zeros(3))) is np.float64


def test_import_and_numpy_calls_do_not_import_array_api_compat():
    code = ("import sys, numpy as np, fastloss; fastloss.mse_loss(np.ones(3), np.zeros(3)); "
            "fastloss.mse_loss([1.0], [0.0]); assert 'array_api_compat' not in sys.modules; "
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- GPU arrays

class FakeGPUArray:
    """What a CuPy array or numba device array shows: the CUDA array interface and a
    DLPack device of type 2 (kDLCUDA)."""

    shape, dtype = (4, 3), np.dtype(np.float32)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": "<f4", "data": (0, False), "version": 3}

    def __dlpack__(self, **kwargs):
        raise BufferError("device memory")

    def __dlpack_device__(self):
        return (2, 0)


class FakeDeviceArray:
    """An Array API array on a DLPack device that is not the CPU, without the CUDA interface."""

    def __array_namespace__(self, api_version=None):
        return xs

    def __dlpack__(self, **kwargs):
        raise BufferError("device memory")

    def __dlpack_device__(self):
        return (10, 0)  # kDLROCM


def test_a_cuda_array_without_a_cuda_implementation_says_what_to_install(monkeypatch):
    from fastloss._core import cuda

    def load():
        raise ImportError("fastloss's GPU kernels need a CUDA GPU and one of numba-cuda-mlir (pip install "
                          "'fastloss[cuda]') or numba-cuda (pip install 'fastloss[cuda12]')")

    monkeypatch.setattr(cuda, "load", load)
    with pytest.raises(ImportError, match=r"fastloss\[cuda\]"):
        fl.cross_entropy(FakeGPUArray(), np.array([0, 1, 2, 0]))


@pytest.mark.parametrize("make", [FakeDeviceArray,
                                  lambda: torch.empty(4, 3, device="meta"),
                                  lambda: xs.asarray(np.zeros((4, 3)), device=xs.Device("device1"))],
                         ids=["dlpack_device", "torch_meta", "array_api_strict_device1"])
def test_gpu_arrays_raise(make):
    with pytest.raises(TypeError, match=r"^input .*GPU kernels take CUDA device arrays .*; otherwise move the array "
                                        r"to the CPU"):
        fl.cross_entropy(make(), np.array([0, 1, 2, 0]))


def test_gpu_array_in_a_later_argument_raises_naming_it():
    with pytest.raises(TypeError, match=r"^target .*GPU kernels take CUDA device arrays"):
        fl.cross_entropy(torch.zeros(4, 3), FakeGPUArray())
    with pytest.raises(TypeError, match=r"^target is a torch tensor on device 'meta'"):
        fl.mse_loss(torch.zeros(4, 3), torch.empty(4, 3, device="meta"))
    with pytest.raises(TypeError, match=r"^grad_out is a torch tensor on device 'meta'"):
        fl.mse_loss(torch.zeros(4, 3), torch.zeros(4, 3), grad=True, grad_out=torch.empty(4, 3, device="meta"))


@pytest.mark.skipif(jax is None, reason="JAX is not installed")
def test_jax_grad_out_is_a_type_error_naming_it():
    x = jnp.zeros((4, 3), jnp.float32)
    with pytest.raises(TypeError, match=r"^grad_out is a JAX array, which is immutable"):
        fl.cross_entropy(x, jnp.array([0, 1, 2, 0]), grad=True, grad_out=jnp.zeros((4, 3), jnp.float32))
