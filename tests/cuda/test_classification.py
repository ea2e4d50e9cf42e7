"""The GPU row losses of fastloss.classification (cross_entropy, nll_loss, focal_loss).

Every expected number comes from the CPU public function (``fastloss.<loss>``, itself
tested against torch) called on the same host arrays. Shapes stay tiny: the simulator
runs each of a block's 32 threads as a Python thread (about 0.2 s a kernel launch).
"""
import numpy as np
import pytest
from conftest import host

import fastloss
from fastloss._core import cuda as core

gpu = pytest.importorskip("fastloss.classification.cuda")

DTYPES = [np.float64, np.float32]
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 2e-5}


def close(actual, expected, dtype):
    actual = host(actual)
    assert actual.shape == np.shape(expected) and actual.dtype == dtype
    tolerance = RTOL[np.dtype(dtype)]
    np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance * 1e-2)


def check(name, cuda, x, *args, device_grad_output=False, **options):
    """Runs loss ``name`` on the device (``x`` and the arrays in ``args`` copied there) and
    on the CPU, and compares the value and, with ``grad=True``, the gradient."""
    expected = getattr(fastloss, name)(x, *args, **options)
    device_args = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    if device_grad_output:
        options = dict(options, grad_output=cuda.to_device(np.asarray(options["grad_output"], x.dtype)))
    actual = getattr(gpu, name)(cuda.to_device(x), *device_args, **options)
    if options.get("grad"):
        close(actual[0], expected[0], x.dtype)
        close(actual[1], expected[1], x.dtype)
    else:
        close(actual, expected, x.dtype)
    return actual


def logits(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------- cross_entropy, class indices

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["plain mean", "weight ignore smoothing none", "weighted mean ignore",
                                  "smoothing weight sum", "C over the block"])
