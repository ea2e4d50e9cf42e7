"""The GPU entry points of fastloss.embedding (cosine_embedding_loss, triplet_margin_loss,
triplet_margin_with_distance_loss, contrastive_loss). Every expected number comes from the
CPU public function (``fastloss.<loss>``, itself tested against torch) on the same host arrays."""
import numpy as np
import pytest
from agree import assert_agree, assert_same_signature
from conftest import host

import fastloss
from fastloss._core import cuda as core
from fastloss.embedding import cuda as gpu

DTYPES = (np.float32, np.float64)
REDUCTIONS = ("none", "sum", "mean")


def both(name, args, cuda, **options):
    """(the GPU entry point's result with the arrays of ``args`` on the device, the CPU
    function's on ``args``)."""
    device = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    return getattr(gpu, name)(*device, **options), getattr(fastloss, name)(*args, **options)


def inputs(rng, n, shape=(2, 5), dtype=np.float64):
    return [rng.standard_normal(shape).astype(dtype) for _ in range(n)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cosine_embedding_matches_the_cpu(cuda, rng, dtype, reduction):
    x1, x2 = inputs(rng, 2, (3, 5), dtype)
    y = np.array([1, -1, 0])  # 0 selects neither term, as in torch
    assert_agree(*both("cosine_embedding_loss", (x1, x2, y), cuda, margin=-0.2, reduction=reduction, grad=True), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_contrastive_matches_the_cpu(cuda, rng, dtype, reduction):
    x1, x2 = inputs(rng, 2, (2, 5), dtype)
    y = np.array([1, 0])
    assert_agree(*both("contrastive_loss", (x1, x2, y), cuda, margin=4.0, reduction=reduction, grad=True), dtype)


@pytest.mark.parametrize("p, swap", [(2.0, True), (1.0, False), (3.0, True), (0.5, False), (1.5, False),
                                     (np.inf, True), (-np.inf, False), (0.0, False)])
def test_triplet_matches_the_cpu_for_every_p(cuda, rng, p, swap):
    a, pos, neg = inputs(rng, 3)
    assert_agree(*both("triplet_margin_loss", (a, pos, neg), cuda, margin=3.0, p=p, eps=1e-3, swap=swap,
                       grad=True), np.float64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_triplet_float32(cuda, rng, reduction):
    a, pos, neg = inputs(rng, 3, (2, 5), np.float32)
    assert_agree(*both("triplet_margin_loss", (a, pos, neg), cuda, margin=2.0, swap=True, reduction=reduction,
                       grad=True), np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("distance, swap", [(None, False), ("euclidean", True), ("cosine", True),
                                            ("cosine", False)])
def test_triplet_with_distance_matches_the_cpu(cuda, rng, dtype, distance, swap):
    a, pos, neg = inputs(rng, 3, (2, 5), dtype)
    assert_agree(*both("triplet_margin_with_distance_loss", (a, pos, neg), cuda, distance_function=distance,
                       margin=1.5, swap=swap, reduction="sum", grad=True), dtype)


def test_other_shapes_and_values_without_gradient(cuda, rng):
    a, pos, neg = inputs(rng, 3, (2, 1, 3))  # rows of any number of dimensions
    assert_agree(*both("triplet_margin_loss", (a, pos, neg), cuda, reduction="none"), np.float64)
    a, pos, neg = inputs(rng, 3, (2, 1))  # a single feature: |entry|, as torch
    assert_agree(*both("triplet_margin_loss", (a, pos, neg), cuda, p=3.0, grad=True), np.float64)
    x1, x2 = inputs(rng, 2, (4,))  # one pair, a 0-d label
    assert_agree(*both("cosine_embedding_loss", (x1, x2, np.array(-1)), cuda, grad=True), np.float64)
    assert_agree(*both("contrastive_loss", (x1, x2, np.array(1)), cuda, reduction="none", grad=True), np.float64)


@pytest.mark.parametrize("where", ("host", "device"))
def test_grad_output_array_and_scalar(cuda, rng, where):
    a, pos, neg = inputs(rng, 3)
    g = rng.standard_normal(2)
    put = cuda.to_device if where == "device" else (lambda v: v)
    for reduction, go in (("none", g), ("none", np.array(2.5)), ("mean", np.array(-1.5))):
        got, want = both("triplet_margin_loss", (a, pos, neg), cuda, margin=3.0, reduction=reduction, grad=True,
                         grad_output=put(go))
        assert_agree(got, want, np.float64)


def test_gradient_in_place(cuda, rng):
    a, pos, neg = inputs(rng, 3)
    for name, args, options in (("triplet_margin_with_distance_loss", (a, pos, neg), {"distance_function": "cosine",
                                                                                    "swap": True, "margin": 2.0}),
                                ("cosine_embedding_loss", (a, pos, np.array([1, -1])), {"margin": -1.0})):
        want = getattr(fastloss, name)(*args, grad=True, **options)
        device = [cuda.to_device(v) for v in args]
        loss, grads = getattr(gpu, name)(*device, grad=True, grad_out=device[0], **options)
        assert grads[0] is device[0]
        assert_agree((loss, grads), want, np.float64)


def test_empty_batch(cuda):
    a = np.empty((0, 3))
    for reduction in REDUCTIONS:
        assert_agree(*both("triplet_margin_loss", (a, a, a), cuda, reduction=reduction, grad=True), np.float64)


def test_bad_labels_raise_the_cpu_error_and_checks_off_gives_nan(cuda, rng):
    x1, x2 = inputs(rng, 2, (3, 4))
    y = np.array([1, 2, -1])
    with pytest.raises(ValueError) as cpu_error:
        fastloss.contrastive_loss(x1, x2, y)
    with pytest.raises(ValueError) as gpu_error:  # found by the kernel: the flag is read
        gpu.contrastive_loss(cuda.to_device(x1), cuda.to_device(x2), cuda.to_device(y), grad=True)
    assert str(gpu_error.value) == str(cpu_error.value)
    previous = core.set_device_checks(False)
    try:
        loss, (g1, g2) = gpu.contrastive_loss(cuda.to_device(x1), cuda.to_device(x2), cuda.to_device(y),
                                              reduction="none", grad=True)
    finally:
        core.set_device_checks(previous)
    loss, g1 = host(loss), host(g1)
    assert np.isnan(loss[1:]).all() and np.isnan(g1[1:]).all()
    want = fastloss.contrastive_loss(x1[:1], x2[:1], y[:1], reduction="none", grad=True)
    assert_agree((cuda.to_device(loss[:1]), (cuda.to_device(g1[:1]), cuda.to_device(host(g2)[:1]))), want,
                 np.float64)


def test_what_the_gpu_does_not_cover_raises_type_error(cuda, rng):
    a, pos, neg = (cuda.to_device(v) for v in inputs(rng, 3))
    with pytest.raises(TypeError, match="callable, which cannot run on the GPU"):
        gpu.triplet_margin_with_distance_loss(a, pos, neg, distance_function=lambda u, v: u - v)
    with pytest.raises(TypeError, match="must have one shape"):
        gpu.triplet_margin_loss(a, pos, cuda.to_device(rng.standard_normal((1, 5))))
    with pytest.raises(ValueError, match="does not broadcast"):  # the CPU path's error where the CPU raises
        gpu.triplet_margin_loss(a, pos, cuda.to_device(rng.standard_normal((3, 5))))
    with pytest.raises(ValueError, match="margin must be"):
        gpu.triplet_margin_loss(a, pos, neg, margin=-1.0)
    with pytest.raises(ValueError, match="target has shape"):
        gpu.contrastive_loss(a, pos, np.array([1, 0, 1]))


def test_a_grad_out_overlapping_what_is_read_is_refused(cuda, rng):
    """As the CPU path (fastloss._core.layout.check_no_overlap): no launch, ValueError."""
    big = cuda.to_device(rng.standard_normal((3, 5)))
    pos, neg = (cuda.to_device(v) for v in inputs(rng, 2))
    with pytest.raises(ValueError, match="overlaps the input without being it"):
        gpu.triplet_margin_loss(big[1:], pos, neg, grad=True, grad_out=big[:2])
    with pytest.raises(ValueError, match="overlaps another argument"):
        gpu.triplet_margin_loss(big[1:], pos, neg, grad=True, grad_out=pos)


@pytest.mark.parametrize("name", ("cosine_embedding_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss",
                                  "contrastive_loss"))
def test_entry_points_take_the_public_parameters(name):
    assert_same_signature(getattr(gpu, name), getattr(fastloss, name))


# The simulator computes with NumPy scalars, which warn where the GPU silently gives NaN or inf.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_inf_and_zero_rows_come_out_where_the_cpu_gives_them(cuda, rng):
    a, pos, neg = inputs(rng, 3, (3, 4))
    a[0, 1], pos[1, 2], neg[2] = np.nan, np.inf, a[2]  # a NaN, an inf, a zero distance
    zero = np.zeros((2, 4))
    for name, args, options in (("triplet_margin_loss", (a, pos, neg), {"p": 0.5, "swap": True}),
                                ("triplet_margin_loss", (a, pos, neg), {"p": np.inf, "swap": True}),
                                ("triplet_margin_loss", (zero, zero, zero), {"p": 3.0, "eps": 0.0}),
                                ("triplet_margin_with_distance_loss", (zero, zero, zero), {"distance_function": "cosine"}),
                                ("cosine_embedding_loss", (zero, zero, np.array([1, -1])), {}),
                                ("contrastive_loss", (a, pos, np.array([1, 0, 1])), {})):
        assert_agree(*both(name, args, cuda, reduction="none", grad=True, **options), np.float64)
