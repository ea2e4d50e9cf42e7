"""Classification losses against torch autograd (the oracle) on fresh random data.

Every expected value and gradient below comes from torch 2.13 CPU run on the same
arrays (``torch_value_and_grad``), from a torch transcription of a reference
implementation named in the test, or from another fastloss call where the contract
says two losses are identical.
"""
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from references import torch_focal, torchvision_sigmoid_focal_loss
from conftest import assert_close, torch_value_and_grad
from fastloss._core import backends as _backend
from fastloss._core.reduction import Parts, in_parts
from fastloss.classification import cpu as classification_cpu
from hostile import check_hostile, sprinkle

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]
FEW_CLASSES = classification_cpu.FEW_CLASSES


def _check(fl_fn, torch_fn, inputs, dtype, fl_kwargs=None, torch_kwargs=None, grad_output=None, scale=1.0):
    fl_kwargs = fl_kwargs or {}
    torch_kwargs = fl_kwargs if torch_kwargs is None else torch_kwargs
    expected, expected_grad = torch_value_and_grad(torch_fn, inputs, grad_output=grad_output, **torch_kwargs)
    value = fl_fn(*inputs, **fl_kwargs)
    value2, grad = fl_fn(*inputs, **fl_kwargs, grad=True, grad_output=grad_output)
    assert np.asarray(value).dtype == dtype and grad.dtype == dtype
    assert np.shape(value) == expected.shape and grad.shape == np.shape(inputs[0])
    np.testing.assert_array_equal(value, value2)
    assert_close(value, expected, dtype, scale)
    assert_close(grad, expected_grad, dtype, scale)
    return value, grad


def _class_data(rng, shape, dtype, ignore_frac=0.0):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    c = shape[0] if len(shape) == 1 else shape[1]
    t_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    t = rng.integers(0, c, t_shape)
    if ignore_frac and t.ndim:
        t[rng.random(t_shape) < ignore_frac] = -100
    return x, t


# ---------------------------------------------------------------------- cross_entropy

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(13, 7), (5, 4, 3, 2), (6,), (13, FEW_CLASSES), (13, FEW_CLASSES + 1),
                                   (4, FEW_CLASSES + 1, 3)],
                         ids=["NC", "NCd1d2", "C", "NC-few-classes-edge", "NC-row-kernel", "NCd-row-kernel"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_targets(rng, dtype, reduction, shape, smoothing, weighted):
    """Both row kernels: up to FEW_CLASSES classes the rows go LANES at a time, above it one by one."""
    x, t = _class_data(rng, shape, dtype, ignore_frac=0.2)
    c = x.shape[0] if x.ndim == 1 else x.shape[1]
    w = rng.random(c).astype(dtype) + 0.1 if weighted else None
    go = rng.standard_normal(np.shape(t)) if reduction == "none" else 0.7
    kwargs = dict(reduction=reduction, label_smoothing=smoothing)
    expected, expected_grad = torch_value_and_grad(
        F.cross_entropy, [x, t, w], grad_output=go, **kwargs)
    value, grad = fl.cross_entropy(x, t, w, **kwargs, grad=True, grad_output=go)
    assert_close(value, expected, dtype)
    assert_close(grad, expected_grad, dtype)
    assert grad.dtype == dtype and np.shape(value) == expected.shape
    np.testing.assert_array_equal(fl.cross_entropy(x, t, w, **kwargs), value)


@pytest.mark.skipif(_backend.numba is None, reason="the common call's kernel is the default backend's")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.2}, {"ignore_index": 2}, {"label_smoothing": 1}])
@pytest.mark.parametrize("n_classes", [1, 10, FEW_CLASSES + 7])
def test_common_call_is_the_general_call(rng, monkeypatch, dtype, reduction, options, n_classes):
    """The short path of the most common call (C-contiguous (N, C) logits, int64 targets,
    options by value) gives the general path's bits (the general path taken by naming the
    backend), and the spy sees it taken."""
    import fastloss.classification as classification

    x, t = _class_data(rng, (300, n_classes), dtype, ignore_frac=0.1)
    if "ignore_index" in options:
        t[t == -100] = 2
    taken = []
    common = classification._common_cross_entropy
    monkeypatch.setattr(classification, "_common_cross_entropy",
                        lambda *args: taken.append(common(*args)) or taken[-1])
    for grad in (False, True):
        got = fl.cross_entropy(x, t, reduction=reduction, grad=grad, **options)
        general = fl.cross_entropy(x, t, reduction=reduction, grad=grad, backend="numba", **options)
        for a, b in zip(got if grad else (got,), general if grad else (general,)):
            np.testing.assert_array_equal(a, b)
            assert np.asarray(a).dtype == dtype
    assert len(taken) == 2 and all(result is not None for result in taken)


