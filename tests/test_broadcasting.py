"""Inputs of different shapes that torch broadcasts together.

Expected numbers: torch 2.13 CPU (``torch.nn.functional``'s function of the same name) on
the same fresh random arrays, in the tested dtype; each gradient summed back to its own
argument's shape, as torch's backward of a broadcast sums it. Where torch raises on the
shapes, fastloss raises a ValueError naming the argument.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from conftest import assert_close, check_against_torch, grad_output_for


def _signs(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def _normal(rng, shape):
    return rng.standard_normal(shape)


def _labels(rng, shape):
    return (rng.random(shape) < 0.5).astype(float)


# name: (how each argument is drawn, its differentiable positions, the shapes to try)
LOSSES = {
    "triplet_margin_loss": ((_normal, _normal, _normal), (0, 1, 2), [
        ((4, 3), (1, 3), (4, 3)), ((1, 3), (1, 3), (4, 3)), ((4, 3), (4, 1), (4, 3)), ((4, 3), (4, 3), (1, 1)),
        ((3,), (1,), (3,)), ((2, 4, 3), (1, 4, 3), (2, 1, 1)), ((1, 3), (5, 3), (1, 3))]),
    "cosine_embedding_loss": ((_normal, _normal, _signs), (0, 1), [
        ((4, 3), (1, 3), (4,)), ((1, 3), (4, 3), (4,)), ((4, 3), (1, 3), (1,)), ((1, 3), (1, 3), (4,)),
        ((4, 3), (4, 3), (1,)),
        # a single feature against 3: torch takes each squared norm over the input's own features
        ((4, 1), (4, 3), (4,)), ((4, 3), (1, 1), (4,)), ((1, 1), (4, 5), (1,)), ((3,), (1,), ()), ((4, 1), (4, 0), (4,))]),
    "margin_ranking_loss": ((_normal, _normal, _signs), (0, 1), [
        ((5,), (1,), (5,)), ((5,), (5,), (1,)), ((1,), (5,), (1,)), ((1,), (1,), (5,)), ((1, 5), (4, 1), (1, 1)),
        ((4, 1), (4, 5), (4, 5))]),
    "multilabel_soft_margin_loss": ((_normal, _labels), (0,), [
        ((4, 3), (1, 3)), ((4, 3), (3,)), ((4, 3), (4, 1)), ((4, 3), ()), ((1, 3), (4, 3)), ((4, 1), (4, 3)),
        ((4, 3, 2), (3, 2)), ((3,), (4, 3)), ((3, 2), (4, 3, 2))]),
}
CASES = [(name, shapes) for name, (_, _, all_shapes) in LOSSES.items() for shapes in all_shapes]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("name, shapes", CASES)
def test_broadcast_as_torch(rng, name, shapes, reduction, dtype):
    draws, diff, _ = LOSSES[name]
    inputs = [draw(rng, shape).astype(dtype) for draw, shape in zip(draws, shapes)]
    with torch.no_grad():
        loss_shape = getattr(F, name)(*map(torch.tensor, inputs), reduction="none").shape
    kwargs = {"reduction": reduction}
    check_against_torch(getattr(fl, name), getattr(F, name), inputs, dtype, diff=diff,
                        grad_output=np.asarray(grad_output_for(rng, reduction, tuple(loss_shape)), dtype),
                        fl_kwargs=kwargs)


# torch's distances of triplet_margin_with_distance_loss's named ones (its docstring's definitions)
TORCH_DISTANCES = {None: None, "euclidean": lambda u, v: torch.linalg.vector_norm(u - v, dim=-1),
                   "cosine": lambda u, v: 1 - F.cosine_similarity(u, v, dim=-1)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("distance", list(TORCH_DISTANCES))
@pytest.mark.parametrize("shapes", LOSSES["triplet_margin_loss"][2])
def test_triplet_with_distance_broadcast_as_torch(rng, shapes, distance, swap, dtype):
    inputs = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    options = {"margin": 0.9, "swap": swap, "reduction": "none"}
    with torch.no_grad():
        loss_shape = F.triplet_margin_with_distance_loss(*map(torch.tensor, inputs), **options).shape
    check_against_torch(fl.triplet_margin_with_distance_loss, F.triplet_margin_with_distance_loss, inputs, dtype,
                        diff=(0, 1, 2), grad_output=np.asarray(grad_output_for(rng, "none", tuple(loss_shape)), dtype),
                        fl_kwargs={**options, "distance_function": distance},
                        torch_kwargs={**options, "distance_function": TORCH_DISTANCES[distance]})


@pytest.mark.parametrize("shapes", LOSSES["triplet_margin_loss"][2])
def test_triplet_with_callable_distance_broadcast_as_torch(rng, shapes):
    """A Python callable gets the arrays as given, and its distances broadcast, as in torch."""
    inputs = [rng.standard_normal(shape) for shape in shapes]
    got = fl.triplet_margin_with_distance_loss(*inputs, distance_function=lambda u, v: np.abs(u - v).sum(-1),
                                               swap=True, reduction="none")
    want = F.triplet_margin_with_distance_loss(*map(torch.tensor, inputs), swap=True, reduction="none",
                                               distance_function=lambda u, v: (u - v).abs().sum(-1))
    assert_close(got, want.numpy(), np.float64)


@pytest.mark.parametrize("name, shapes", [case for case in CASES if LOSSES[case[0]][2][0] != case[1]])
def test_broadcast_grad_out(rng, name, shapes):
    """``grad_out`` of the first input's own shape receives its summed gradient."""
    draws, _, _ = LOSSES[name]
    inputs = [draw(rng, shape) for draw, shape in zip(draws, shapes)]
    value, grads = getattr(fl, name)(*inputs, grad=True)
    first = grads[0] if isinstance(grads, tuple) else grads
    out = np.empty(np.shape(inputs[0]))
    value2, grads2 = getattr(fl, name)(*inputs, grad=True, grad_out=out)
    assert (grads2[0] if isinstance(grads2, tuple) else grads2) is out
    np.testing.assert_array_equal(out, first)
    np.testing.assert_array_equal(value2, value)


@pytest.mark.parametrize("call, match", [
    # torch: "expected to have the same number of dimensions"
    (lambda: fl.triplet_margin_loss(np.zeros((4, 3)), np.zeros(3), np.zeros((4, 3))), "positive has shape"),
    # torch: "The size of tensor a (4) must match the size of tensor b (2)"
    (lambda: fl.triplet_margin_loss(np.zeros((4, 3)), np.zeros((4, 3)), np.zeros((2, 3))), "negative has shape"),
    (lambda: fl.cosine_embedding_loss(np.zeros((4, 3)), np.zeros(3), np.ones(4)), "input2 has shape"),
    (lambda: fl.cosine_embedding_loss(np.zeros((1, 3)), np.zeros((4, 3)), np.ones(2)), "target has shape"),
    (lambda: fl.cosine_embedding_loss(np.zeros((4, 3)), np.zeros((4, 3)), np.ones(())), "target has shape"),
    (lambda: fl.margin_ranking_loss(np.zeros((4, 5)), np.zeros(5), np.ones(5)), "same number of dimensions"),
    (lambda: fl.margin_ranking_loss(np.zeros(5), np.zeros(4), np.ones(5)), "input2 has shape"),
    (lambda: fl.margin_ranking_loss(np.zeros(5), np.zeros(5), np.ones(3)), "target has shape"),
    (lambda: fl.multilabel_soft_margin_loss(np.zeros((4, 3)), np.zeros((2, 3))), "target has shape"),
])
def test_shapes_torch_refuses(call, match):
    with pytest.raises(ValueError, match=match):
        call()

