"""The shared GPU machinery: block reductions, the validity flag, device arrays in and out."""
import numpy as np
import pytest
from conftest import host

from fastloss._core import cuda as core
from fastloss._core.cuda_blocks import block_max, block_sum, cuda

THREADS = 32


@cuda.jit
def _reduce(values, out):
    buffer = cuda.shared.array(THREADS, np.float64)
    i = cuda.threadIdx.x
    total = block_sum(buffer, values[i])
    top = block_max(buffer, values[i])
    if i == 0:
        out[0] = total
        out[1] = top


@cuda.jit
def _flag_rows(bad, flag):
    i = cuda.grid(1)
    if i < bad.size and bad[i]:
        cuda.atomic.min(flag, 0, i)


def test_block_reductions_match_numpy(rng):
    values = rng.standard_normal(THREADS)
    out = cuda.device_array(2)
    _reduce[1, THREADS](cuda.to_device(values), out)
    np.testing.assert_allclose(host(out), [values.sum(), values.max()], rtol=1e-12)  # NumPy is the oracle


def test_block_max_propagates_nan(rng):
    values = rng.standard_normal(THREADS)
    values[7] = np.nan
    out = cuda.device_array(2)
    _reduce[1, THREADS](cuda.to_device(values), out)
    assert np.isnan(host(out)).all()


@pytest.mark.parametrize("bad_rows", [[], [5], [3, 9, 30]])
def test_the_flag_keeps_the_first_bad_row(bad_rows):
    bad = np.zeros(40, np.bool_)
    bad[bad_rows] = True
    flag = core.new_flag(bad.size)
    _flag_rows[2, THREADS](cuda.to_device(bad), flag)
    assert core.first_flagged(flag, bad.size) == (min(bad_rows) if bad_rows else None)


def test_checks_can_be_switched_off():
    flag = core.new_flag(4)
    _flag_rows[1, THREADS](cuda.to_device(np.array([False, True, False, False])), flag)
    previous = core.set_device_checks(False)
    try:
        assert core.first_flagged(flag, 4) is None  # no read of the device
    finally:
        core.set_device_checks(previous)
    assert core.first_flagged(flag, 4) == 1


def test_device_arrays_are_recognised_and_kept():
    device = cuda.to_device(np.arange(3.0))
    assert core.is_device_array(device) and not core.is_device_array(np.arange(3.0))
    assert core.to_device(device) is device
    np.testing.assert_array_equal(host(core.to_device([1, 2], np.float32)), np.array([1, 2], np.float32))
    assert core.to_device(np.float64(3.0)).shape == ()  # a host scalar keeps its shape
    with pytest.raises(TypeError, match="float32"):
        core.to_device(device, np.float32)
    assert core.like(device, device) is device