@pytest.mark.skipif(_backend.numba is None, reason="the common call's kernel is the default backend's")
def test_common_call_leaves_the_rest_to_the_general_path(rng):
    """A bad target raises the general path's error; within in_parts a reduced loss is its
    Parts; strided, int32 or other options' calls give what the general path gives."""
    import fastloss.classification as classification

    x, t = _class_data(rng, (40, 6), np.float32)
    bad = t.copy()
    bad[3] = 6
    assert classification._common_cross_entropy(x, bad, -100, "mean", 0.0, True) is None
    with pytest.raises(ValueError, match="target holds class index 6"):
        fl.cross_entropy(x, bad)
    with in_parts():
        assert isinstance(fl.cross_entropy(x, t), Parts)
    for call in [lambda: (x[::2], t[::2]), lambda: (np.asfortranarray(x), t), lambda: (x, t.astype(np.int32))]:
        xx, tt = call()
        assert classification._common_cross_entropy(xx, tt, -100, "mean", 0.0, False) is None
        np.testing.assert_array_equal(fl.cross_entropy(xx, tt), fl.cross_entropy(np.ascontiguousarray(xx),
                                                                                  tt.astype(np.int64)))
    for options in [{"label_smoothing": 1.5}, {"ignore_index": True}, {"reduction": "avg"}, {"grad": 1}]:
        with pytest.raises((TypeError, ValueError)):
            fl.cross_entropy(x, t, **options)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(9, 5), (3, 4, 5)], ids=["NC", "NCd"])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
def test_cross_entropy_probability_targets(rng, dtype, reduction, shape, smoothing):
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    y = rng.random(shape).astype(dtype)
    y /= y.sum(axis=1, keepdims=True)
    w = rng.random(shape[1]).astype(dtype) + 0.5
    kwargs = dict(reduction=reduction, label_smoothing=smoothing)
    expected, expected_grad = torch_value_and_grad(F.cross_entropy, [x, y, w], **kwargs)
    value, grad = fl.cross_entropy(x, y, w, **kwargs, grad=True)
    assert_close(value, expected, dtype)
    assert_close(grad, expected_grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_all_ignored_is_nan_with_zero_gradient(rng, dtype):
    x, _ = _class_data(rng, (4, 3), dtype)
    t = np.full(4, -100)
    expected, expected_grad = torch_value_and_grad(F.cross_entropy, [x, t])  # torch: nan, zeros
    value, grad = fl.cross_entropy(x, t, grad=True)
    assert np.isnan(value) and np.isnan(expected)
    np.testing.assert_array_equal(grad, expected_grad)
    assert not grad.any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_masked_classes(rng, dtype, smoothing):
    """-inf logits mask classes: the loss is finite without smoothing, inf with it (as torch)."""
    x, t = _class_data(rng, (8, 6), dtype)
    x[:, 4:] = -np.inf
    t = t % 4
    expected, expected_grad = torch_value_and_grad(F.cross_entropy, [x, t], label_smoothing=smoothing)
    value, grad = fl.cross_entropy(x, t, label_smoothing=smoothing, grad=True)
    assert_close(value, expected, dtype)
    assert_close(grad, expected_grad, dtype)
    assert np.isfinite(value) == (smoothing == 0)


def test_cross_entropy_large_logits_float32(rng):
    """Logits of magnitude 1e4 in float32 do not overflow (torch in float64 is the oracle)."""
    x = (rng.standard_normal((16, 10)) * 1e4).astype(np.float32)
    t = rng.integers(0, 10, 16)
    expected, expected_grad = torch_value_and_grad(F.cross_entropy, [x.astype(np.float64), t], reduction="none")
    value, grad = fl.cross_entropy(x, t, reduction="none", grad=True)
    assert np.isfinite(value).all() and np.isfinite(grad).all()
    np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-2)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-6)


