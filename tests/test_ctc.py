"""CTC loss and forced alignment against torch and brute-force references.

Where the expected numbers come from:

* losses, and gradients with ``from_logits=True``: torch 2.13 CPU autograd of
  ``F.ctc_loss(log_softmax(z), ...)`` on the same arrays;
* gradients with respect to log-probabilities: fastloss returns the true derivative,
  ``-posterior``. torch's backward for a log_probs leaf returns ``exp(log_probs) -
  posterior`` (aten/src/ATen/native/LossCTC.cpp, ``ctc_loss_backward_cpu_template``),
  times the same per-sample factor, so the expected value is torch's gradient minus
  ``factor * exp(log_probs)`` on each sample's frames; and independently the
  enumeration of every path in ``tests/naive_ctc.py``;
* forced alignment: the best path found by enumeration in ``tests/naive_ctc.py``.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from naive_ctc import best_path, ctc_loss_and_grad

import fastloss as fl
from conftest import assert_close

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]


def _batch(rng, n_time, n, n_classes, max_labels, dtype, feasible_only=False):
    """Random (T, N, C) logits, padded targets avoiding a random blank, and lengths that
    include zero-length targets, short inputs and (unless ``feasible_only``) infeasible samples."""
    blank = int(rng.integers(0, n_classes))
    labels = np.array([k for k in range(n_classes) if k != blank])
    z = (rng.standard_normal((n_time, n, n_classes)) * 2).astype(dtype)
    targets = labels[rng.integers(0, len(labels), (n, max_labels))]
    if n > 1 and max_labels > 1:
        targets[0, 1] = targets[0, 0]  # a repeat: needs a blank between
    input_lengths = rng.integers(0, n_time + 1, n)
    input_lengths[0] = n_time
    target_lengths = rng.integers(0, max_labels + 1, n)
    if feasible_only:
        for b in range(n):
            while target_lengths[b] and target_lengths[b] + _repeats(targets[b, :target_lengths[b]]) > input_lengths[b]:
                target_lengths[b] -= 1
    return z, targets, input_lengths, target_lengths, blank


def _repeats(row):
    return int(np.count_nonzero(row[1:] == row[:-1]))


def _torch_ctc(lp_or_z, targets, input_lengths, target_lengths, blank, reduction, zero_infinity, from_logits,
               grad_output):
    """torch's loss and its autograd gradient with respect to the leaf (logits behind a
    log_softmax when ``from_logits``)."""
    leaf = torch.tensor(lp_or_z, requires_grad=True)
    lp = leaf.log_softmax(-1) if from_logits else leaf
    loss = F.ctc_loss(lp, torch.tensor(targets), torch.tensor(input_lengths), torch.tensor(target_lengths),
                      blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    loss.backward(torch.tensor(np.asarray(grad_output), dtype=loss.dtype).expand(loss.shape))
    return loss.detach().numpy(), leaf.grad.numpy()


def _factor(reduction, grad_output, target_lengths):
    """d(result)/d(loss_b) times grad_output: torch's mean divides by the clamped target length and N."""
    n = len(target_lengths)
    if reduction == "none":
        return np.broadcast_to(np.asarray(grad_output, np.float64), (n,))
    if reduction == "sum":
        return np.full(n, float(grad_output))
    return float(grad_output) / (n * np.maximum(target_lengths, 1))


def _true_grad_from_torch(torch_grad, lp, factor, input_lengths, kept):
    """-posterior * factor from torch's exp(lp) - posterior (see the module docstring)."""
    frames = np.arange(lp.shape[0])[:, None] < input_lengths[None, :]
    mask = (frames & kept[None, :])[:, :, None]
    return torch_grad - np.where(mask, factor[None, :, None] * np.exp(lp.astype(np.float64)), 0.0)