def test_cross_entropy_class_targets(rng, cuda, dtype, case):
    n_classes = 40 if case == "C over the block" else 5  # 40: two strides of 32 threads, not a multiple
    x = logits(rng, (4, n_classes), dtype)
    t = rng.integers(0, n_classes, 4)
    w = rng.uniform(0.5, 2.0, n_classes).astype(dtype)
    if case == "plain mean":
        check("cross_entropy", cuda, x, t, grad=True)
    elif case == "weight ignore smoothing none":
        t[1] = -1
        check("cross_entropy", cuda, x, t, w, ignore_index=-1, label_smoothing=0.2, reduction="none", grad=True,
              grad_output=rng.standard_normal(4))
    elif case == "weighted mean ignore":
        t[2] = -100
        check("cross_entropy", cuda, x, t, w, grad=True, grad_output=1.5)
    elif case == "smoothing weight sum":
        check("cross_entropy", cuda, x, t, w, label_smoothing=0.3, reduction="sum", grad=True, grad_output=-2.0)
    else:
        t[3] = -100
        check("cross_entropy", cuda, x, t, label_smoothing=0.1, grad=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's NumPy scalars warn where a GPU gives NaN
def test_rows_of_several_loads_a_thread(rng, cuda, dtype):
    """Rows longer than a block's threads times the logits a thread loads at once (300
    classes: 32 threads read 8 float32 or 4 float64 each at a time, so 2 or 3 rounds, the
    last one partial): a row whose maximum grows every round (the running sum rescaled),
    one with NaN in its last round, one with -inf and +inf in different rounds, in place
    and with soft targets."""
    n_classes = 300
    x = logits(rng, (5, n_classes), dtype)
    x[0] = np.linspace(-3, 30, n_classes)
    x[1, n_classes - 3] = np.nan
    x[2, 1] = -np.inf
    x[3, 2] = -np.inf
    x[3, 280] = np.inf
    t = np.array([299, 4, 1, 7, -100])
    w = rng.uniform(0.5, 2.0, n_classes).astype(dtype)
    check("cross_entropy", cuda, x, t, w, label_smoothing=0.1, reduction="none", grad=True)
    check("focal_loss", cuda, x[[0, 4]], np.array([3, 250]), gamma=2.0, grad=True)
    y = rng.dirichlet(np.ones(n_classes), 5).astype(dtype)
    check("cross_entropy", cuda, x, y, label_smoothing=0.2, reduction="sum", grad=True)
    finite = x[[0, 4]]
    expected = fastloss.cross_entropy(finite, np.array([0, 299]), grad=True)
    device = cuda.to_device(finite)
    loss, g = gpu.cross_entropy(device, np.array([0, 299]), grad=True, grad_out=device)
    close(loss, expected[0], dtype)
    close(device, expected[1], dtype)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_cross_entropy_without_gradient(rng, cuda, reduction):
    x = logits(rng, (3, 6), np.float64)
    check("cross_entropy", cuda, x, np.array([5, 0, -100]), label_smoothing=0.1, reduction=reduction)


def test_cross_entropy_spatial_input(rng, cuda):
    """(N, C, d1, d2): the class axis strided by d1 * d2, read in place as (N, K, C) rows."""
    x = logits(rng, (2, 3, 2, 1), np.float64)
    t = rng.integers(0, 3, (2, 2, 1))
    t[1, 0, 0] = -100
    check("cross_entropy", cuda, x, t, rng.uniform(0.5, 2.0, 3), label_smoothing=0.1, grad=True)
    check("cross_entropy", cuda, x, t, reduction="none", grad=True, grad_output=rng.standard_normal((2, 2, 1)),
          device_grad_output=True)
    y = np.ascontiguousarray(np.moveaxis(rng.dirichlet(np.ones(3), (2, 2, 1)), -1, 1))  # along the class axis
    check("cross_entropy", cuda, x, y, reduction="sum", grad=True)


def test_cross_entropy_unbatched_and_one_class(rng, cuda):
    check("cross_entropy", cuda, logits(rng, 4, np.float32), np.array(2), grad=True)
    check("cross_entropy", cuda, logits(rng, (3, 1), np.float64), np.array([0, 0, -100]), reduction="none",
          grad=True, label_smoothing=0.5)


def test_cross_entropy_strided_input(rng, cuda):
    """A device view whose rows are not contiguous (every other column) is read in place."""
    full = cuda.to_device(logits(rng, (3, 8), np.float64))
    x = full[:, ::2]
    t = np.array([1, 3, 0])
    expected = fastloss.cross_entropy(host(full)[:, ::2], t, grad=True)
    loss, g = gpu.cross_entropy(x, t, grad=True)
    close(loss, expected[0], np.float64)
    close(g, expected[1], np.float64)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's NumPy scalars warn where a GPU gives NaN
def test_cross_entropy_non_finite_logits(rng, cuda):
    """-inf masks a class; NaN or +inf makes its row NaN, and every -inf too; an ignored row's
    gradient is NaN where its log-softmax is (the CPU's rules, themselves torch's)."""
    x = logits(rng, (6, 4), np.float64)
    x[0, 1] = -np.inf
    x[1, 2] = np.nan
    x[2, 0] = np.inf
    x[3] = -np.inf
    x[4, 3] = np.nan
    x[5, 0] = -np.inf
    t = np.array([0, 1, 2, 3, -100, 0])
    check("cross_entropy", cuda, x, t, reduction="none", grad=True, label_smoothing=0.1)


def test_all_targets_ignored(rng, cuda):
    """The mean over no target is NaN, as torch gives; the gradient is zero."""
    x = logits(rng, (3, 4), np.float32)
    loss, g = check("cross_entropy", cuda, x, np.full(3, -100), grad=True)
    assert np.isnan(host(loss)) and not host(g).any()


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_empty_batch(cuda, reduction):
    x = np.zeros((0, 3), np.float32)
    check("cross_entropy", cuda, x, np.zeros(0, np.int64), reduction=reduction, grad=True)


# ---------------------------------------------------------------- probability targets

@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_probability_targets(rng, cuda, dtype):
    x = logits(rng, (3, 5), dtype)
    y = rng.dirichlet(np.ones(5), 3).astype(dtype)
    w = rng.uniform(0.5, 2.0, 5).astype(dtype)
    check("cross_entropy", cuda, x, y, w, label_smoothing=0.2, reduction="none", grad=True,
          grad_output=rng.standard_normal(3))
    check("cross_entropy", cuda, x, y, grad=True)


# ---------------------------------------------------------------- nll_loss and focal_loss

@pytest.mark.parametrize("dtype", DTYPES)
def test_nll_loss(rng, cuda, dtype):
    x = np.log(rng.dirichlet(np.ones(5), 4)).astype(dtype)
    t = np.array([4, -100, 0, 2])
    w = rng.uniform(0.5, 2.0, 5).astype(dtype)
    check("nll_loss", cuda, x, t, w, grad=True)
    check("nll_loss", cuda, x, t, reduction="none", grad=True, grad_output=rng.standard_normal(4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_focal_loss(rng, cuda, dtype):
    x = logits(rng, (4, 5), dtype) * 3
    t = np.array([1, 0, -100, 4])
    check("focal_loss", cuda, x, t, rng.uniform(0.2, 1.0, 5).astype(dtype), gamma=2.0, reduction="none", grad=True)
    check("focal_loss", cuda, x, t, 0.25, gamma=0.5, grad=True)  # a scalar alpha; mean over kept targets


def test_focal_loss_at_certainty(cuda):
    """p_t = 1: the gradient factor's second term at its limit, 0."""
    x = np.array([[60.0, 0.0, 0.0], [0.0, 1.0, 2.0]])
    check("focal_loss", cuda, x, np.array([0, 2]), gamma=1.5, reduction="sum", grad=True)


# ---------------------------------------------------------------- gradients in place, and into grad_out

def test_gradient_in_place(rng, cuda):
    x = logits(rng, (3, 6), np.float64)
    t = np.array([0, 5, 2])
    expected = fastloss.cross_entropy(x, t, label_smoothing=0.1, grad=True)  # the CPU's, before x is overwritten
    device = cuda.to_device(x)
    loss, g = gpu.cross_entropy(device, t, label_smoothing=0.1, grad=True, grad_out=device)
    assert g is device
    close(loss, expected[0], np.float64)
    close(device, expected[1], np.float64)


def test_gradient_into_grad_out(rng, cuda):
    x = logits(rng, (2, 3, 2), np.float32)
    t = np.array([[0, 2], [1, -100]])
    out = cuda.device_array(x.shape, np.float32)
    expected = fastloss.nll_loss(x, t, reduction="sum", grad=True)
    loss, g = gpu.nll_loss(cuda.to_device(x), t, reduction="sum", grad=True, grad_out=out)
    assert g is out
    close(g, expected[1], np.float32)
    with pytest.raises(ValueError, match="grad_out has shape"):
        gpu.nll_loss(cuda.to_device(x), t, grad=True, grad_out=cuda.device_array((2, 3), np.float32))
    with pytest.raises(TypeError, match="grad_out has dtype"):
        gpu.nll_loss(cuda.to_device(x), t, grad=True, grad_out=cuda.device_array(x.shape, np.float64))
    wide = cuda.to_device(np.zeros((2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="overlaps the input without being it"):  # the CPU's check, on addresses
        gpu.nll_loss(wide[:, :, :2], t, grad=True, grad_out=wide[:, :, 1:])


def test_gradient_scalar_grad_output_on_the_device(rng, cuda):
    x = logits(rng, (3, 4), np.float64)
    check("cross_entropy", cuda, x, np.array([0, 1, 3]), rng.uniform(0.5, 2, 4), grad=True, grad_output=0.5,
          device_grad_output=True)


# ---------------------------------------------------------------- bad values and checks

def cpu_error(name, x, t):
    """The CPU path's message for the same bad targets."""
    with pytest.raises(ValueError) as error:
        getattr(fastloss, name)(x, t)
    return str(error.value)


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "focal_loss"])
def test_bad_class_index_raises_the_cpu_error(rng, cuda, name):
    x = logits(rng, (4, 3), np.float64)
    t = np.array([0, 7, -100, -2])
    message = cpu_error(name, x, t)
    with pytest.raises(ValueError) as error:
        getattr(gpu, name)(cuda.to_device(x), cuda.to_device(t), grad=True)
    assert str(error.value) == message


def test_checks_off_give_nan_rows_without_raising(rng, cuda):
    x = logits(rng, (3, 4), np.float64)
    t = np.array([0, 9, 1])
    previous = core.set_device_checks(False)
    try:
        loss, g = gpu.cross_entropy(cuda.to_device(x), t, reduction="none", grad=True)
        total = gpu.cross_entropy(cuda.to_device(x), t)
    finally:
        core.set_device_checks(previous)
    loss, g = host(loss), host(g)
    expected = fastloss.cross_entropy(x[[0, 2]], t[[0, 2]], reduction="none", grad=True)  # the good rows
    assert np.isnan(loss[1]) and np.isnan(g[1]).all() and np.isnan(host(total))
    np.testing.assert_allclose(loss[[0, 2]], expected[0], rtol=1e-10)
    np.testing.assert_allclose(g[[0, 2]], expected[1], rtol=1e-10)


def test_host_checks_as_on_the_cpu(cuda):
    """Shapes and options are checked on the host, with the CPU path's errors (no launch)."""
    x = cuda.to_device(np.zeros((2, 3)))
    cases = [
        (dict(target=np.zeros(3, np.int64)), ValueError, "target has shape"),
        (dict(target=np.zeros(2, np.int64), weight=np.ones(2)), ValueError, r"weight must have shape \(3,\)"),
        (dict(target=np.zeros(2, np.int64), reduction="avg"), ValueError, "reduction must be one of"),
        (dict(target=np.zeros(2, np.int64), label_smoothing=2.0), ValueError, "label_smoothing"),
        (dict(target=np.zeros((2, 3)), ignore_index=0), ValueError, "not supported for probability"),
        (dict(target=np.zeros(2, np.int64), grad=True, reduction="sum", grad_output=np.ones(2)), ValueError,
         "grad_output must be a scalar"),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            gpu.cross_entropy(x, **options)
    with pytest.raises(TypeError, match="floating-point"):
        gpu.nll_loss(cuda.to_device(np.zeros((2, 3), np.int64)), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="zero classes"):
        gpu.focal_loss(cuda.to_device(np.zeros((2, 0))), np.zeros(2, np.int64))


def test_ptx_signatures_cover_both_dtypes():
    kernels = {kernel for kernel, _ in gpu.PTX_SIGNATURES}
    assert kernels == {*gpu.ROW_KERNELS.values(), gpu.class_target_sums, gpu.sum_parts}
    for (dtype, _, _), row_kernel in gpu.ROW_KERNELS.items():
        (row,) = [signature for kernel, signature in gpu.PTX_SIGNATURES if kernel is row_kernel]
        assert row.startswith(f"void({dtype}[:, :, :]")
