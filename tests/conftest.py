import os
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


# Added to every test's seed: run the suite with another value to draw other random data.
SEED_OFFSET = int(os.environ.get("FASTLOSS_TEST_SEED", "0"))


@pytest.fixture
def rng(request):
    """A fresh generator per test, seeded from a stable hash of the test's id (str hash is
    salted per process) plus FASTLOSS_TEST_SEED, so a failure reproduces."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()) + SEED_OFFSET)


TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def assert_close(actual, expected, dtype, scale=1.0):
    """Compare with the tolerance of ``dtype``; ``scale`` loosens it for long sums."""
    tol = TOL[np.dtype(dtype).type]
    np.testing.assert_allclose(np.asarray(actual, np.float64), np.asarray(expected, np.float64),
                               rtol=tol["rtol"] * scale, atol=tol["atol"] * scale)


def torch_value_and_grad(fn, inputs, diff=(0,), grad_output=None, **kwargs):
    """The oracle: ``fn`` (a torch function) on ``inputs`` and torch autograd's gradient
    with respect to the inputs at the positions ``diff``, times ``grad_output``."""
    tensors = [torch.tensor(np.asarray(a)) if a is not None else None for a in inputs]
    for i in diff:
        tensors[i].requires_grad_(True)
    value = fn(*tensors, **kwargs)
    if grad_output is None:
        grad_output = np.ones(value.shape)
    value.backward(torch.tensor(np.asarray(grad_output), dtype=value.dtype).expand(value.shape))
    grads = [tensors[i].grad.numpy() for i in diff]
    return value.detach().numpy(), grads[0] if len(diff) == 1 else tuple(grads)


def grad_output_for(rng, reduction, shape):
    """An incoming gradient: random of the loss's ``shape`` for "none", else a scalar."""
    return rng.standard_normal(shape) if reduction == "none" else 0.7


def check_against_torch(fl_fn, torch_fn, inputs, dtype, diff=(0,), grad_output=None, fl_kwargs=None,
                        torch_kwargs=None, scale=1.0):
    """fastloss vs the torch oracle on the same ``inputs``: the value (with and without
    ``grad=True``), its dtype and shape, and the gradients of the inputs at ``diff``
    times ``grad_output``; ``torch_kwargs`` default to ``fl_kwargs`` (arrays become
    tensors). Returns fastloss's ``(value, grad)``."""
    fl_kwargs = fl_kwargs or {}
    torch_kwargs = fl_kwargs if torch_kwargs is None else torch_kwargs
    torch_kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in torch_kwargs.items()}
    expected, expected_grad = torch_value_and_grad(torch_fn, inputs, diff=diff, grad_output=grad_output,
                                                   **torch_kwargs)
    value = fl_fn(*inputs, **fl_kwargs)
    value2, grad = fl_fn(*inputs, **fl_kwargs, grad=True, grad_output=grad_output)
    np.testing.assert_array_equal(value, value2)
    assert np.asarray(value).dtype == dtype and np.shape(value) == expected.shape
    assert_close(value, expected, dtype, scale)
    grads = grad if len(diff) > 1 else (grad,)
    expected_grads = expected_grad if len(diff) > 1 else (expected_grad,)
    assert len(grads) == len(diff)
    for g, e, i in zip(grads, expected_grads, diff):
        assert g.dtype == dtype and g.shape == np.shape(inputs[i])
        assert_close(g, e, dtype, scale)
    return value, grad


# The GPU kernels' tests run in a process of their own, under the simulator (tests/test_cuda.py).
collect_ignore = ["cuda"]
