"""The corners of every loss: a gradient written over an input, and NaN, ±inf and huge values.

Every public loss comes from tests/loss_cases.py (``test_cases_cover_every_loss`` keeps that
list complete), so a new loss is covered here without an edit. Expected numbers:

* ``grad_out``: the same fastloss call without ``grad_out``, bit for bit;
* hostile values: torch 2.13 CPU in float64 on the same arrays (``loss_cases.reference``),
  cast to the tested dtype. Values must agree everywhere; gradients wherever the input
  element itself is finite; where torch raises, fastloss must raise ValueError or
  TypeError (for a loss torch lacks, a ValueError for a value outside the domain its
  docstring gives is right too). Huge finite values (1e300) are placed in float64 only: in float32 (3e38) an
  intermediate that overflows float32 but not float64 is no defect of fastloss's. Where
  the reference is a torch composition rather than a torch loss (focal, Dice, CosFace,
  ...), a non-finite gradient may be NaN in one and ±inf in the other: the composition's
  order of operations (``g * a + g * b`` against ``g * (a + b)`` with an infinite ``g``)
  is no definition, so there gradients need only agree on which entries are finite. The
  same holds for torch's own losses under an infinite ``grad_output``: torch's backward
  of a loss it composes of several operations (``poisson_nll_loss``: ``exp(x) - y x``)
  sums infinite terms where a fused gradient multiplies once.
"""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastloss as fl
from conftest import SEED_OFFSET, assert_close
from fastloss._core.table import LOSSES as TABLE
from loss_cases import CASES, LOSSES, data, reference
from references import anchor_torch

DTYPES = [np.float32, np.float64]
PARAMS = [(name, reduction) for name in LOSSES for reduction in CASES[name].reductions]
SPECIALS = {np.float32: [np.nan, np.inf, -np.inf], np.float64: [np.nan, np.inf, -np.inf, 1e300, -1e300]}


def _grad_output(rng, fn, call, reduction):
    """A random incoming gradient of the loss's shape for "none", else a scalar."""
    if reduction != "none":
        return 0.7
    return rng.standard_normal(np.shape(fn(**call))).astype(call[next(iter(call))].dtype)


def _grads(grad):
    return grad if isinstance(grad, tuple) else (grad,)


def _reference_call(name, rng, dtype, reduction):
    """``(fn, call, diff, g)``: a valid call of loss ``name`` with ``reduction`` and an incoming gradient."""
    fn, call, diff = data(name, rng, dtype)
    call["reduction"] = reduction
    return fn, call, diff, _grad_output(rng, fn, call, reduction)


# ---------------------------------------------------------------- grad_out over an input

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, reduction", PARAMS)
def test_grad_out_is_the_input(rng, name, reduction, dtype):
    """``grad_out=input`` gives the value and gradients of the call without it, bit for bit."""
    fn, call, diff, g = _reference_call(name, rng, dtype, reduction)
    expected, expected_grads = fn(**call, grad=True, grad_output=g)
    x = call[diff[0]].copy()
    value, grads = fn(**{**call, diff[0]: x}, grad=True, grad_output=g, grad_out=x)
    np.testing.assert_array_equal(value, expected)
    assert _grads(grads)[0] is x
    for got, want in zip(_grads(grads), _grads(expected_grads)):
        np.testing.assert_array_equal(got, want)


def _overlaps(call, diff):
    """``(what, call, grad_out)`` pairs: ``grad_out`` a shifted view of the first
    differentiable input's buffer, or another float argument of its shape and dtype."""
    first = call[diff[0]]
    for shift in (1, -1):
        buffer = np.empty(first.size + 1, first.dtype)
        ahead, behind = buffer[1:].reshape(first.shape), buffer[:-1].reshape(first.shape)
        shifted, out = (ahead, behind) if shift == 1 else (behind, ahead)
        shifted[...] = first
        yield f"a view of the input's buffer shifted by {shift}", {**call, diff[0]: shifted}, out
    for k, v in call.items():
        if k != diff[0] and isinstance(v, np.ndarray) and v.shape == first.shape and v.dtype == first.dtype:
            other = v.copy()
            yield k, {**call, k: other}, other


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, reduction", PARAMS)
def test_grad_out_overlapping_an_argument(rng, name, reduction, dtype):
    """A ``grad_out`` sharing memory with an argument other than the first input itself
    gives the numbers of the call without it, or a ValueError saying what it overlaps."""
    fn, call, diff, g = _reference_call(name, rng, dtype, reduction)
    expected, expected_grads = fn(**call, grad=True, grad_output=g)
    for what, overlapped, out in _overlaps(call, diff):
        try:
            value, grads = fn(**overlapped, grad=True, grad_output=g, grad_out=out)
        except ValueError as error:
            assert "overlap" in str(error) and "grad_out" in str(error), (what, error)
            continue
        np.testing.assert_array_equal(value, expected, err_msg=what)
        assert _grads(grads)[0] is out
        for got, want in zip(_grads(grads), _grads(expected_grads)):
            np.testing.assert_array_equal(got, want, err_msg=what)


