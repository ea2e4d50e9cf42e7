"""fastloss.torch: every loss through torch autograd.

Expected numbers come from torch: ``torch.autograd.gradcheck`` (central finite
differences of the wrapper's own value, float64) for the gradients; torch's own
``torch.nn.functional`` loss and ``torch.nn`` criterion of the same name, differentiated
by torch autograd, wherever torch has one; and the NumPy API (tested against torch in
the family test files) for the wrapper's plumbing. The cases (tests/loss_cases.py) are
keyed by loss name and checked to cover every loss of fastloss, so a new loss fails here
until it has one.
"""
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
import fastloss.torch as flt
from conftest import assert_close
from loss_cases import CASES, LOSSES, _ctc, _normal, data
from fastloss._core.table import LOSSES as TABLE
from fastloss._core.criterion import Criterion
from fastloss.benchmarks import mlp_sgd

pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")


CRITERIA = {name: value for name, value in vars(fl).items() if isinstance(value, type) and issubclass(value, Criterion)}
MODULE_OF = {value.function.__name__: name for name, value in CRITERIA.items()}
TORCH_LOSSES = [name for name in LOSSES if hasattr(F, name)]
# Modules that hold parameters (the head of LinearCrossEntropyLoss) take no inputs' options:
# test_linear_cross_entropy.py compares them with torch's.
HOLDS_PARAMETERS = {"linear_cross_entropy"}


def _params(names):
    return [(name, reduction) for name in names for reduction in CASES[name].reductions]


def _tensors(call, diff):
    """The arguments as tensors, the differentiable ones as leaves requiring grad."""
    tensors = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in call.items()}
    for k in diff:
        tensors[k].requires_grad_(True)
    return tensors


def _value_and_grads(loss_fn, tensors, diff, through, grad_output):
    """``loss_fn(**inputs)`` (``through`` applied to the first differentiable leaf) and the
    leaves' gradients after ``backward(grad_output)``."""
    inputs = dict(tensors)
    if through is not None:
        inputs[diff[0]] = through(inputs[diff[0]])
    value = loss_fn(**inputs)
    value.backward(torch.as_tensor(grad_output, dtype=value.dtype).expand(value.shape))
    grads = [tensors[k].grad.numpy().copy() for k in diff]
    for k in diff:
        tensors[k].grad = None
    return value.detach().numpy(), grads


def _grad_output(rng, name, reduction, call):
    if reduction != "none":
        return 0.7
    shape = np.shape(getattr(fl, name)(**{**call, "reduction": "none"}))
    return rng.standard_normal(shape)


def test_cases_cover_every_loss():
    assert set(CASES) == set(LOSSES), "every fastloss loss needs a case here (and is then tested)"
    for name in LOSSES:
        assert getattr(flt, name).__name__ == name and name in flt.__all__
    for name in CRITERIA:
        assert issubclass(getattr(flt, name), torch.nn.Module) and name in flt.__all__


def test_import_fastloss_does_not_import_torch():
    code = "import sys, fastloss, fastloss.dask; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name, reduction", _params(n for n in LOSSES if CASES[n].gradcheck))
def test_gradcheck(rng, name, reduction):
    fn, call, diff = data(name, rng)
    tensors = _tensors(call, diff)
    loss = getattr(flt, name)

    def with_leaves(*leaves):
        return loss(**{**tensors, **dict(zip(diff, leaves)), "reduction": reduction})

    assert torch.autograd.gradcheck(with_leaves, [tensors[k] for k in diff])


