"""The elementwise losses on the GPU (fastloss._core.cuda_elementwise and each family's
entry points), called through the public functions with device arrays.

The expected numbers everywhere are the CPU public function's (``fastloss.<loss>`` on the
same host arrays; itself tested against torch in tests/test_<family>.py).
"""
import inspect

import numpy as np
import pytest
from conftest import host

import fastloss as fl
from fastloss._core import cuda as core

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
SHAPE = (3, 5)


def _normal(rng, *shape):
    return rng.standard_normal(shape or SHAPE)


def _offset(rng, shape=SHAPE):
    """Differences at least 0.2 away from 0 (the kinks of L1 and the hinges)."""
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0) * rng.uniform(0.2, 1.0, shape)


def _signs(rng, shape=SHAPE):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def _pair(rng):
    x = _normal(rng)
    return [x, x - _offset(rng)]


# name -> (args maker, options): every option and broadcast the device path takes.
CASES = {
    "l1": ("l1_loss", _pair, {}),
    "l1_weight": ("l1_loss", lambda r: _pair(r), {"weight": lambda r: r.uniform(0.2, 1.5, SHAPE)}),
    "mse_weight": ("mse_loss", _pair, {"weight": lambda r: r.uniform(0.2, 1.5, SHAPE)}),
    "mse_target_row": ("mse_loss", lambda r: [_normal(r), _normal(r, 5)], {}),
    "smooth_l1": ("smooth_l1_loss", _pair, {"beta": 0.5}),
    "smooth_l1_beta0": ("smooth_l1_loss", _pair, {"beta": 0.0}),
    "huber_weight": ("huber_loss", _pair, {"delta": 0.7, "weight": lambda r: r.uniform(0.2, 1.5, SHAPE)}),
    "poisson_log": ("poisson_nll_loss", lambda r: [_normal(r), r.poisson(2.0, SHAPE).astype(float)], {}),
    "poisson_log_full": ("poisson_nll_loss", lambda r: [_normal(r), r.poisson(2.0, SHAPE).astype(float)],
                         {"full": True}),
    "poisson_rate": ("poisson_nll_loss", lambda r: [r.uniform(0.1, 3, SHAPE), r.poisson(2.0, SHAPE).astype(float)],
                     {"log_input": False}),
    "poisson_rate_full": ("poisson_nll_loss",
                          lambda r: [r.uniform(0.1, 3, SHAPE), r.poisson(2.0, SHAPE).astype(float)],
                          {"log_input": False, "full": True, "eps": 1e-6}),
    "gaussian": ("gaussian_nll_loss", lambda r: [_normal(r), _normal(r), r.uniform(0.2, 2, SHAPE)], {}),
    "gaussian_per_row": ("gaussian_nll_loss", lambda r: [_normal(r), _normal(r), r.uniform(0.2, 2, 3)],
                         {"full": True}),
    "gaussian_column": ("gaussian_nll_loss", lambda r: [_normal(r), _normal(r), r.uniform(0.2, 2, (1, 5))],
                        {"eps": 0.5}),
    "bce": ("binary_cross_entropy", lambda r: [r.uniform(0.05, 0.95, SHAPE), r.random(SHAPE)],
            {"weight": lambda r: r.uniform(0.2, 1.5, 5)}),
    "bce_logits": ("binary_cross_entropy_with_logits", lambda r: [_normal(r), r.random(SHAPE)], {}),
    "bce_logits_pos_weight": ("binary_cross_entropy_with_logits", lambda r: [_normal(r), r.random(SHAPE)],
                              {"pos_weight": lambda r: r.uniform(0.5, 2, 5),
                               "weight": lambda r: r.uniform(0.2, 1.5, (3, 1))}),
    "kl_div": ("kl_div", lambda r: [np.log(r.dirichlet(np.ones(5), 3)), r.dirichlet(np.ones(5), 3)], {}),
    "kl_div_log_target": ("kl_div", lambda r: [np.log(r.dirichlet(np.ones(5), 3)),
                                               np.log(r.dirichlet(np.ones(5), 3))], {"log_target": True}),
    "sigmoid_focal": ("sigmoid_focal_loss", lambda r: [_normal(r), (r.random(SHAPE) < 0.5).astype(float)],
                      {"alpha": 0.3, "gamma": 1.5}),
    "margin_ranking": ("margin_ranking_loss", lambda r: [_normal(r), _normal(r, 1, 5), _signs(r)], {"margin": 0.1}),
    "hinge_embedding": ("hinge_embedding_loss", lambda r: [r.uniform(0.1, 2, SHAPE), _signs(r)], {"margin": 1.3}),
    "soft_margin": ("soft_margin_loss", lambda r: [_normal(r), _signs(r)], {}),
    "multilabel_soft_margin": ("multilabel_soft_margin_loss", lambda r: [_normal(r), (r.random(SHAPE) < 0.5) * 1.0],
                               {"weight": lambda r: r.uniform(0.2, 1.5, 5)}),
    "multilabel_broadcast_input": ("multilabel_soft_margin_loss",
                                   lambda r: [_normal(r, 3, 1), (r.random(SHAPE) < 0.5) * 1.0], {}),
    "margin_ranking_broadcast_input1": ("margin_ranking_loss", lambda r: [_normal(r, 3, 1), _normal(r), _signs(r)],
                                        {}),
}


