"""The dispatcher: public functions called with device arrays run on the GPU and give
device arrays back (the expected numbers: the same public function on host arrays)."""
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import host

import fastloss as fl
from fastloss._core import cuda as core

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_device_arrays_in_device_arrays_out(cuda, rng):
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    loss, grad = fl.mse_loss(cuda.to_device(x), cuda.to_device(y), grad=True)
    expected_loss, expected_grad = fl.mse_loss(x, y, grad=True)  # the CPU function
    assert core.is_device_array(loss) and loss.shape == () and loss.dtype == np.float64
    assert core.is_device_array(grad)
    np.testing.assert_allclose(host(loss), expected_loss, rtol=1e-12)
    np.testing.assert_allclose(host(grad), expected_grad, rtol=1e-12)


def test_keyword_first_argument_and_criterion(cuda, rng):
    x, y = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    loss = fl.l1_loss(input=cuda.to_device(x), target=y)
    assert host(loss).dtype == np.float32
    np.testing.assert_allclose(host(loss), fl.l1_loss(x, y), rtol=2e-6)  # the CPU function
    criterion = fl.L1Loss(reduction="sum")
    np.testing.assert_allclose(host(criterion(cuda.to_device(x), cuda.to_device(y))), fl.l1_loss(x, y, reduction="sum"),
                               rtol=2e-6)


def test_grad_out_is_the_callers_object(cuda, rng):
    x = rng.standard_normal(6)
    out = cuda.device_array(6)
    _, grad = fl.soft_margin_loss(cuda.to_device(x), np.ones(6), grad=True, grad_out=out)
    assert grad is out


def _without_kernel():
    """A loss of the table without a device entry point (None once every loss has one)."""
    from fastloss._core.table import LOSSES

    for entry in LOSSES:
        try:
            core.entry_point(entry.name, entry.function.__module__)
        except TypeError:
            return entry
    return None


def test_a_loss_without_a_gpu_kernel_is_a_type_error(cuda, rng):
    entry = _without_kernel()
    if entry is None:
        pytest.skip("every loss has a GPU kernel")
    args, options = entry.call(rng)
    with pytest.raises(TypeError, match=rf"^{entry.name} has no GPU kernel yet; move the arrays to the host"):
        entry.function(cuda.to_device(args[0]), *args[1:], **options)


def test_entry_point_lookup(cuda):
    assert core.entry_point("mse_loss", "fastloss.regression").__module__ == "fastloss.regression.cuda"
    assert core.entry_point("soft_margin_loss", "fastloss.margin").__name__ == "soft_margin_loss"
    with pytest.raises(TypeError, match=r"^pairwise_distances has no GPU kernel yet; move the arrays to the host"):
        core.entry_point("pairwise_distances", "fastloss.embedding")  # no device kernel: the host error


def test_backend_cuda_with_host_arrays_says_device_arrays_choose(rng):
    with pytest.raises(ValueError, match="device arrays choose the GPU"):
        fl.mse_loss(np.zeros(3), np.zeros(3), backend="cuda")


def test_set_device_checks_returns_the_previous_setting():
    previous = fl.set_device_checks(False)
    try:
        assert fl.set_device_checks(False) is False
    finally:
        fl.set_device_checks(previous)
    assert "set_device_checks" in fl.__all__


def test_import_fastloss_imports_no_cuda_package():
    """Without the simulator variable, as a user's process: no CUDA package is imported."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    code = ("import sys, fastloss, numpy as np; fastloss.mse_loss(np.zeros(3), np.zeros(3)); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('numba_cuda', 'numba_cuda_mlir', 'cupy', 'cuda') "
            "or m.startswith('numba.cuda') or m.startswith('fastloss.') and m.endswith(('.cuda', '.cuda_blocks', "
            "'.cuda_elementwise')) and m != 'fastloss._core.cuda']; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