@pytest.mark.parametrize("name, reduction", _params(LOSSES))
def test_same_numbers_as_numpy_api(rng, name, reduction):
    """The wrapper returns the NumPy API's value and its gradient times grad_output."""
    fn, call, diff = data(name, rng)
    call["reduction"] = reduction
    g = _grad_output(rng, name, reduction, call)
    value, grads = _value_and_grads(getattr(flt, name), _tensors(call, diff), diff, None, g)
    expected, expected_grads = fn(**call, grad=True, grad_output=g)
    np.testing.assert_array_equal(value, expected)
    expected_grads = expected_grads if isinstance(expected_grads, tuple) else (expected_grads,)
    for grad, expected_grad, k in zip(grads, expected_grads, diff):
        assert grad.shape == np.shape(call[k])
        assert_close(grad, expected_grad, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, reduction", _params(TORCH_LOSSES))
def test_against_torch(rng, name, reduction, dtype):
    """Functional form and criterion against torch.nn.functional's and torch.nn's, value and
    autograd gradients (CTC's behind a log_softmax, where torch's gradient is right)."""
    fn, call, diff = data(name, rng, dtype)
    through = CASES[name].through
    g = _grad_output(rng, name, reduction, call)
    options = {k: v for k, v in call.items() if k not in TABLE[name].data}
    tensors = _tensors({k: v for k, v in call.items() if k not in options}, diff)
    expected, expected_grads = _value_and_grads(lambda **t: getattr(F, name)(**t, **options, reduction=reduction),
                                                tensors, diff, through, g)
    candidates = [lambda **t: getattr(flt, name)(**t, **options, reduction=reduction)]
    if name not in HOLDS_PARAMETERS:
        torch_module = getattr(torch.nn, MODULE_OF[name])(**options, reduction=reduction)
        ours_module = getattr(flt, MODULE_OF[name])(**options, reduction=reduction)
        candidates += [lambda **t: ours_module(*t.values()), lambda **t: torch_module(*t.values())]
    for ours in candidates:
        value, grads = _value_and_grads(ours, tensors, diff, through, g)
        assert value.dtype == dtype and value.shape == expected.shape
        assert_close(value, expected, dtype, scale=4)
        for grad, expected_grad in zip(grads, expected_grads):
            assert_close(grad, expected_grad, dtype, scale=4)


def test_criterion_options_and_buffers(rng):
    weight = torch.tensor([1.0, 2.0, 0.5])
    crit = flt.CrossEntropyLoss(weight=weight, label_smoothing=0.1, reduction="sum")
    assert "weight" in crit.state_dict() and crit.options["label_smoothing"] == 0.1
    x = torch.tensor(_normal(rng, 4, 3), requires_grad=True)
    t = torch.tensor(rng.integers(0, 3, 4))
    crit = crit.double()  # moves the weight buffer to float64 with the module
    expected = F.cross_entropy(x, t, weight=weight.double(), label_smoothing=0.1, reduction="sum")
    assert_close(crit(x, t).detach(), expected.detach(), np.float64)
    copy = pickle.loads(pickle.dumps(crit))
    assert type(copy) is flt.CrossEntropyLoss and copy.options == crit.options
    assert repr(crit) == "CrossEntropyLoss(ignore_index=-100, reduction='sum', label_smoothing=0.1, backend=None)"
    with pytest.raises(TypeError):
        flt.CrossEntropyLoss(bogus=1)


flt_split_call = flt.split_call
PAIRED = [name for name in LOSSES if getattr(flt, name).pair is not None and name not in HOLDS_PARAMETERS]


def test_paired_criteria_are_the_two_input_ones():
    assert {"cross_entropy", "nll_loss", "focal_loss", "mse_loss", "batch_triplet_loss"} <= set(PAIRED)
    assert "ctc_loss" not in PAIRED and "margin_ranking_loss" not in PAIRED  # 4 inputs; 2 differentiable


@pytest.mark.parametrize("name", PAIRED)
def test_a_criterion_of_two_tensors_is_the_functional_call(rng, monkeypatch, name):
    """A criterion called with two tensors (input, then target) takes its short form (Loss.forward's
    pair): the functional form's value and gradient, to the bit, through the same fused
    autograd function; the calls it leaves to the general path (a target that is an array,
    reduction "none", no grad, a reduction given as a tensor option's buffer) give what the
    functional form gives too."""
    split = []
    monkeypatch.setattr(flt, "split_call", lambda *args: split.append(args[1]) or flt_split_call(*args))
    fn, call, diff = data(name, rng)
    first, second = TABLE[name].data[:2]
    plain = {k: v for k, v in call.items() if k not in (first, second) and not isinstance(v, np.ndarray)}
    crit = getattr(flt, MODULE_OF[name])(**plain)
    for reduction in CASES[name].reductions:
        crit.options["reduction"] = reduction
        for target in (torch.tensor(call[second]), call[second]):
            results = []
            short = isinstance(target, torch.Tensor) and reduction != "none"
            for loss, splits in ((lambda x: crit(x, target), 0 if short else 1),
                                 (lambda x: getattr(flt, name)(x, target, **plain, reduction=reduction), 1)):
                x = torch.tensor(call[first], requires_grad=True)
                split.clear()
                value = loss(x)
                assert len(split) == splits  # the short form splits no call
                value.sum().backward()
                results.append((value.detach().numpy(), x.grad.numpy(), type(value.grad_fn).__name__))
            (v1, g1, f1), (v2, g2, f2) = results
            np.testing.assert_array_equal(v1, v2)
            np.testing.assert_array_equal(g1, g2)
            assert f1 == f2 == ("FusedLossBackward" if reduction != "none" else "LossFunctionBackward")
        with torch.no_grad():
            x = torch.tensor(call[first], requires_grad=True)
            np.testing.assert_array_equal(crit(x, torch.tensor(call[second])),
                                          fn(call[first], call[second], **plain, reduction=reduction))


def test_strided_tensors_pass_without_copy(rng):
    leaf = torch.tensor(_normal(rng, 5, 8), requires_grad=True)
    x = leaf.t()[::2]  # (4, 5) view: transposed and strided
    t = torch.tensor(rng.integers(0, 5, 4))
    assert np.shares_memory(flt.as_array(x, "input"), leaf.detach().numpy())
    flt.cross_entropy(x, t).backward()
    reference = leaf.detach().clone().requires_grad_(True)
    F.cross_entropy(reference.t()[::2], t).backward()
    assert_close(leaf.grad, reference.grad, np.float64)


def test_backward_scales_by_the_incoming_gradient(rng):
    x = torch.tensor(_normal(rng, 4, 3), requires_grad=True)
    t = torch.tensor(rng.integers(0, 3, 4))
    flt.cross_entropy(x, t).backward()
    once = x.grad.clone()
    x.grad = None
    (3 * flt.cross_entropy(x, t)).backward()
    assert_close(x.grad, 3 * once, np.float64)
    x.grad = None
    loss = flt.cross_entropy(x, t)
    for _ in range(2):  # a retained graph gives the same gradient again
        loss.backward(retain_graph=True)
    assert_close(x.grad, 2 * once, np.float64)


def test_no_grad_and_inputs_without_grad(rng):
    x = torch.tensor(_normal(rng, 4, 3), requires_grad=True)
    t = torch.tensor(rng.integers(0, 3, 4))
    with torch.no_grad():
        assert flt.cross_entropy(x, t).grad_fn is None
    assert flt.cross_entropy(x.detach(), t).grad_fn is None
    numpy_in = flt.cross_entropy(x.detach().numpy(), t.numpy())  # arrays are taken too
    assert_close(numpy_in, flt.cross_entropy(x.detach(), t), np.float64)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_double_backward_is_refused(rng, reduction):
    x = torch.tensor(_normal(rng, 4, 3), requires_grad=True)
    loss = flt.mse_loss(x, torch.zeros(4, 3, dtype=torch.float64), reduction=reduction).sum()
    with pytest.raises(RuntimeError, match="mse_loss gives first derivatives only"):
        torch.autograd.grad(loss, x, create_graph=True)


def test_in_place_change_before_backward_is_refused(rng):
    x = torch.tensor(_normal(rng, 4, 3), requires_grad=True)
    y = x * 1
    loss = flt.mse_loss(y, torch.zeros(4, 3, dtype=torch.float64), reduction="none")
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.sum().backward()


def test_in_place_change_before_a_retained_graphs_second_backward_is_refused(rng):
    """A reduced loss of one input (FusedLoss) hands its forward call's gradient over at the
    first backward; a retained graph's second backward computes it again, from the input as
    it was, so a change in between is refused, as autograd refuses it."""
    x = torch.tensor(_normal(rng, 4, 3), requires_grad=True)
    y = x * 1
    loss = flt.cross_entropy(y, torch.tensor(rng.integers(0, 3, 4)))
    assert type(loss.grad_fn).__name__ == "FusedLossBackward"
    loss.backward(retain_graph=True)
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.complex64])
def test_requires_grad_in_an_undifferentiated_dtype(dtype):
    x = torch.zeros(4, 3, dtype=dtype, requires_grad=True)
    with pytest.raises(TypeError, match=f"requires grad in dtype {dtype}.*float32 and float64"):
        flt.mse_loss(x, torch.zeros(4, 3, dtype=dtype))


