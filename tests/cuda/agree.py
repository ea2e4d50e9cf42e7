"""How a GPU result is compared with its oracle, the CPU public function on the same host arrays."""
import numpy as np
from conftest import host

#: Relative tolerance per dtype: float64 to 1e-10, float32 to its rounding over a short row.
RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-10}


def assert_agree(result, expected, dtype):
    """``result`` (device arrays, nested in tuples as the CPU function nests them) agrees with
    ``expected`` (the CPU function's) in shape, dtype and value, NaN where it has NaN."""
    if isinstance(expected, tuple):
        assert isinstance(result, tuple) and len(result) == len(expected)
        for r, e in zip(result, expected):
            assert_agree(r, e, dtype)
        return
    got, want = host(result), np.asarray(expected)
    assert got.shape == want.shape and got.dtype == np.dtype(dtype), (got.shape, got.dtype, want.shape)
    rtol = RTOL[np.dtype(dtype)]
    scale = np.abs(want[np.isfinite(want)]).max(initial=0.0)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def assert_same_signature(gpu_function, cpu_function):
    """The GPU entry point takes the public function's parameters: names, kinds, defaults."""
    import inspect

    def parameters(f):
        return [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]

    assert parameters(gpu_function) == parameters(cpu_function)
