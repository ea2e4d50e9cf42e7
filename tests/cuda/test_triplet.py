"""The triplet mining GPU kernels (``fastloss.triplet.cuda.batch_triplet_loss``) against
the CPU function.

Where the expected numbers come from: ``fastloss.batch_triplet_loss`` on the same host
arrays (the CPU kernels, themselves tested against pytorch-metric-learning, TensorFlow
Addons' semi-hard loss and torch compositions in ``tests/test_triplet.py``); errors: the
exception the CPU function raises on the same arguments. Tiny batches: the simulator
runs every CUDA thread as a Python thread.
"""
import numpy as np
import pytest
from conftest import host

import fastloss as fl
from fastloss.triplet import cuda as triplet_cuda

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-13)}
# class 3 is a singleton: its anchor has no positive and is left out
LABELS = np.array([0, 0, 1, 1, 2, 0, 3, 2])


def _check(cuda, x, labels, dtype, **options):
    """The device call (embeddings on the device) against fastloss.batch_triplet_loss on the host."""
    expected = fl.batch_triplet_loss(x, labels, **options)
    got = triplet_cuda.batch_triplet_loss(cuda.to_device(x), labels, **options)
    if options.get("grad"):
        (got, got_grad), (expected, expected_grad) = got, expected
        assert got_grad.shape == x.shape and np.dtype(got_grad.dtype) == dtype
        np.testing.assert_allclose(host(got_grad), expected_grad, **TOL[dtype])
    assert got.shape == () and np.dtype(got.dtype) == dtype
    np.testing.assert_allclose(host(got), expected, **TOL[dtype])


@pytest.mark.parametrize("dtype, strategy, metric, soft_margin, reduction", [
    (np.float64, "batch_hard", "euclidean", False, "mean"),
    (np.float32, "batch_hard", "cosine", True, "sum"),
    (np.float64, "batch_all", "squared_euclidean", False, "mean_nonzero"),
    (np.float32, "batch_all", "euclidean", True, "mean"),
    (np.float64, "semi_hard", "cosine", False, "mean"),
    (np.float32, "semi_hard", "squared_euclidean", True, "mean_nonzero"),
])
def test_loss_and_gradient_match_the_cpu(rng, cuda, dtype, strategy, metric, soft_margin, reduction):
    x = rng.standard_normal((LABELS.size, 3)).astype(dtype)
    _check(cuda, x, LABELS, dtype, strategy=strategy, metric=metric, soft_margin=soft_margin, reduction=reduction,
           margin=1.0, grad=True, grad_output=0.7)


@pytest.mark.parametrize("dtype, strategy, metric", [(np.float32, "batch_all", "euclidean"),
                                                     (np.float64, "semi_hard", "cosine")])
def test_batches_over_the_tiles_and_the_blocks(rng, cuda, dtype, strategy, metric):
    """36 embeddings of 37 dimensions: distance tiles over two tiles a side and, in each, cells
    past the batch; a gradient row whose partners are listed a block's width of j at a
    time, twice (36 > 32 threads under the simulator), and a dimension over two blocks'
    widths (37 > 32); batch_all's partners are every other row."""
    labels = rng.integers(0, 4, 36)
    x = rng.standard_normal((36, 37)).astype(dtype)
    _check(cuda, x, labels, dtype, strategy=strategy, metric=metric, grad=True)


def test_loss_alone_with_device_labels(rng, cuda):
    x = rng.standard_normal((LABELS.size, 4))
    expected = fl.batch_triplet_loss(x, LABELS, strategy="batch_all")
    got = triplet_cuda.batch_triplet_loss(cuda.to_device(x), cuda.to_device(LABELS.astype(np.int32)),
                                          strategy="batch_all")
    np.testing.assert_allclose(host(got), expected, **TOL[np.float64])


def test_in_place_gradient_over_the_embeddings_with_a_device_grad_output(rng, cuda):
    x = rng.standard_normal((LABELS.size, 3))
    expected, expected_grad = fl.batch_triplet_loss(x, LABELS, margin=2.0, grad=True, grad_output=1.5)
    device = cuda.to_device(x)
    loss, grad = triplet_cuda.batch_triplet_loss(device, LABELS, margin=2.0, grad=True, grad_out=device,
                                                 grad_output=cuda.to_device(np.array(1.5)))  # a 0-d device array
    assert grad is device
    np.testing.assert_allclose(host(loss), expected, **TOL[np.float64])
    np.testing.assert_allclose(host(device), expected_grad, **TOL[np.float64])


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the simulator's scalar inf - inf
@pytest.mark.parametrize("strategy, reduction, value", [("batch_hard", "mean", np.inf),
                                                        ("batch_all", "mean_nonzero", np.nan),
                                                        ("semi_hard", "mean_nonzero", np.inf)])
def test_a_non_finite_embedding_reaches_only_its_terms(rng, cuda, strategy, reduction, value):
    """Row 2 holds inf or NaN: its distances come from the differences, its terms are NaN
    (left out by mean_nonzero), as on the CPU."""
    x = rng.standard_normal((LABELS.size, 3))
    x[2, 1] = value
    _check(cuda, x, LABELS, np.float64, strategy=strategy, reduction=reduction, grad=True)


def test_no_term_gives_zero(cuda):
    """One class only: no anchor has a negative; the loss and gradient are 0, never NaN."""
    _check(cuda, np.ones((3, 2)), np.zeros(3, np.int64), np.float64, grad=True)


def test_empty_batch(cuda):
    _check(cuda, np.zeros((0, 3)), np.zeros(0, np.int64), np.float64, grad=True)


@pytest.mark.parametrize("kwargs, error", [
    (dict(strategy="hardest"), ValueError),
    (dict(metric="manhattan"), ValueError),
    (dict(reduction="none"), ValueError),
    (dict(margin=-1.0), ValueError),
    (dict(grad=True, grad_output=np.ones(2)), ValueError),
    (dict(labels=np.zeros(3, np.int64)), ValueError),
    (dict(labels=np.zeros(LABELS.size)), TypeError),
])
def test_host_checks_are_the_cpus(rng, cuda, kwargs, error):
    """Shapes and options are checked before any launch, with the CPU's messages."""
    x = rng.standard_normal((LABELS.size, 3))
    call = dict(labels=LABELS)
    call.update(kwargs)
    with pytest.raises(error) as expected:
        fl.batch_triplet_loss(x, **call)
    with pytest.raises(error) as got:
        triplet_cuda.batch_triplet_loss(cuda.to_device(x), **call)
    assert str(got.value) == str(expected.value)