# ------------------------------------------------------------------ against torch

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_loss_against_torch(rng, dtype, reduction, from_logits, zero_infinity):
    for trial in range(3):
        n_time, n, n_classes = int(rng.integers(1, 14)), int(rng.integers(1, 6)), int(rng.integers(2, 8))
        z, targets, il, tl, blank = _batch(rng, n_time, n, n_classes, int(rng.integers(1, 6)), dtype)
        x = z if from_logits else torch.tensor(z).log_softmax(-1).numpy()
        go = rng.standard_normal(n) if reduction == "none" else 0.7
        expected, expected_grad = _torch_ctc(x, targets, il, tl, blank, reduction, zero_infinity, from_logits, go)
        kwargs = dict(blank=blank, reduction=reduction, zero_infinity=zero_infinity, from_logits=from_logits)
        value = fl.ctc_loss(x, targets, il, tl, **kwargs)
        value2, grad = fl.ctc_loss(x, targets, il, tl, **kwargs, grad=True, grad_output=go)
        assert np.asarray(value).dtype == dtype and grad.dtype == dtype and grad.shape == x.shape
        np.testing.assert_array_equal(value, value2)
        assert_close(value, expected, dtype)
        if not from_logits:
            per_sample = F.ctc_loss(torch.tensor(x), torch.tensor(targets), torch.tensor(il), torch.tensor(tl),
                                    blank=blank, reduction="none").numpy()
            kept = ~(zero_infinity & np.isinf(per_sample))
            expected_grad = _true_grad_from_torch(expected_grad, x, _factor(reduction, go, tl), il, kept)
        assert_close(grad, expected_grad, dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_concatenated_int32_targets_and_unbatched(rng, dtype):
    z, targets, il, tl, blank = _batch(rng, 9, 4, 6, 4, dtype)
    concatenated = np.concatenate([targets[b, :tl[b]] for b in range(4)]).astype(np.int32)
    padded = fl.ctc_loss(z, targets, il, tl, blank=blank, reduction="none", from_logits=True, grad=True)
    joined = fl.ctc_loss(z, concatenated, il.astype(np.int32), tl, blank=blank, reduction="none",
                         from_logits=True, grad=True)
    np.testing.assert_array_equal(padded[0], joined[0])
    np.testing.assert_array_equal(padded[1], joined[1])
    # entries past a row's length are never read (torch ignores them too): -1 padding is fine
    minus_one = np.where(np.arange(4)[None, :] < tl[:, None], targets, -1)
    padded_minus_one = fl.ctc_loss(z, minus_one, il, tl, blank=blank, reduction="none", from_logits=True, grad=True)
    np.testing.assert_array_equal(padded[1], padded_minus_one[1])
    # unbatched (T, C): torch's result on the same sample, a 0-d loss
    x = torch.tensor(z[:, 0]).log_softmax(-1).numpy()
    expected, expected_grad = _torch_ctc(x, targets[0, :tl[0]], il[0], tl[0], blank, "none", False, False, 1.0)
    value, grad = fl.ctc_loss(x, targets[0, :tl[0]], il[0], tl[0], blank=blank, reduction="none", grad=True)
    assert np.shape(value) == () and grad.shape == x.shape
    assert_close(value, expected, dtype)
    assert_close(grad, _true_grad_from_torch(expected_grad[:, None], x[:, None], np.ones(1), il[:1],
                                             np.ones(1, bool))[:, 0], dtype)


def test_long_target_beyond_gpu_limits(rng):
    """700 labels (warp-ctc stops at 639 on GPU, cuDNN at 255): torch CPU as the oracle."""
    n_time, n_labels, n_classes = 1500, 700, 30
    z = rng.standard_normal((n_time, 1, n_classes))
    targets = rng.integers(1, n_classes, (1, n_labels))
    expected, expected_grad = _torch_ctc(z, targets, [n_time], [n_labels], 0, "sum", False, True, 1.0)
    value, grad = fl.ctc_loss(z, targets, [n_time], [n_labels], reduction="sum", from_logits=True, grad=True)
    assert_close(value, expected, np.float64, scale=100)
    assert_close(grad, expected_grad, np.float64, scale=100)


# ------------------------------------------------------------------ true gradient, brute force

@pytest.mark.parametrize("trial", range(4))
def test_true_gradient_against_path_enumeration(rng, trial):
    n_time, n_classes = 5, 3
    z, targets, il, tl, blank = _batch(rng, n_time, 3, n_classes, 3, np.float64, feasible_only=True)
    lp = z + rng.standard_normal(z.shape)  # unnormalised log-probs: the derivative holds for any input
    value, grad = fl.ctc_loss(lp, targets, il, tl, blank=blank, reduction="none", grad=True)
    for b in range(3):
        expected, expected_grad = ctc_loss_and_grad(lp[:il[b], b], targets[b, :tl[b]], blank)
        assert_close(value[b], expected, np.float64)
        assert_close(grad[:il[b], b], expected_grad, np.float64)
        assert not grad[il[b]:, b].any()


# ------------------------------------------------------------------ layouts and buffers

def test_batch_first_reads_in_place_and_matches(rng):
    z, targets, il, tl, blank = _batch(rng, 8, 3, 5, 3, np.float32)
    expected, expected_grad = fl.ctc_loss(z, targets, il, tl, blank=blank, from_logits=True, grad=True)
    nt = np.ascontiguousarray(z.transpose(1, 0, 2))
    value, grad = fl.ctc_loss(nt, targets, il, tl, blank=blank, from_logits=True, batch_first=True, grad=True)
    np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(grad, expected_grad.transpose(1, 0, 2))


def test_grad_out_in_place_strided_readonly_float16(rng, tmp_path):
    z, targets, il, tl, blank = _batch(rng, 7, 3, 5, 3, np.float32)
    expected, expected_grad = fl.ctc_loss(z, targets, il, tl, blank=blank, from_logits=True, grad=True)
    inplace = z.copy()
    value, grad = fl.ctc_loss(inplace, targets, il, tl, blank=blank, from_logits=True, grad=True, grad_out=inplace)
    assert grad is inplace
    np.testing.assert_array_equal(grad, expected_grad)
    strided_out = np.empty((7, 3, 10), np.float32)[:, :, ::2]
    _, grad = fl.ctc_loss(z, targets, il, tl, blank=blank, from_logits=True, grad=True, grad_out=strided_out)
    assert grad is strided_out
    np.testing.assert_array_equal(strided_out, expected_grad)
    # a strided, read-only memmap input (class axis not contiguous)
    wide = np.zeros((7, 3, 10), np.float32)
    wide[:, :, ::2] = z
    path = tmp_path / "z.npy"
    np.save(path, wide)
    mm = np.load(path, mmap_mode="r")[:, :, ::2]
    assert not mm.flags.writeable
    value, grad = fl.ctc_loss(mm, targets, il, tl, blank=blank, from_logits=True, grad=True)
    np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(grad, expected_grad)
    half = fl.ctc_loss(z.astype(np.float16), targets, il, tl, blank=blank, from_logits=True)
    assert half.dtype == np.float32
    expected_half = fl.ctc_loss(z.astype(np.float16).astype(np.float32), targets, il, tl, blank=blank,
                                from_logits=True)
    np.testing.assert_array_equal(half, expected_half)


def test_deterministic_and_criterion(rng):
    z, targets, il, tl, blank = _batch(rng, 10, 4, 6, 4, np.float32)
    first = fl.ctc_loss(z, targets, il, tl, blank=blank, from_logits=True, grad=True)
    second = fl.ctc_loss(z, targets, il, tl, blank=blank, from_logits=True, grad=True)
    np.testing.assert_array_equal(first[1], second[1])
    crit = fl.CTCLoss(blank=blank, reduction="sum", zero_infinity=True, from_logits=True)
    np.testing.assert_array_equal(crit(z, targets, il, tl),
                                  fl.ctc_loss(z, targets, il, tl, blank, "sum", True, from_logits=True))
    value, grad = crit.value_and_grad(z, targets, il, tl)
    expected, expected_grad = fl.ctc_loss(z, targets, il, tl, blank, "sum", True, from_logits=True, grad=True)
    np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(grad, expected_grad)


# ------------------------------------------------------------------ non-finite input

@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_log_probs_propagate_as_torch(rng, value):
    """torch poisons a sample when a NaN or +inf reaches the end along the CTC transitions,
    including from a cell the start cannot reach (-inf + NaN), but not from a cell
    that cannot reach the end: the expected losses are torch's on the same arrays."""
    n_time, n_classes = 6, 5
    lp = torch.randn(n_time, 3, n_classes, dtype=torch.float64).log_softmax(-1).numpy()
    targets = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3]])
    il, tl = np.array([6, 6, 6]), np.array([3, 3, 3])
    lp[1, 0, 3] = value  # frame 1, label 3 (s = 5): unreachable from the start, reaches the end
    lp[5, 1, 1] = value  # frame 5, label 1 (s = 1): cannot reach the end
    expected = F.ctc_loss(torch.tensor(lp), torch.tensor(targets), torch.tensor(il), torch.tensor(tl),
                          reduction="none").numpy()
    loss, grad = fl.ctc_loss(lp, targets, il, tl, reduction="none", grad=True)
    np.testing.assert_array_equal(np.isnan(loss), np.isnan(expected))
    assert_close(loss[~np.isnan(loss)], expected[~np.isnan(expected)], np.float64)
    assert np.isnan(grad[:, 0]).all() and np.isfinite(grad[:, 2]).all()