# ---------------------------------------------------------------- NaN, inf and huge values

def _tensor(value, requires_grad=False):
    return torch.tensor(np.asarray(value, np.float64) if np.asarray(value).dtype.kind == "f" else value,
                        requires_grad=requires_grad)


def _torch_value_and_grads(name, fn, call, diff, g):
    """torch float64 on ``call`` (CTC through a log_softmax, fastloss's ``from_logits``)."""
    case = CASES[name]
    leaves = {k: _tensor(call[k], requires_grad=True) for k in diff}
    data_names = list(call)[:len(TABLE[name].data)]
    args = [leaves[k] if k in leaves else _tensor(call[k]) for k in data_names]
    if case.through is not None:
        args[0] = case.through(args[0])
    options = {k: _tensor(v) if isinstance(v, np.ndarray) else v for k, v in call.items() if k not in data_names}
    value = reference(name)(*args, **options)
    value.backward(torch.as_tensor(np.asarray(g, np.float64)).expand(value.shape))
    return value.detach().numpy(), [leaves[k].grad.numpy() for k in diff]


def _assert_same(actual, expected, dtype, where=None, what="", nan_is_inf=False, size=1.0):
    """NaN and ±inf at the same places (only non-finite ones with ``nan_is_inf``), the finite
    entries close (``where``: the entries compared), with an absolute tolerance ``size``
    times the dtype's (a gradient is grad_output times a difference of terms of order 1:
    its rounding error grows with grad_output's size)."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(np.asarray(expected).astype(dtype), np.float64)  # float64 truth in the tested dtype
    if where is not None:
        actual, expected = actual[where], expected[where]
    if nan_is_inf:
        actual, expected = (np.where(np.isfinite(a), a, np.nan) for a in (actual, expected))
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"NaN positions of {what}")
    np.testing.assert_array_equal(np.where(np.isinf(actual), actual, 0), np.where(np.isinf(expected), expected, 0),
                                  err_msg=f"inf positions of {what}")
    finite = np.isfinite(expected)
    assert_close(actual[finite] / size, expected[finite] / size, dtype, scale=64)


@st.composite
def _poisoned_call(draw, name, dtype):
    """A valid call of loss ``name`` (weights or not, any reduction), then 1 to 3 entries of
    its float arrays or its ``grad_output`` set to NaN, ±inf or ±huge."""
    case = CASES[name]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)) + SEED_OFFSET)
    reduction = draw(st.sampled_from(case.reductions))
    fn, call, diff, g = _reference_call(name, rng, dtype, reduction)
    if case.weights is not None and draw(st.booleans()):
        call.update({k: v.astype(dtype) for k, v in case.weights(rng).items()})
    g = np.array(g, dtype)
    floats = [k for k, v in call.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size]
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(floats + ["grad_output"]))
        array = g if where == "grad_output" else call[where]
        array.reshape(-1)[draw(st.integers(0, array.size - 1))] = draw(st.sampled_from(SPECIALS[dtype]))
    return fn, call, diff, g


def _anchor_inf_off_target(call):
    x = call["input"]
    return bool((np.isposinf(x) & (np.arange(x.shape[1]) != call["target"][:, None])).any())


def _ctc_reference_nan(call):
    x = call["log_probs"]
    past = np.arange(x.shape[0])[:, None] >= call["input_lengths"][None, :]
    return bool(np.isneginf(x).any() or (~np.isfinite(x) & past[:, :, None]).any() or _ctc_every_path_huge(call))


def _ctc_every_path_huge(call):
    """Whether some frame costs every path of its sample a log-probability below -2^60: a
    logit of 1e300 off the classes a path can emit there, or -1e300 on all of them. Such a log-probability has lost its finite part, and torch's posteriors
    then come from differences of numbers near 1e300."""
    x = call["log_probs"].astype(np.float64)
    with np.errstate(all="ignore"):
        log_probs = torch.tensor(x).log_softmax(-1).numpy()
    for b in range(x.shape[1]):
        n_frames, n_labels = call["input_lengths"][b], call["target_lengths"][b]
        extended = np.zeros(2 * n_labels + 1, np.int64)  # blank, l_1, blank, ..., l_L, blank
        extended[1::2] = call["targets"][b, :n_labels]
        for t in range(n_frames):  # the cells a path can be in at frame t
            cells = extended[max(0, 2 * n_labels + 1 - 2 * (n_frames - t)):min(2 * t + 1, 2 * n_labels) + 1]
            best = log_probs[t, b, cells].max(initial=-np.inf)
            if np.isfinite(best) and best < -2.0**60:
                return True
    return False


# Calls where the reference is what is wrong; each has a precise test of its own below.
REFERENCE_DEFECTS = {
    # The authors' AnchorLoss adds class_mask * (...) * bce and (1 - class_mask) * (...) * bce:
    # a +inf logit off the target has bce = inf, and the mask's 0 times it makes the
    # value NaN; the loss there is +inf (test_anchor_loss_infinite_logit_off_target).
    "anchor_loss": _anchor_inf_off_target,
    # torch's CTC backward forms exp(alpha + beta - nll - log p) with alpha + beta = -inf
    # and log p = -inf where a log-probability is -inf: NaN, which its log_softmax's backward
    # (the test's `through`) spreads over the whole frame; the gradient there is the limit of
    # a very negative finite log-probability, finite (test_ctc_minus_inf_log_probability).
    # Likewise a NaN or inf logit in a frame past its sample's input length: the loss never
    # reads that frame (torch's ctc_loss gives it the gradient 0), but log_softmax's backward
    # makes it softmax * 0 = NaN there (test_ctc_nonfinite_logit_past_input_length).
    # And a logit of 1e300: log_softmax turns every other logit y of its frame into
    # y - 1e300 = -1e300, their finite parts lost, and torch's posteriors (exp of
    # alpha + beta - log p + nll, each near +-1e300) are then garbage; fastloss keeps the
    # finite parts (test_ctc_huge_logit).
    "ctc_loss": _ctc_reference_nan,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSSES)
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hostile_values_as_torch(name, dtype, data):
    fn, call, diff, g = data.draw(_poisoned_call(name, dtype))
    assume(not (name in REFERENCE_DEFECTS and REFERENCE_DEFECTS[name](call)))
    # Two huge values (1e300) in one call meet in a product or a sum: the reference's
    # intermediate steps overflow (a grad_output of 1e300 times a loss of 1e300 is inf,
    # then inf - inf) or cancel in an order of its own (1e300 + x - 1e300), where the
    # fused kernels give the finite limit (test_huge_grad_output_scales_the_gradient).
    assume(sum(int(np.sum(np.abs(np.asarray(v, np.float64)) == 1e300)) for v in (*call.values(), g)
               if isinstance(v, np.ndarray) and v.dtype.kind == "f") <= 1)
    ours = {"from_logits": True} if CASES[name].through is not None else {}
    try:
        expected, expected_grads = _torch_value_and_grads(name, fn, call, diff, g)
    except (RuntimeError, ValueError, IndexError):
        with pytest.raises((ValueError, TypeError)):
            fn(**call, **ours)
        return
    if CASES[name].torch is not None:
        # A loss torch lacks has the domain its docstring gives (Dice's binary targets in
        # [0, 1], say): outside it, a ValueError naming the argument is right.
        try:
            fn(**call, **ours)
        except ValueError as error:
            assert any(k in str(error) for k in call), error
            return
    value = fn(**call, **ours)
    value_with_grad, grads = fn(**call, **ours, grad=True, grad_output=g)
    np.testing.assert_array_equal(value, value_with_grad)
    _assert_same(value, expected, dtype, what="the value")
    for k, got, want in zip(diff, _grads(grads), expected_grads):
        _assert_same(got, want, dtype, where=np.isfinite(call[k]), what=f"the gradient of {k}",
                     nan_is_inf=CASES[name].torch is not None or not np.isfinite(g).all(),
                     size=max(1.0, float(np.abs(g[np.isfinite(g)]).max(initial=0.0))))


@pytest.mark.parametrize("name", LOSSES)
def test_huge_grad_output_scales_the_gradient(rng, name):
    """The gradient is linear in grad_output (the chain rule): grad_output 1e300 * u gives
    1e300 times the gradient of u, where a composition of torch operations can overflow on
    the way (the reference of sigmoid_focal_loss at x = -1e300 gives NaN: a loss term of
    1e300 times 1e300). Float64, finite inputs, gradients of u of order 1."""
    fn, call, diff, g = _reference_call(name, rng, np.float64, "none" if "none" in CASES[name].reductions else "sum")
    ours = {"from_logits": True} if CASES[name].through is not None else {}
    _, small = fn(**call, **ours, grad=True, grad_output=g)
    _, huge = fn(**call, **ours, grad=True, grad_output=np.asarray(g) * 1e300)
    for got, want in zip(_grads(huge), _grads(small)):
        assert_close(np.asarray(got) / 1e300, want, np.float64, scale=4)


# ---------------------------------------------------------------- where the reference is wrong

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("anchor", ["neg", "pos"])
def test_anchor_loss_infinite_logit_off_target(dtype, anchor):
    """A +inf logit off the target class: its BCE is inf and its modulating factor finite,
    so the row's loss is +inf. The authors' code gives NaN only because it masks its two
    terms by multiplication (0 * inf); with the masks as selects it gives fastloss's
    numbers: inf for that row, the others' values, and every finite entry's gradient."""
    x = np.array([[np.inf, -0.3, 1.3], [0.1, 0.5, -2.0], [-0.4, np.inf, 0.7]], dtype)
    t = np.array([1, 2, 1])  # row 2's +inf is its target's: NaN in torch's BCE, and in fastloss
    g = np.array([0.5, -1.5, 2.0], dtype)
    value, grad = fl.anchor_loss(x, t, reduction="none", anchor=anchor, grad=True, grad_output=g)
    results = []
    for select in (False, True):
        leaf = torch.tensor(x.astype(np.float64), requires_grad=True)
        loss = anchor_torch(leaf, torch.tensor(t), reduction="none", anchor=anchor, select=select)
        loss.backward(torch.tensor(g.astype(np.float64)))
        results.append((loss.detach().numpy(), leaf.grad.numpy()))
    (multiplied, multiplied_grad), (selected, selected_grad) = results
    assert np.isnan(multiplied[0]) and selected[0] == np.inf  # the defect, and the select's value
    assert value[0] == np.inf and np.isnan(value[2])
    _assert_same(value, selected, dtype, what="the value")
    finite = np.isfinite(x)
    for expected in (multiplied_grad, selected_grad):
        _assert_same(grad, expected, dtype, where=finite, what="the gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("from_logits", [True])  # torch's gradient in log-probabilities is exp(lp) - posterior, not -posterior
def test_ctc_minus_inf_log_probability(dtype, from_logits):
    """A -inf log-probability (or logit) in a frame: torch's gradient is NaN there (its
    backward's exp(-inf - -inf)), and through log_softmax in the whole frame. That class
    has probability 0, as exp(-1e4) is in float64: torch's numbers with -1e4 in its place
    are finite, and they are fastloss's with -inf: the value, and the gradient of every
    finite entry, the rest of the frame included."""
    rng = np.random.default_rng(SEED_OFFSET + 7)
    args, _ = TABLE["ctc_loss"].example(rng)
    x = (rng.standard_normal((6, 3, 4)) if from_logits else args[0]).astype(dtype)
    x[0, 0, 0] = x[2, 1, 3] = -np.inf  # a blank and a label, in frames that paths use
    targets, input_lengths, target_lengths = args[1:]
    g = np.array([0.5, -1.5, 2.0], dtype)
    value, grad = fl.ctc_loss(x, targets, input_lengths, target_lengths, reduction="none", from_logits=from_logits,
                              grad=True, grad_output=g)
    results = []
    for stand_in in (-np.inf, -1e4):
        leaf = torch.tensor(np.where(np.isneginf(x), stand_in, x.astype(np.float64)), requires_grad=True)
        log_probs = leaf.log_softmax(-1) if from_logits else leaf
        loss = torch.nn.functional.ctc_loss(log_probs, torch.tensor(targets), torch.tensor(input_lengths),
                                            torch.tensor(target_lengths), reduction="none")
        loss.backward(torch.tensor(g.astype(np.float64)))
        results.append((loss.detach().numpy(), leaf.grad.numpy()))
    (_, torch_grad), (limit, limit_grad) = results
    assert np.isnan(torch_grad[0, 0, 0])  # the defect
    assert np.isfinite(limit_grad).all(), np.argwhere(~np.isfinite(limit_grad))  # its limit
    assert np.isfinite(value).all()
    _assert_same(value, limit, dtype, what="the value")
    # the -inf entries themselves (NaN in fastloss as in torch) are compared nowhere, as in the property test
    _assert_same(grad, limit_grad, dtype, where=np.isfinite(x), what="the gradient")


@pytest.mark.parametrize("dtype", DTYPES)
def test_ctc_huge_logit(dtype):
    """A logit of 1e300 (1e30 in float32) off the frame's target classes, or on one: the
    softmax of its frame is exactly one-hot from a logit of 1e6 on, so the gradient at
    1e300 is the gradient at 1e6, which torch float64 computes exactly (its log_softmax
    keeps the other logits' finite parts there; at 1e300 it loses them). The value is the
    value at 1e300, which both compute (the finite part of a loss of 1e300 is lost)."""
    rng = np.random.default_rng(SEED_OFFSET + 9)
    targets, input_lengths, target_lengths = np.array([[2, 2], [2, 3], [1, 2]]), np.array([6, 5, 6]), np.array([2, 1, 2])
    x = rng.standard_normal((6, 3, 4))
    huge_at = np.zeros(x.shape, bool)
    huge_at[0, 0, 1] = True  # off sample 0's target (2, 2): every path's frame 0 costs -1e300
    huge_at[3, 2, 0] = True  # the blank
    huge_at[4, 1, targets[1, 0]] = True  # sample 1's label
    g = np.array([0.5, -1.5, 2.0])
    results = []
    for big in (1e6, 1e300 if dtype == np.float64 else 1e30):
        leaf = torch.tensor(np.where(huge_at, big, x), requires_grad=True)
        loss = torch.nn.functional.ctc_loss(leaf.log_softmax(-1), torch.tensor(targets), torch.tensor(input_lengths),
                                            torch.tensor(target_lengths), reduction="none")
        loss.backward(torch.tensor(g))
        results.append((loss.detach().numpy(), leaf.grad.numpy()))
    (_, limit_grad), (torch_value, torch_grad) = results
    assert not np.allclose(torch_grad, limit_grad)  # the defect
    value, grad = fl.ctc_loss(np.where(huge_at, 1e300 if dtype == np.float64 else 1e30, x).astype(dtype), targets,
                              input_lengths, target_lengths, reduction="none", from_logits=True, grad=True,
                              grad_output=g.astype(dtype))
    _assert_same(value, torch_value, dtype, what="the value")
    _assert_same(grad, limit_grad, dtype, what="the gradient")
    np.testing.assert_allclose(grad.sum(-1), 0, atol=1e-6)  # softmax - posterior: each frame sums to 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_ctc_nonfinite_logit_past_input_length(dtype, special):
    """A non-finite logit in a frame past its sample's input length: the loss does not read
    that frame, so its gradient is 0 (torch's ctc_loss on log-probabilities gives 0 there
    too); torch's log_softmax backward gives softmax * 0 = NaN over the frame. fastloss's
    numbers are torch's with that frame's logits replaced by any finite ones."""
    rng = np.random.default_rng(SEED_OFFSET + 8)
    targets, input_lengths, target_lengths = TABLE["ctc_loss"].example(rng)[0][1:]
    input_lengths = np.array([6, 4, 6])
    x = rng.standard_normal((6, 3, 4)).astype(dtype)
    x[5, 1, 2] = special
    g = np.array([0.5, -1.5, 2.0], dtype)
    value, grad = fl.ctc_loss(x, targets, input_lengths, target_lengths, reduction="none", from_logits=True,
                              grad=True, grad_output=g)
    leaf = torch.tensor(np.where(np.isfinite(x), x, 0.0).astype(np.float64), requires_grad=True)
    loss = torch.nn.functional.ctc_loss(leaf.log_softmax(-1), torch.tensor(targets), torch.tensor(input_lengths),
                                        torch.tensor(target_lengths), reduction="none")
    loss.backward(torch.tensor(g.astype(np.float64)))
    assert (grad[4:, 1] == 0).all()
    _assert_same(value, loss.detach().numpy(), dtype, what="the value")
    _assert_same(grad, leaf.grad.numpy(), dtype, what="the gradient")