def test_target_requiring_grad_is_refused(rng):
    x, y = (torch.tensor(_normal(rng, 4, 3), requires_grad=True) for _ in range(2))
    with pytest.raises(ValueError, match="target requires grad.*only with respect to input.*detach"):
        flt.mse_loss(x, y)
    with pytest.raises(ValueError, match="weight requires grad"):
        flt.cross_entropy(x, torch.tensor([0, 1, 2, 0]), weight=torch.ones(3, requires_grad=True))


def test_narrow_floats_without_grad_compute_in_float32(rng):
    x, y = (torch.tensor(_normal(rng, 4, 3)) for _ in range(2))
    half = flt.mse_loss(x.half(), y.half())
    assert half.dtype == torch.float32
    assert half.item() == fl.mse_loss(x.half().numpy(), y.half().numpy())
    brain = flt.mse_loss(x.bfloat16(), y.bfloat16())
    assert brain.dtype == torch.float32
    assert brain.item() == fl.mse_loss(x.bfloat16().float().numpy(), y.bfloat16().float().numpy())


def test_tensors_off_the_cpu_are_refused():
    x = torch.empty(4, 3, device="meta")
    with pytest.raises(TypeError, match="input is a meta tensor: fastloss computes on the CPU and on CUDA GPUs"):
        flt.cross_entropy(x, torch.zeros(4, dtype=torch.int64))