def test_infeasible_and_empty_samples(rng):
    lp = torch.randn(4, 3, 4, dtype=torch.float64).log_softmax(-1).numpy()
    targets = np.array([[1, 1, 2], [1, 2, 3], [1, 1, 1]])
    il, tl = np.array([3, 0, 0]), np.array([3, 1, 0])  # needs 4 frames; no frames; nothing on nothing
    loss, grad = fl.ctc_loss(lp, targets, il, tl, reduction="none", grad=True)
    np.testing.assert_array_equal(loss, [np.inf, np.inf, 0.0])  # torch gives the same (test_ctc_loss_against_torch)
    assert np.isnan(grad[:3, 0]).all() and not grad[3:, 0].any() and not grad[:, 1:].any()
    loss, grad = fl.ctc_loss(lp, targets, il, tl, reduction="none", zero_infinity=True, grad=True)
    np.testing.assert_array_equal(loss, [0.0, 0.0, 0.0])
    assert not grad.any()


# ------------------------------------------------------------------ bad input

def test_bad_input():
    lp = np.zeros((5, 2, 4))
    t = np.array([[1, 2], [3, 1]])
    il, tl = np.array([5, 5]), np.array([2, 2])
    with pytest.raises(ValueError, match="target_lengths\\[1\\] = 3 is longer than its row"):
        fl.ctc_loss(lp, t, il, [2, 3])
    with pytest.raises(ValueError, match="target_lengths\\[0\\] = -1 is negative"):
        fl.ctc_loss(lp, t, il, [-1, 2])
    with pytest.raises(ValueError, match="input_lengths\\[1\\] = -2 is negative"):
        fl.ctc_loss(lp, t, [5, -2], tl)
    with pytest.raises(ValueError, match="input_lengths\\[0\\] = 6 exceeds the input's 5 frames"):
        fl.ctc_loss(lp, t, [6, 5], tl)
    with pytest.raises(ValueError, match="class index 4; valid labels are in \\[0, 4\\)"):
        fl.ctc_loss(lp, np.array([[1, 4], [1, 2]]), il, tl)
    with pytest.raises(ValueError, match="class index -1"):
        fl.ctc_loss(lp, np.array([[1, -1], [1, 2]]), il, tl)
    with pytest.raises(ValueError, match="class index 0; .* differ from blank = 0"):
        fl.ctc_loss(lp, np.array([[1, 0], [1, 2]]), il, tl)
    with pytest.raises(ValueError, match="targets has 3 rows for a batch of 2"):
        fl.ctc_loss(lp, np.ones((3, 2), int), il, tl)
    with pytest.raises(ValueError, match="input_lengths has shape \\(3,\\); expected \\(2,\\)"):
        fl.ctc_loss(lp, t, [5, 5, 5], tl)
    with pytest.raises(ValueError, match="concatenated targets have 3 entries; target_lengths sum to 4"):
        fl.ctc_loss(lp, np.array([1, 2, 3]), il, tl)
    with pytest.raises(ValueError, match="blank = 4 is not a class index"):
        fl.ctc_loss(lp, t, il, tl, blank=4)
    with pytest.raises(TypeError, match="targets must hold integer"):
        fl.ctc_loss(lp, t.astype(float), il, tl)
    with pytest.raises(ValueError, match="reduction"):
        fl.ctc_loss(lp, t, il, tl, reduction="avg")
    with pytest.raises(ValueError, match="too long for CTC"):
        fl.ctc_forced_align(np.zeros((1, 3, 4)), np.array([[1, 1, 2]]))