def _call(rng, case, dtype):
    """``(name, host args, host options)`` of a case, its float arrays in ``dtype``."""
    name, make, options = CASES[case]
    args = [np.asarray(a, dtype) for a in make(rng)]
    options = {k: (np.asarray(v(rng), dtype) if callable(v) else v) for k, v in options.items()}
    return name, args, options


def _device(cuda, values):
    return [cuda.to_device(v) if isinstance(v, np.ndarray) else v for v in values]


def _assert_close(actual, expected, dtype):
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            _assert_close(a, e, dtype)
        return
    assert core.is_device_array(actual), type(actual)
    value = host(actual)
    assert value.shape == np.shape(expected) and value.dtype == np.dtype(dtype)
    np.testing.assert_allclose(value, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_value_and_gradient_match_the_cpu(cuda, rng, case, dtype):
    name, args, options = _call(rng, case, dtype)
    function = getattr(fl, name)
    # float32 runs the two kinds of result (the simulator is slow; float64 covers the rest)
    reductions = ("none", "sum", "mean") if dtype == np.float64 else ("none", "mean")
    reductions += ("batchmean",) if name == "kl_div" else ()
    device_options = dict(zip(options, _device(cuda, list(options.values()))))
    for reduction in reductions:
        expected = function(*args, **options, reduction=reduction, grad=True)  # the CPU function
        actual = function(*_device(cuda, args), **device_options, reduction=reduction, grad=True)
        _assert_close(actual, expected, dtype)
    if dtype == np.float64:  # the loss alone: the driver without gradients
        loss_only = function(*_device(cuda, args), **device_options, reduction="mean")
        _assert_close(loss_only, function(*args, **options, reduction="mean"), dtype)


@pytest.mark.parametrize("case", ["mse_weight", "gaussian_per_row", "bce_logits_pos_weight", "margin_ranking"])
def test_host_secondary_arguments(cuda, rng, case):
    """Only the first data argument on the device: targets, weights and variances from the host."""
    name, args, options = _call(rng, case, np.float64)
    function = getattr(fl, name)
    expected = function(*args, **options, grad=True)
    _assert_close(function(cuda.to_device(args[0]), *args[1:], **options, grad=True), expected, np.float64)


@pytest.mark.parametrize("case", ["l1_weight", "gaussian", "bce", "multilabel_soft_margin", "hinge_embedding"])
@pytest.mark.parametrize("where", ["host", "device"])
def test_grad_output(cuda, rng, case, where):
    name, args, options = _call(rng, case, np.float64)
    function = getattr(fl, name)
    put = cuda.to_device if where == "device" else (lambda a: a)
    d_args, d_options = _device(cuda, args), dict(zip(options, _device(cuda, list(options.values()))))
    rows = (3,) if name == "multilabel_soft_margin_loss" else SHAPE
    for reduction, g in (("none", rng.standard_normal(rows)), ("none", np.array(0.5)), ("mean", np.array(-2.5)),
                         ("sum", np.array(3.0))):
        expected = function(*args, **options, reduction=reduction, grad=True, grad_output=g)  # the CPU function
        actual = function(*d_args, **d_options, reduction=reduction, grad=True, grad_output=put(g))
        _assert_close(actual, expected, np.float64)


@pytest.mark.parametrize("case", ["mse_weight", "gaussian_per_row", "bce_logits", "margin_ranking",
                                  "margin_ranking_broadcast_input1"])
def test_grad_out_in_place(cuda, rng, case):
    """grad_out=input: the gradient overwrites the input, as the CPU's (whose numbers it has)."""
    name, args, options = _call(rng, case, np.float64)
    function = getattr(fl, name)
    value, grads = function(*args, **options, grad=True)
    expected_dx = grads[0] if isinstance(grads, tuple) else grads
    x = cuda.to_device(args[0])
    result = function(x, *_device(cuda, args[1:]), **dict(zip(options, _device(cuda, list(options.values())))),
                      grad=True, grad_out=x)
    returned = result[1][0] if isinstance(result[1], tuple) else result[1]
    assert returned is x
    np.testing.assert_allclose(host(x), expected_dx, rtol=1e-10)
    np.testing.assert_allclose(host(result[0]), value, rtol=1e-10)


def test_grad_out_apart_and_strided(cuda, rng):
    """A separate grad_out, and strided (non-contiguous, negative) input and target."""
    wide = rng.standard_normal((3, 10))
    target = rng.standard_normal((3, 10))
    expected = fl.huber_loss(wide[:, ::2], target[:, 1::2], grad=True)  # the CPU function
    out = cuda.device_array((3, 5))
    loss, grad = fl.huber_loss(cuda.to_device(wide)[:, ::2], cuda.to_device(target)[:, 1::2], grad=True, grad_out=out)
    assert grad is out
    np.testing.assert_allclose(host(out), expected[1], rtol=1e-10)
    np.testing.assert_allclose(host(loss), expected[0], rtol=1e-10)
    reversed_rows = fl.huber_loss(cuda.to_device(wide)[::-1, ::-2], target[::-1, ::-2], reduction="none")
    np.testing.assert_allclose(host(reversed_rows), fl.huber_loss(wide[::-1, ::-2], target[::-1, ::-2],
                                                                  reduction="none"), rtol=1e-10)


def test_many_blocks_and_broadcast_axes(cuda, rng):
    """More elements than the grid's threads (the grid-stride loop), a target broadcast
    along a middle axis (strided reads), and gradients summed over one and two broadcast axes."""
    x = rng.standard_normal((4, 6, 9))
    y = rng.standard_normal((4, 1, 9))
    var = rng.uniform(0.5, 2, (4, 6, 1))
    x2 = rng.standard_normal((1, 6, 1))
    for reduction in ("none", "mean"):
        expected = fl.gaussian_nll_loss(x, y, var, reduction=reduction, grad=True)  # the CPU function
        actual = fl.gaussian_nll_loss(cuda.to_device(x), cuda.to_device(y), cuda.to_device(var), reduction=reduction,
                                      grad=True)
        _assert_close(actual, expected, np.float64)
        expected = fl.margin_ranking_loss(x, x2, np.sign(y), reduction=reduction, grad=True)  # the CPU function
        actual = fl.margin_ranking_loss(cuda.to_device(x), cuda.to_device(x2), np.sign(y), reduction=reduction,
                                        grad=True)
        _assert_close(actual, expected, np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rounds_of_several_elements_a_thread(cuda, rng, dtype, monkeypatch):
    """More elements than the grid's threads times the elements a thread loads at once
    (1500 > 4 blocks x 32 threads x 4 under the simulator: three rounds, the last one
    partial), every operand contiguous (the flat kernel) and with a target broadcast along
    an axis (strided reads): the losses, their sum and the gradient."""
    from fastloss._core import cuda_elementwise

    layouts = []
    driver = cuda_elementwise.driver
    monkeypatch.setattr(cuda_elementwise, "driver", lambda *key: layouts.append(key[2]) or driver(*key))
    x = rng.standard_normal((30, 50)).astype(dtype)
    for target in (rng.standard_normal((30, 50)).astype(dtype), rng.standard_normal((30, 1)).astype(dtype)):
        for reduction in ("none", "sum"):
            expected = fl.smooth_l1_loss(x, target, reduction=reduction, beta=0.5, grad=True)  # the CPU function
            actual = fl.smooth_l1_loss(cuda.to_device(x), cuda.to_device(target), reduction=reduction, beta=0.5,
                                       grad=True)
            _assert_close(actual, expected, dtype)
    assert layouts == [True, True, False, False]


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_empty_input(cuda, reduction):
    x = np.zeros((0, 5))
    expected = fl.mse_loss(x, x, reduction=reduction, grad=True)  # the CPU function: NaN for the mean
    actual = fl.mse_loss(cuda.to_device(x), cuda.to_device(x), reduction=reduction, grad=True)
    assert host(actual[0]).shape == np.shape(expected[0]) and host(actual[1]).shape == (0, 5)
    np.testing.assert_array_equal(host(actual[0]), expected[0])


@pytest.mark.parametrize("bad", ["input", "target"])
def test_bce_bad_probability_raises_the_cpu_error(cuda, rng, bad):
    x, y = rng.uniform(0.1, 0.9, SHAPE), rng.random(SHAPE)
    (x if bad == "input" else y)[1, 2] = 1.5
    (x if bad == "input" else y)[2, 0] = -0.5
    with pytest.raises(ValueError) as cpu_error:
        fl.binary_cross_entropy(x, y)
    with pytest.raises(ValueError, match=r"found 1\.5") as gpu_error:
        fl.binary_cross_entropy(cuda.to_device(x), cuda.to_device(y))
    assert str(gpu_error.value) == str(cpu_error.value)


def test_negative_variance_raises_the_cpu_error(cuda, rng):
    x, y, var = rng.standard_normal(SHAPE), rng.standard_normal(SHAPE), rng.uniform(0.5, 1, 3)
    var[1] = -0.25
    with pytest.raises(ValueError) as cpu_error:
        fl.gaussian_nll_loss(x, y, var)
    with pytest.raises(ValueError) as gpu_error:
        fl.gaussian_nll_loss(cuda.to_device(x), cuda.to_device(y), cuda.to_device(var))
    assert str(gpu_error.value) == str(cpu_error.value)


def test_checks_off_give_nan_without_raising(cuda, rng):
    x, y = rng.uniform(0.1, 0.9, SHAPE), rng.random(SHAPE)
    x[1, 2] = 1.5
    previous = fl.set_device_checks(False)
    try:
        loss, grad = fl.binary_cross_entropy(cuda.to_device(x), cuda.to_device(y), reduction="none", grad=True)
    finally:
        fl.set_device_checks(previous)
    loss, grad = host(loss), host(grad)
    assert np.isnan(loss[1, 2]) and np.isnan(grad[1, 2])
    ok = np.ones(SHAPE, bool)
    ok[1, 2] = False
    x[1, 2] = 0.5  # the valid elements match the CPU's numbers
    expected_loss, expected_grad = fl.binary_cross_entropy(x, y, reduction="none", grad=True)
    np.testing.assert_allclose(loss[ok], expected_loss[ok], rtol=1e-10)
    np.testing.assert_allclose(grad[ok], expected_grad[ok], rtol=1e-10)


def test_shape_and_option_errors_are_the_cpu_ones(cuda, rng):
    x = cuda.to_device(rng.standard_normal(SHAPE))
    with pytest.raises(ValueError, match="does not broadcast to the input's shape"):
        fl.mse_loss(x, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="reduction must be one of"):
        fl.l1_loss(x, np.zeros(SHAPE), reduction="avg")
    with pytest.raises(ValueError, match="delta must be"):
        fl.huber_loss(x, np.zeros(SHAPE), delta=-1.0)
    with pytest.raises(ValueError, match="grad_output must be a scalar"):
        fl.mse_loss(x, np.zeros(SHAPE), grad=True, grad_output=np.ones(3))
    with pytest.raises(TypeError, match="must be a floating-point array"):
        fl.mse_loss(cuda.to_device(np.zeros(SHAPE, np.int64)), np.zeros(SHAPE))


def test_other_dtypes_are_converted_on_the_device(cuda, rng):
    """float16 computes in float32 and integer or boolean targets become the input's dtype, as on the CPU."""
    x = rng.standard_normal(SHAPE).astype(np.float16)
    labels = rng.integers(0, 2, SHAPE)
    expected = fl.soft_margin_loss(x, 2 * labels - 1, grad=True)  # the CPU function
    actual = fl.soft_margin_loss(cuda.to_device(x), cuda.to_device(2 * labels - 1), grad=True)
    _assert_close(actual, expected, np.float32)
    x64 = rng.standard_normal(SHAPE)
    expected = fl.binary_cross_entropy_with_logits(x64, labels.astype(bool), grad=True)
    _assert_close(fl.binary_cross_entropy_with_logits(cuda.to_device(x64), cuda.to_device(labels.astype(bool)),
                                                      grad=True), expected, np.float64)
    g = rng.standard_normal(SHAPE).astype(np.float32)  # grad_output of another dtype
    expected = fl.mse_loss(x64, x64[::-1], reduction="none", grad=True, grad_output=g)
    _assert_close(fl.mse_loss(cuda.to_device(x64), x64[::-1], reduction="none", grad=True,
                              grad_output=cuda.to_device(g)), expected, np.float64)


ENTRY_POINTS = ["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "poisson_nll_loss", "gaussian_nll_loss",
                "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div", "sigmoid_focal_loss",
                "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss", "multilabel_soft_margin_loss"]


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_points_take_the_public_parameters(name):
    entry = core.entry_point(name, getattr(fl, name).__module__)
    assert inspect.signature(entry).parameters.keys() == inspect.signature(getattr(fl, name)).parameters.keys()
    for (a, pa), (b, pb) in zip(inspect.signature(entry).parameters.items(),
                                inspect.signature(getattr(fl, name)).parameters.items()):
        assert (a, pa.kind, pa.default) == (b, pb.kind, pb.default)
