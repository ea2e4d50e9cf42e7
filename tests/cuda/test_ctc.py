"""The CTC GPU kernels (``fastloss.ctc.cuda.ctc_loss``) against the CPU function.

Where the expected numbers come from: ``fastloss.ctc_loss`` on the same host arrays (the
CPU kernel, itself tested against torch's ``F.ctc_loss`` and path enumeration in
``tests/test_ctc.py``); errors: the ValueError the CPU function raises on the same
arguments. Each GPU call is checked for its loss and gradient together (the simulator
runs every CUDA thread as a Python thread: few calls, tiny shapes).
"""
import numpy as np
import pytest
from conftest import host

import fastloss as fl
from fastloss._core import cuda as core
from fastloss.ctc import cuda as ctc_cuda

TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-13)}


def _batch(rng, dtype, n_time=5, n=3, n_classes=4, n_labels=2):
    """(T, N, C) logits and padded targets: sample 0 a repeated label at full length,
    sample 1 a short input, sample 2 an empty target (blank = 0)."""
    z = rng.standard_normal((n_time, n, n_classes)).astype(dtype)
    targets = rng.integers(1, n_classes, (n, n_labels))
    targets[0, 1] = targets[0, 0]
    return z, targets, np.array([n_time, n_time - 2, n_time])[:n], np.array([n_labels, 1, 0])[:n]


def _log_softmax(z):
    return z - np.log(np.exp(z.astype(np.float64)).sum(-1, keepdims=True)).astype(z.dtype)


def _concatenated(targets, target_lengths):
    return np.concatenate([row[:length] for row, length in zip(targets, target_lengths)])


def _check(cuda, x, args, dtype, **options):
    """The device call (x and an array grad_output on the device, the rest as given) against
    fastloss.ctc_loss on the host."""
    expected = fl.ctc_loss(x, *args, **options)
    on_device = {k: cuda.to_device(v) if k == "grad_output" and isinstance(v, np.ndarray) else v
                 for k, v in options.items()}
    got = ctc_cuda.ctc_loss(cuda.to_device(x), *args, **on_device)
    if options.get("grad"):
        (got, got_grad), (expected, expected_grad) = got, expected
        assert got_grad.shape == x.shape and np.dtype(got_grad.dtype) == dtype
        np.testing.assert_allclose(host(got_grad), expected_grad, **TOL[dtype])
    assert got.shape == np.shape(expected) and np.dtype(got.dtype) == dtype
    np.testing.assert_allclose(host(got), expected, **TOL[dtype])
    return got


@pytest.mark.parametrize("dtype, layout, from_logits, reduction, grad_output", [
    (np.float64, "padded", False, "none", "array"),
    (np.float32, "padded", True, "mean", 0.7),
    (np.float64, "concatenated", True, "sum", None),
    (np.float32, "concatenated", False, "mean", None),
])
def test_loss_and_gradient_match_the_cpu(rng, cuda, dtype, layout, from_logits, reduction, grad_output):
    z, targets, input_lengths, target_lengths = _batch(rng, dtype)
    x = z if from_logits else _log_softmax(z)
    if layout == "concatenated":
        targets = _concatenated(targets, target_lengths)
    if grad_output == "array":
        grad_output = rng.uniform(0.5, 2.0, 3).astype(dtype)
    _check(cuda, x, (targets, input_lengths, target_lengths), dtype, reduction=reduction, from_logits=from_logits,
           grad=True, grad_output=grad_output)


def test_loss_alone_on_device_lengths(rng, cuda):
    """grad=False keeps two rolling alpha rows; targets and lengths may be device arrays."""
    z, targets, input_lengths, target_lengths = _batch(rng, np.float32)
    x = _log_softmax(z)
    expected = fl.ctc_loss(x, targets, input_lengths, target_lengths, reduction="none")
    got = ctc_cuda.ctc_loss(cuda.to_device(x), *map(cuda.to_device, (targets, input_lengths, target_lengths)),
                            reduction="none")
    np.testing.assert_allclose(host(got), expected, **TOL[np.float32])


def test_batch_first_and_a_blank_that_is_not_zero(rng, cuda):
    z, targets, input_lengths, target_lengths = _batch(rng, np.float32)
    targets[targets == 2] = 0  # blank = 2: the labels avoid it
    _check(cuda, np.ascontiguousarray(z.transpose(1, 0, 2)), (targets, input_lengths, target_lengths), np.float32,
           blank=2, batch_first=True, from_logits=True, reduction="none", grad=True)


def test_unbatched_input(rng, cuda):
    z, targets, _, _ = _batch(rng, np.float64, n=1)
    loss = _check(cuda, z[:, 0], (targets[0], 5, 2), np.float64, from_logits=True, reduction="none", grad=True,
                  grad_output=1.5)
    assert loss.shape == ()


@pytest.mark.parametrize("zero_infinity", [False, True])
def test_infeasible_targets(rng, cuda, zero_infinity):
    """Sample 0: a repeat needs 3 frames, it has 2; sample 2: 3 labels in 2 frames
    (+inf, or 0 and a zero gradient with zero_infinity)."""
    z, targets, _, _ = _batch(rng, np.float64, n_labels=3)
    targets[0, :2] = 1
    _check(cuda, z, (targets, np.array([2, 5, 2]), np.array([2, 3, 3])), np.float64, from_logits=True,
           zero_infinity=zero_infinity, reduction="none", grad=True)


