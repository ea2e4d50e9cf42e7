"""fastloss.torch in training loops: torch.compile, autograd's corners, whole training steps.

Expected numbers come from torch: ``torch.nn.functional``'s losses (or the tests'
``references`` compositions) differentiated by torch autograd on the same fresh random
inputs, and, for the training steps, the same model trained from the same initial
parameters with torch's criterion (:func:`fastloss.benchmarks.training_step`). Compiled
calls are also compared with the eager ones, which tests/test_torch.py compares with torch.
Inductor compiles slowly on 2 cores: one loss goes through it, two more through ``aot_eager``.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss.torch as flt
from conftest import assert_close
from fastloss.benchmarks import TRAINING, training_step
from references import cosface_torch


def _leaf(rng, *shape, dtype=torch.float64):
    return torch.tensor(rng.standard_normal(shape), dtype=dtype, requires_grad=True)


def _compiled_and_eager(fn, backend, leaves, *rest):
    """``fn``'s value and its leaves' gradients, compiled with ``fullgraph=True`` (no graph
    break) and eager."""
    results = []
    for f in (torch.compile(fn, fullgraph=True, backend=backend), fn):
        value = f(*leaves, *rest)
        grads = torch.autograd.grad(value, leaves)
        results.append((value.detach(), grads))
    return results


@pytest.mark.parametrize("backend, reduction", [("aot_eager", "mean"), ("aot_eager", "none"), ("inductor", "mean")])
def test_compiled_cross_entropy(rng, backend, reduction):
    """Around other operations, in one graph; "none" backward calls the operator again."""
    x = _leaf(rng, 6, 5, dtype=torch.float32)
    t = torch.tensor(rng.integers(0, 5, 6))
    w = torch.tensor(rng.uniform(0.5, 1.5, 5), dtype=torch.float32)

    def step(x, t, loss):
        return loss(torch.tanh(x) * 2, t, weight=w, label_smoothing=0.1, reduction=reduction).square().sum()

    (value, grads), (eager, eager_grads) = _compiled_and_eager(lambda x, t: step(x, t, flt.cross_entropy),
                                                               backend, [x], t)
    expected = step(x, t, F.cross_entropy)
    expected_grad, = torch.autograd.grad(expected, x)
    assert_close(value, expected.detach(), np.float32, scale=4)
    assert_close(grads[0], expected_grad, np.float32, scale=4)
    assert_close(value, eager, np.float32)
    assert_close(grads[0], eager_grads[0], np.float32)


def test_compiled_criterion_with_two_differentiable_inputs(rng):
    """CosFace's criterion: gradients reach both the features and the class weights."""
    features, weight = _leaf(rng, 6, 4), _leaf(rng, 5, 4)
    labels = torch.tensor(rng.integers(0, 5, 6))
    criterion = flt.LargeMarginCosineLoss(s=8.0)
    (value, grads), _ = _compiled_and_eager(lambda f, w, y: criterion(f, w, y), "aot_eager", [features, weight],
                                            labels)
    expected = cosface_torch(features, weight, labels, s=8.0)
    expected_grads = torch.autograd.grad(expected, [features, weight])
    assert_close(value, expected.detach(), np.float64)
    for grad, expected_grad in zip(grads, expected_grads):
        assert_close(grad, expected_grad, np.float64)


def test_compiled_criterion_of_two_tensors(rng):
    """A criterion of two tensors (Loss.forward's short form in eager) traces as the operator."""
    x = _leaf(rng, 6, 5)
    t = torch.tensor(rng.integers(0, 5, 6))
    criterion = flt.CrossEntropyLoss(label_smoothing=0.1)
    (value, grads), (eager, eager_grads) = _compiled_and_eager(lambda x, t: criterion(torch.tanh(x), t), "aot_eager",
                                                               [x], t)
    expected = F.cross_entropy(torch.tanh(x), t, label_smoothing=0.1)
    assert_close(value, expected.detach(), np.float64)
    assert_close(grads[0], torch.autograd.grad(expected, x)[0], np.float64)
    assert_close(value, eager, np.float64)
    assert_close(grads[0], eager_grads[0], np.float64)


def test_operators_are_registered_for_every_loss():
    for name in flt.__all__:
        if name[0].islower() and name not in ("functional", "module"):
            assert hasattr(torch.ops.fastloss, name), name


def test_gradients_reach_non_leaf_and_strided_inputs_of_both_arguments(rng):
    a, b = _leaf(rng, 8), _leaf(rng, 4, 4)
    y = torch.tensor(np.where(rng.random(8) < 0.5, -1.0, 1.0))

    def grads(loss):  # the first input a non-leaf, the second a strided (non-contiguous) view
        x2 = b.t().reshape(-1)[::2]
        assert not x2.is_contiguous()
        return torch.autograd.grad(loss(a * 3, x2, y, margin=0.1), [a, b])

    ours, expected = grads(flt.margin_ranking_loss), grads(F.margin_ranking_loss)
    for grad, expected_grad in zip(ours, expected):
        assert_close(grad, expected_grad, np.float64)


def test_retained_graph_after_the_gradient_was_handed_over(rng):
    """The first backward hands the fused gradient to autograd (no copy); a retained graph's
    next backward computes it again, unless an input changed in place meanwhile."""
    x = _leaf(rng, 4, 3)
    t = torch.tensor(rng.integers(0, 3, 4))
    loss = flt.cross_entropy(x, t)
    loss.backward(retain_graph=True)
    once = x.grad.clone()
    (2 * loss).backward(retain_graph=True)
    assert_close(x.grad, 3 * once, np.float64)
    with torch.no_grad():
        x.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("problem", sorted(TRAINING))
def test_training_steps_follow_torch(problem):
    """A few SGD steps of each benchmarked training problem in float64, from the same
    initial parameters: fastloss's criterion and torch's give the same losses and parameters."""
    (ours, ours_model), (theirs, their_model) = (training_step(problem, impl, "float64") for impl in
                                                 ("fastloss", "torch"))
    losses = np.array([(ours(), theirs()) for _ in range(5)])
    np.testing.assert_allclose(losses[:, 0], losses[:, 1], rtol=1e-9)
    for p, q in zip(ours_model.parameters(), their_model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-7, atol=1e-9)