def test_cross_entropy_nan_propagates_per_row(rng):
    x, t = _class_data(rng, (5, 4), np.float64)
    x[2, 1] = np.nan
    expected, expected_grad = torch_value_and_grad(F.cross_entropy, [x, t], reduction="none")
    value, grad = fl.cross_entropy(x, t, reduction="none", grad=True)
    np.testing.assert_array_equal(np.isnan(value), np.isnan(expected))
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(expected_grad))
    assert_close(value[[0, 1, 3, 4]], expected[[0, 1, 3, 4]], np.float64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_empty_batch(reduction):
    x = np.zeros((0, 5), np.float32)
    t = np.zeros(0, np.int64)
    expected = F.cross_entropy(torch.tensor(x), torch.tensor(t), reduction=reduction).numpy()
    value, grad = fl.cross_entropy(x, t, reduction=reduction, grad=True)
    np.testing.assert_array_equal(value, expected)  # nan for mean, 0 for sum, empty for none
    assert grad.shape == (0, 5)


def test_cross_entropy_float16_computes_in_float32(rng):
    x, t = _class_data(rng, (6, 5), np.float16)
    value, grad = fl.cross_entropy(x, t, grad=True)
    expected, expected_grad = torch_value_and_grad(F.cross_entropy, [x.astype(np.float32), t])
    assert np.asarray(value).dtype == np.float32 and grad.dtype == np.float32
    assert_close(value, expected, np.float32)
    assert_close(grad, expected_grad, np.float32)


def test_cross_entropy_strided_readonly_memmap_and_int32_targets(rng, tmp_path):
    x, t = _class_data(rng, (12, 10), np.float32)
    # x[::2, ::3] has 4 classes, non-unit strides in both axes; targets are int32.
    expected, expected_grad = torch_value_and_grad(F.cross_entropy, [x[::2, ::3].copy(), t[::2] % 4])
    value, grad = fl.cross_entropy(x[::2, ::3], (t[::2] % 4).astype(np.int32), grad=True)
    assert_close(value, expected, np.float32)
    assert_close(grad, expected_grad, np.float32)
    path = tmp_path / "logits.npy"
    np.save(path, x)
    mm = np.load(path, mmap_mode="r")
    assert not mm.flags.writeable
    exp3, exp_grad3 = torch_value_and_grad(F.cross_entropy, [x, t])
    value3, grad3 = fl.cross_entropy(mm, t, grad=True)
    assert_close(value3, exp3, np.float32)
    assert_close(grad3, exp_grad3, np.float32)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_grad_out_in_place(rng, smoothing):
    x, t = _class_data(rng, (10, 7), np.float64, ignore_frac=0.2)
    expected, expected_grad = torch_value_and_grad(F.cross_entropy, [x, t], label_smoothing=smoothing)
    buffer = x.copy()
    value, grad = fl.cross_entropy(buffer, t, label_smoothing=smoothing, grad=True, grad_out=buffer)
    assert grad is buffer
    assert_close(value, expected, np.float64)
    assert_close(grad, expected_grad, np.float64)


def test_cross_entropy_grad_out_strided(rng):
    """A grad_out whose strides admit no (N, K, C) view still receives the gradient."""
    x, t = _class_data(rng, (4, 3, 2, 5), np.float64)
    expected, expected_grad = torch_value_and_grad(F.cross_entropy, [x, t])
    out = np.zeros((4, 3, 5, 2)).transpose(0, 1, 3, 2)
    _, grad = fl.cross_entropy(x, t, grad=True, grad_out=out)
    assert grad is out
    assert_close(out, expected_grad, np.float64)


@pytest.mark.parametrize("n_classes", [10, 33, 64, 100])
def test_cross_entropy_loss_with_and_without_gradient_same_bits_at_any_address(rng, n_classes):
    """The loss of a call with a gradient and of one without are the same bits, whatever
    the arrays' addresses (the allocations in between move them). Before the row kernel
    summed its exps in a loop of their own, LLVM's run-time alias check sent some rows to a
    scalar loop that summed in another order: 465 of 1600 such pairs differed in their
    last bit."""
    padding = []
    for _ in range(100):
        padding.append(np.empty(int(rng.integers(1, 200))))
        if len(padding) > 20:
            padding.pop(int(rng.integers(0, 20)))
        x, t = _class_data(rng, (13, n_classes), np.float32)
        w = rng.random(n_classes).astype(np.float32) + 0.1
        alone = fl.cross_entropy(x, t, w, reduction="none", label_smoothing=0.3)
        with_grad, _ = fl.cross_entropy(x, t, w, reduction="none", label_smoothing=0.3, grad=True,
                                        grad_output=rng.standard_normal(13))
        np.testing.assert_array_equal(alone, with_grad)


def test_cross_entropy_threads(rng):
    """Eight Python threads calling at once get the single-threaded results."""
    cases = [_class_data(rng, (64, 33), np.float32, 0.1) for _ in range(8)]
    expected = [fl.cross_entropy(x, t, grad=True) for x, t in cases]
    results = [None] * 8

    def work(i):
        for _ in range(20):
            results[i] = fl.cross_entropy(*cases[i], grad=True)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for (v, g), (ev, eg) in zip(results, expected):
        np.testing.assert_array_equal(v, ev)
        np.testing.assert_array_equal(g, eg)


# ---------------------------------------------------------------------- focal


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha", ["none", "scalar", "per_class"])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_loss(rng, dtype, reduction, alpha, gamma):
    x, t = _class_data(rng, (11, 5), dtype, ignore_frac=0.2)
    a = {"none": None, "scalar": np.asarray(0.25, dtype), "per_class": rng.random(5).astype(dtype)}[alpha]
    expected, expected_grad = torch_value_and_grad(
        torch_focal, [x, t, a], gamma=gamma, reduction=reduction)
    value, grad = fl.focal_loss(x, t, alpha=None if a is None else (float(a) if a.ndim == 0 else a),
                                gamma=gamma, reduction=reduction, grad=True)
    assert_close(value, expected, dtype, scale=5)
    assert_close(grad, expected_grad, dtype, scale=5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_focal_gamma_zero_is_cross_entropy_exactly(rng, dtype):
    x, t = _class_data(rng, (4, 6, 3), dtype, ignore_frac=0.3)
    for reduction in REDUCTIONS:
        v1, g1 = fl.focal_loss(x, t, gamma=0.0, reduction=reduction, grad=True)
        v2, g2 = fl.cross_entropy(x, t, reduction=reduction, grad=True)
        np.testing.assert_array_equal(v1, v2)
        np.testing.assert_array_equal(g1, g2)


def test_focal_loss_confident_rows_have_finite_gradient():
    """p_t = 1 exactly (a huge margin): the gradient takes its limit 0, for gamma < 1 too."""
    x = np.array([[100.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    t = np.array([0, 1])
    for gamma in (0.5, 2.0):
        value, grad = fl.focal_loss(x, t, gamma=gamma, reduction="none", grad=True)
        assert value[0] == 0 and np.all(grad[0] == 0) and np.isfinite(grad).all()


# ------------------------------------------------------- sigmoid focal (torchvision)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 1.5), (0.6, 0.0)])
def test_sigmoid_focal_loss(rng, dtype, reduction, alpha, gamma):
    x = (rng.standard_normal((7, 6)) * 3).astype(dtype)
    y = (rng.random((7, 6)) < 0.3).astype(dtype)
    y[0] = rng.random(6)  # soft targets, as torchvision allows
    y[1] = rng.uniform(-0.5, 1.5, 6)  # and targets outside [0, 1]: 1 - p_t < 0 takes pow's sign rules
    _check(fl.sigmoid_focal_loss, torchvision_sigmoid_focal_loss, [x, y], dtype,
           dict(alpha=alpha, gamma=gamma, reduction=reduction))


def test_sigmoid_focal_defaults_match_torchvision(rng):
    x = rng.standard_normal((3, 4))
    y = (rng.random((3, 4)) < 0.5).astype(np.float64)
    expected = torchvision_sigmoid_focal_loss(torch.tensor(x), torch.tensor(y)).numpy()
    assert_close(fl.sigmoid_focal_loss(x, y), expected, np.float64)
    assert fl.sigmoid_focal_loss(x, y).shape == (3, 4)  # reduction="none" by default


# ---------------------------------------------------------------------- nll

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(9, 4), (3, 4, 5)], ids=["NC", "NCd"])
def test_nll_loss(rng, dtype, reduction, weighted, shape):
    x, t = _class_data(rng, shape, dtype, ignore_frac=0.2)
    w = rng.random(4).astype(dtype) if weighted else None
    go = rng.standard_normal(t.shape) if reduction == "none" else None
    expected, expected_grad = torch_value_and_grad(F.nll_loss, [x, t, w], grad_output=go, reduction=reduction)
    value, grad = fl.nll_loss(x, t, w, reduction=reduction, grad=True, grad_output=go)
    assert_close(value, expected, dtype)
    assert_close(grad, expected_grad, dtype)


# ---------------------------------------------------------------------- BCE

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(rng, dtype, reduction, weighted):
    x = rng.random((8, 5)).astype(dtype)
    x[0, :3] = [0.0, 1.0, 0.5]  # the clamp at -100 (torch) at exact 0 and 1
    y = rng.random((8, 5)).astype(dtype)
    y[0, :2] = [1.0, 0.0]
    w = rng.random(5).astype(dtype) if weighted else None
    _check(lambda a, b, **k: fl.binary_cross_entropy(a, b, w, **k),
           lambda a, b, **k: F.binary_cross_entropy(a, b, None if w is None else torch.tensor(w), **k),
           [x, y], dtype, dict(reduction=reduction), scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight_shape", [None, (5,), (8, 1)])
@pytest.mark.parametrize("pos_weight", [False, True])
def test_binary_cross_entropy_with_logits(rng, dtype, reduction, weight_shape, pos_weight):
    x = (rng.standard_normal((8, 5)) * 4).astype(dtype)
    x[0, :2] = [60.0, -60.0]
    y = rng.random((8, 5)).astype(dtype)
    w = None if weight_shape is None else rng.random(weight_shape).astype(dtype)
    pw = rng.random(5).astype(dtype) * 3 if pos_weight else None
    expected, expected_grad = torch_value_and_grad(
        F.binary_cross_entropy_with_logits, [x, y, w], reduction=reduction,
        pos_weight=None if pw is None else torch.tensor(pw))
    value, grad = fl.binary_cross_entropy_with_logits(x, y, w, reduction=reduction, pos_weight=pw, grad=True)
    assert_close(value, expected, dtype)
    assert_close(grad, expected_grad, dtype)


# ---------------------------------------------------------------------- KL

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(rng, dtype, reduction, log_target):
    x = np.log(rng.dirichlet(np.ones(6), 7)).astype(dtype)
    y = rng.dirichlet(np.ones(6), 7).astype(dtype)
    y[0, 0] = 0.0  # xlogy(0, 0) = 0
    if log_target:
        y = np.log(y + 0.01).astype(dtype)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about "mean"
        _check(fl.kl_div, F.kl_div, [x, y], dtype, dict(reduction=reduction, log_target=log_target))


# ---------------------------------------------------------------------- criteria

def test_criterion_objects(rng):
    x, t = _class_data(rng, (6, 4), np.float64, 0.2)
    w = rng.random(4)
    crit = fl.CrossEntropyLoss(w, ignore_index=-100, label_smoothing=0.1)
    np.testing.assert_array_equal(crit(x, t), fl.cross_entropy(x, t, w, label_smoothing=0.1))
    v, g = crit.value_and_grad(x, t)
    ev, eg = fl.cross_entropy(x, t, w, label_smoothing=0.1, grad=True)
    np.testing.assert_array_equal(v, ev)
    np.testing.assert_array_equal(g, eg)
    assert "label_smoothing=0.1" in repr(crit)
    focal = fl.FocalLoss(gamma=1.0)
    np.testing.assert_array_equal(focal(x, t), fl.focal_loss(x, t, gamma=1.0))
    with pytest.raises(TypeError):
        fl.CrossEntropyLoss(w, None, -100)  # no size_average slot: options are keyword-only


# ---------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call,exc,match", [
    (lambda: fl.cross_entropy(np.zeros((3, 4)), np.array([0, 4, 1])), ValueError, "class index 4"),
    (lambda: fl.cross_entropy(np.zeros((3, 4)), np.array([0, -1, 1])), ValueError, "class index -1"),
    (lambda: fl.cross_entropy(np.zeros((3, 4)), np.array([0, 1])), ValueError, r"target has shape \(2,\)"),
    (lambda: fl.cross_entropy(np.zeros((3, 4)), np.array([0, 1, 2]), np.ones(3)), ValueError, r"weight must have shape \(4,\)"),
    (lambda: fl.cross_entropy(np.zeros((3, 4)), np.array([0, 1, 2]), reduction="avg"), ValueError, "reduction must be one of"),
    (lambda: fl.cross_entropy(np.zeros((3, 4)), np.array([0, 1, 2]), label_smoothing=1.5), ValueError, "label_smoothing"),
    (lambda: fl.cross_entropy(np.array([["a"]]), np.array([0])), TypeError, "floating-point"),
    (lambda: fl.cross_entropy(np.zeros((3, 4), int), np.array([0, 1, 2])), TypeError, "floating-point"),
    (lambda: fl.cross_entropy(np.zeros((3, 4)), np.array([0.0, 1.0, 2.0])), ValueError, "probability targets"),
    (lambda: fl.cross_entropy(np.zeros((3, 0)), np.zeros(3, int)), ValueError, "zero classes"),
    (lambda: fl.cross_entropy(np.zeros((3, 4)), np.zeros(3, int), grad=True, grad_out=np.zeros((3, 4), np.float32)), TypeError, "grad_out has dtype"),
    (lambda: fl.cross_entropy(np.zeros((3, 4)), np.zeros(3, int), reduction="none", grad=True, grad_output=np.ones(4)), ValueError, "grad_output"),
    (lambda: fl.nll_loss(np.zeros((3, 4)), np.array([0, 7, 1])), ValueError, "class index 7"),
    (lambda: fl.focal_loss(np.zeros((3, 4)), np.array([0, 1, 2]), gamma=-1), ValueError, "gamma"),
    (lambda: fl.focal_loss(np.zeros((3, 4)), np.array([0, 1, 2]), alpha=np.ones(3)), ValueError, "alpha must have shape"),
    (lambda: fl.binary_cross_entropy(np.array([0.5, 1.5]), np.array([0.0, 1.0])), ValueError, "probabilities in"),
    (lambda: fl.binary_cross_entropy_with_logits(np.zeros((2, 3)), np.zeros((2, 3)), pos_weight=np.ones(2)), ValueError, "pos_weight"),
    (lambda: fl.kl_div(np.zeros(3), np.zeros(3), reduction="batch"), ValueError, "reduction"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.skipif(_backend.numba is None, reason="numba is not in use (FASTLOSS_BACKEND=cython)")
def test_cache_serves_a_second_process(tmp_path):
    """A fresh process loads the compiled kernel from the on-disk cache instead of compiling."""
    import subprocess
    import sys

    code = ("import numpy as np, fastloss as fl\n"
            "from fastloss.classification import cpu as c\n"
            "fl.cross_entropy(np.ones((2, 3), np.float32), np.array([0, 1]), grad=True)\n"
            "fl.cross_entropy(np.ones((200, 100), np.float32), np.zeros(200, int), grad=True)\n"
            "ks = [c.softmax_cross_entropy_rows.__wrapped__, c.softmax_cross_entropy_rows_serial]\n"
            "print(sum(sum(k.stats.cache_hits.values()) for k in ks),"
            " sum(sum(k.stats.cache_misses.values()) for k in ks))\n")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
            for _ in range(2)]
    hits, misses = map(int, runs[1])
    assert hits >= 2 and misses == 0


@pytest.mark.parametrize("fn", [fl.cross_entropy, fl.nll_loss, fl.focal_loss])
@pytest.mark.parametrize("n", [3, 5000], ids=["serial", "parallel"])
def test_bad_class_index_writes_nothing(rng, fn, n):
    """Targets are checked before any row is computed: an in-place grad_out is left as it was."""
    x = rng.standard_normal((n, 4))
    t = rng.integers(0, 4, n)
    t[-1] = 9
    buffer = x.copy()
    with pytest.raises(ValueError, match="class index 9"):
        fn(buffer, t, grad=True, grad_out=buffer)
    np.testing.assert_array_equal(buffer, x)


# ------------------------------------------------------- corners: NaN, inf, domains

def _weight_or_none(rng, n):
    return rng.random(n) + 0.5 if rng.random() < 0.5 else None


def _hostile_cross_entropy(rng, reduction):
    x, t = _class_data(rng, (5, 4), np.float64)
    weight = _weight_or_none(rng, 4)
    smoothing = float(rng.choice([0.0, 0.1]))
    if rng.random() < 0.5:
        kwargs = dict(weight=weight, ignore_index=int(rng.choice([-100, 1])), label_smoothing=smoothing)
        return fl.cross_entropy, F.cross_entropy, [sprinkle(rng, x), t], kwargs, ["weight"], (5,)
    y = rng.dirichlet(np.ones(4), 5)
    kwargs = dict(weight=weight, label_smoothing=smoothing)
    return fl.cross_entropy, F.cross_entropy, [sprinkle(rng, x), sprinkle(rng, y)], kwargs, ["weight"], (5,)


def _hostile_nll(rng, reduction):
    x, t = _class_data(rng, (5, 4), np.float64)
    kwargs = dict(weight=_weight_or_none(rng, 4), ignore_index=int(rng.choice([-100, 1])))
    return fl.nll_loss, F.nll_loss, [sprinkle(rng, x), t], kwargs, ["weight"], (5,)


def _hostile_focal(rng, reduction):
    # No ignored targets: the transcription's torch.where masks their rows by a
    # multiplication (a NaN alpha there makes NaN gradients that torch's own losses avoid).
    # Where the transcription's autograd meets 0 * inf and the kernel takes the limit, they
    # differ by design: alpha gets NaN only (an infinite alpha_t times p_t log p_t, p_t
    # underflowed to 0) and gamma is not in (0, 1) (the derivative of (1 - p_t)^gamma at p_t = 1).
    x, t = _class_data(rng, (5, 4), np.float64)
    alpha = _weight_or_none(rng, 4)
    kwargs = dict(alpha=alpha if alpha is None else sprinkle(rng, alpha, (np.nan,)),
                  gamma=float(rng.choice([0.0, 2.0])))
    return fl.focal_loss, torch_focal, [sprinkle(rng, x), t], kwargs, [], (5,)


def _hostile_bce(rng, reduction):
    x, y = rng.uniform(0.01, 0.99, (4, 3)), rng.random((4, 3))
    kwargs = dict(weight=rng.random((4, 3)) if rng.random() < 0.5 else None)
    return fl.binary_cross_entropy, F.binary_cross_entropy, [sprinkle(rng, x, p=0.1), sprinkle(rng, y, p=0.1)], \
        kwargs, ["weight"], (4, 3)


def _hostile_bce_logits(rng, reduction):
    kwargs = dict(weight=rng.random((4, 3)) if rng.random() < 0.5 else None, pos_weight=_weight_or_none(rng, 3))
    # Targets get no huge values: pos_weight * y + 1 - y then cancels, and gcc's contraction
    # into a fused multiply-add (the Cython backend) rounds it otherwise than torch.
    y = sprinkle(rng, rng.random((4, 3)), (np.nan, np.inf, -np.inf))
    return fl.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, \
        [sprinkle(rng, rng.standard_normal((4, 3))), y], kwargs, ["weight", "pos_weight"], (4, 3)


def _hostile_kl_div(rng, reduction):
    log_target = bool(rng.random() < 0.5)
    y = rng.standard_normal((4, 3)) if log_target else rng.random((4, 3))
    return fl.kl_div, F.kl_div, [sprinkle(rng, rng.standard_normal((4, 3))), sprinkle(rng, y)], \
        dict(log_target=log_target), [], (4, 3)


def _hostile_sigmoid_focal(rng, reduction):
    y = (rng.random((4, 3)) < 0.5).astype(float)
    kwargs = dict(alpha=float(rng.choice([0.25, -1.0])), gamma=float(rng.choice([0.0, 1.5, 2.0])))
    return fl.sigmoid_focal_loss, torchvision_sigmoid_focal_loss, \
        [sprinkle(rng, rng.standard_normal((4, 3))), sprinkle(rng, y)], kwargs, [], (4, 3)


HOSTILE = {"cross_entropy": _hostile_cross_entropy, "nll_loss": _hostile_nll, "focal_loss": _hostile_focal,
           "binary_cross_entropy": _hostile_bce, "binary_cross_entropy_with_logits": _hostile_bce_logits,
           "kl_div": _hostile_kl_div, "sigmoid_focal_loss": _hostile_sigmoid_focal}


BACKENDS = ([] if _backend.numba is None else ["numba"]) + (["cython"] if _backend.cython_built() else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_nan_inf_and_huge_values_as_torch(rng, name, backend):
    """NaN, +-inf and 1e300 at random positions of inputs, targets, weights and grad_output,
    against torch float64 (tests/hostile.py says what must agree)."""
    for _ in range(25):
        reduction = str(rng.choice(REDUCTIONS + (["batchmean"] if name == "kl_div" else [])))
        fn, torch_fn, arrays, kwargs, weights, loss_shape = HOSTILE[name](rng, reduction)
        kwargs = dict(kwargs, reduction=reduction)
        for key in weights:
            if kwargs[key] is not None:
                kwargs[key] = sprinkle(rng, kwargs[key])
        grad_output = rng.standard_normal(loss_shape) if reduction == "none" else np.float64(0.7)
        grad_output = sprinkle(rng, grad_output, (np.nan,), p=0.1)
        check_hostile(fn, torch_fn, arrays, (0,), kwargs, grad_output, backend)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_nan_class_weight_reaches_its_own_rows_only(rng, smoothing, reduction):
    """torch: a NaN weight of class 1 makes NaN the rows whose target is 1 (all rows, with
    smoothing or a mean); the gradient of every other row stays finite."""
    x, t = rng.standard_normal((6, 3)), np.array([0, 1, 2, 0, 2, 2])
    w = np.array([1.0, np.nan, 2.0])
    expected, expected_grad = torch_value_and_grad(F.cross_entropy, [x, t, w], reduction=reduction,
                                                   label_smoothing=smoothing)
    value, grad = fl.cross_entropy(x, t, w, reduction=reduction, label_smoothing=smoothing, grad=True)
    np.testing.assert_allclose(value, expected, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15, equal_nan=True)
    if smoothing == 0 and reduction != "mean":
        assert np.isfinite(grad[t != 1]).all()


@pytest.mark.parametrize("target", [[[np.inf, 0.0, 0.5]], [[0.2, -np.inf, 0.3]], [[0.0, 0.0, np.inf]]])
def test_infinite_probability_targets_give_infinite_losses(rng, target):
    """torch: -sum q log p is +-inf for an infinite q, also at the largest logit (the
    max-shifted form log(sum) mass + gap made inf * 0 there)."""
    x, y = np.array([[0.5, -0.3, 1.0]]), np.array(target)
    for fn, torch_fn in [(fl.cross_entropy, F.cross_entropy),
                         (fl.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits)]:
        expected, expected_grad = torch_value_and_grad(torch_fn, [x, y], reduction="none")
        value, grad = fn(x, y, reduction="none", grad=True)
        assert np.isinf(expected).any()
        np.testing.assert_allclose(value, expected, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("ignore_index", [0, 2, 7])
def test_cross_entropy_probability_targets_take_no_ignore_index(rng, ignore_index):
    """torch raises "ignore_index is not supported for floating point target" for any index >= 0."""
    x, y = rng.standard_normal((3, 4)), rng.dirichlet(np.ones(4), 3)
    with pytest.raises(RuntimeError, match="not supported for floating point target"):
        F.cross_entropy(torch.tensor(x), torch.tensor(y), ignore_index=ignore_index)
    with pytest.raises(ValueError, match="ignore_index"):
        fl.cross_entropy(x, y, ignore_index=ignore_index)
    assert_close(fl.cross_entropy(x, y, ignore_index=-1), F.cross_entropy(torch.tensor(x), torch.tensor(y)).numpy(),
                 np.float64)


@pytest.mark.parametrize("where, bad", [("input", np.nan), ("target", 1e30), ("target", -3.0), ("target", np.nan),
                                        ("input", -0.5)])
def test_binary_cross_entropy_rejects_what_torch_rejects(rng, where, bad):
    """torch checks 0 <= v <= 1 for every input and target entry (NaN fails): ValueError naming the argument."""
    x, y = rng.uniform(0.1, 0.9, 5), rng.random(5)
    (x if where == "input" else y)[2] = bad
    with pytest.raises(RuntimeError, match=f"all elements of {where} should be between 0 and 1"):
        F.binary_cross_entropy(torch.tensor(x), torch.tensor(y))
    with pytest.raises(ValueError, match=f"{where} must hold probabilities in \\[0, 1\\]"):
        fl.binary_cross_entropy(x, y)