def test_in_place_gradient_over_the_input(rng, cuda):
    z, targets, input_lengths, target_lengths = _batch(rng, np.float64)
    expected, expected_grad = fl.ctc_loss(z, targets, input_lengths, target_lengths, from_logits=True, grad=True)
    device = cuda.to_device(z)
    loss, grad = ctc_cuda.ctc_loss(device, targets, input_lengths, target_lengths, from_logits=True, grad=True,
                                   grad_out=device)
    assert grad is device
    np.testing.assert_allclose(host(loss), expected, **TOL[np.float64])
    np.testing.assert_allclose(host(device), expected_grad, **TOL[np.float64])


def test_a_huge_logit_keeps_the_finite_parts(rng, cuda):
    """The CPU's per-frame shift (its 1e300 fix): a logit of 1e300 outside the target's classes."""
    z, targets, input_lengths, target_lengths = _batch(rng, np.float64)
    targets[targets == 3] = 1
    z[1, 0, 3] = 1e300
    _check(cuda, z, (targets, input_lengths, target_lengths), np.float64, from_logits=True, reduction="sum",
           grad=True)


def test_empty_batch(cuda):
    x = np.zeros((4, 0, 3))
    args = (np.zeros((0, 2), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    for reduction in ("mean", "sum", "none"):  # mean over nothing: NaN, as the CPU
        _check(cuda, x, args, np.float64, reduction=reduction, grad=True)


@pytest.mark.parametrize("case", ["label out of range", "label is blank", "input too long", "negative target length",
                                  "concatenated sum"])
def test_bad_lengths_and_labels_raise_the_cpu_error(rng, cuda, case):
    z, targets, input_lengths, target_lengths = _batch(rng, np.float64)
    if case == "label out of range":
        targets[1, 0] = 4
    elif case == "label is blank":
        targets[0, 1] = 0
    elif case == "input too long":
        input_lengths[2] = 6
    elif case == "negative target length":
        target_lengths[1] = -1
    args = (targets, input_lengths, target_lengths)
    if case == "concatenated sum":
        args = (_concatenated(targets, target_lengths)[:-1], input_lengths, target_lengths)
    with pytest.raises(ValueError) as expected:
        fl.ctc_loss(z, *args)
    with pytest.raises(ValueError) as got:
        ctc_cuda.ctc_loss(cuda.to_device(z), *args, grad=True)
    assert str(got.value) == str(expected.value)


def test_checks_off_give_nan_rows_without_raising(rng, cuda):
    z, targets, input_lengths, target_lengths = _batch(rng, np.float64)
    targets[1, 0] = 7
    previous = core.set_device_checks(False)
    try:
        loss, grad = ctc_cuda.ctc_loss(cuda.to_device(z), targets, input_lengths, target_lengths, from_logits=True,
                                       reduction="none", grad=True)
    finally:
        core.set_device_checks(previous)
    loss, grad = host(loss), host(grad)
    assert np.isnan(loss[1]) and np.isnan(grad[:, 1]).all()
    targets[1, 0] = 1  # the other samples are the CPU's
    expected, expected_grad = fl.ctc_loss(z, targets, input_lengths, target_lengths, from_logits=True,
                                          reduction="none", grad=True)
    np.testing.assert_allclose(loss[[0, 2]], expected[[0, 2]], **TOL[np.float64])
    np.testing.assert_allclose(grad[:, [0, 2]], expected_grad[:, [0, 2]], **TOL[np.float64])


@pytest.mark.parametrize("kwargs, error", [
    (dict(blank=4), ValueError),
    (dict(reduction="avg"), ValueError),
    (dict(grad=True, grad_output=np.ones(3)), ValueError),  # not a scalar for the mean
    (dict(input_lengths=np.ones(3)), TypeError),
    (dict(targets=np.ones((2, 2), np.int64)), ValueError),
])
def test_host_checks_are_the_cpus(rng, cuda, kwargs, error):
    """Shapes and options are checked before any launch, with the CPU's messages."""
    z, targets, input_lengths, target_lengths = _batch(rng, np.float64)
    call = dict(targets=targets, input_lengths=input_lengths, target_lengths=target_lengths)
    call.update(kwargs)
    with pytest.raises(error) as expected:
        fl.ctc_loss(z, **call)
    with pytest.raises(error) as got:
        ctc_cuda.ctc_loss(cuda.to_device(z), **call)
    assert str(got.value) == str(expected.value)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the simulator's scalar inf - inf
@pytest.mark.parametrize("from_logits", [True, False])
def test_non_finite_inputs_reach_their_samples_as_on_the_cpu(rng, cuda, from_logits):
    """NaN in sample 0, -inf in sample 1, +inf in sample 2 (NaN losses and gradients where
    the CPU, and torch, give them)."""
    z, targets, input_lengths, target_lengths = _batch(rng, np.float64)
    x = z if from_logits else _log_softmax(z)
    x[1, 0, targets[0, 0]] = np.nan
    x[2, 1, 0] = -np.inf
    x[0, 2, 3] = np.inf
    _check(cuda, x, (targets, input_lengths, target_lengths), np.float64, from_logits=from_logits,
           reduction="none", grad=True)