# ------------------------------------------------------------------ forced alignment

@pytest.mark.parametrize("dtype", DTYPES)
def test_forced_align_against_brute_force_viterbi(rng, dtype):
    n_time, n_classes = 6, 4
    z, targets, il, tl, blank = _batch(rng, n_time, 4, n_classes, 3, np.float64, feasible_only=True)
    lp = np.ascontiguousarray(torch.tensor(z).log_softmax(-1).numpy().transpose(1, 0, 2)).astype(dtype)
    labels, scores = fl.ctc_forced_align(lp, targets.astype(np.int32), il, tl, blank=blank)
    assert labels.dtype == np.int32 and labels.shape == (4, n_time) and scores.dtype == dtype
    for b in range(4):
        path, best = best_path(lp[b, :il[b]].astype(np.float64), targets[b, :tl[b]], blank)
        np.testing.assert_array_equal(labels[b, :il[b]], path)
        assert_close(scores[b, :il[b]], lp[b, np.arange(il[b]), path], dtype)
        assert_close(scores[b, :il[b]].sum(dtype=np.float64), best, dtype)
        np.testing.assert_array_equal(labels[b, il[b]:], blank)
        assert not scores[b, il[b]:].any()
    # torchaudio's single-sample form: (T, C) and (S,), lengths defaulted
    one_labels, one_scores = fl.ctc_forced_align(lp[0], targets[0, :tl[0]], blank=blank)
    np.testing.assert_array_equal(one_labels, labels[0])