@pytest.mark.parametrize("transform", ["grad", "vmap"])
def test_torch_func_transforms_are_refused(transform):
    """torch.func's wrapped tensors have no memory for a kernel: a TypeError that says what to
    use, from the functional form and from a criterion (a meta tensor is refused above)."""
    x, t = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    for loss in (lambda x: flt.cross_entropy(x, t), lambda x: flt.CrossEntropyLoss()(x, t),
                 lambda x: flt.margin_ranking_loss(x, 2 * x, torch.ones_like(x))):
        with pytest.raises(TypeError, match="cannot run under torch.func's transforms .* autograd"):
            getattr(torch.func, transform)(loss)(x)


BAD_CALLS = {
    "shapes": ("mse_loss", lambda r: (_normal(r, 4, 3), _normal(r, 4, 2)), {}),
    "class index": ("cross_entropy", lambda r: (_normal(r, 4, 3), np.array([0, 1, 3, 0])), {}),
    "reduction": ("cross_entropy", lambda r: (_normal(r, 4, 3), np.array([0, 1, 2, 0])), {"reduction": "avg"}),
    "integer input": ("mse_loss", lambda r: (np.ones((4, 3), np.int64), _normal(r, 4, 3)), {}),
    "ctc lengths": ("ctc_loss", lambda r: (*_ctc(r)[0][:3], np.array([2, 1])), {}),
}


@pytest.mark.parametrize("mistake", sorted(BAD_CALLS))
def test_bad_input_raises_as_the_numpy_api(rng, mistake):
    name, make, options = BAD_CALLS[mistake]
    args = make(rng)
    with pytest.raises((TypeError, ValueError)) as numpy_error:
        getattr(fl, name)(*args, **options)
    tensors = [torch.tensor(a, requires_grad=i == 0 and a.dtype == np.float64) for i, a in enumerate(args)]
    with pytest.raises(numpy_error.type) as torch_error:
        getattr(flt, name)(*tensors, **options)
    assert str(torch_error.value) == str(numpy_error.value)


def test_gradient_plumbing_is_not_an_argument(rng):
    with pytest.raises(TypeError, match="grad"):
        flt.cross_entropy(torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64), grad=True)


def test_mlp_training_follows_torch_step_by_step():
    """200 full-batch SGD steps on 512 of scikit-learn's digits (float64, same initial
    weights): fastloss.torch.CrossEntropyLoss gives torch's nn.CrossEntropyLoss loss at
    every step."""
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)
    x, y = x[:512] / 16.0, y[:512]
    ours = mlp_sgd(flt.CrossEntropyLoss(), x, y)
    theirs = mlp_sgd(torch.nn.CrossEntropyLoss(), x, y)
    losses = np.array([(ours(), theirs()) for _ in range(200)])
    np.testing.assert_allclose(losses[:, 0], losses[:, 1], rtol=0, atol=1e-5)
    assert losses[-1, 1] < 0.5 * losses[0, 1]  # it does learn
