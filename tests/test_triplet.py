"""Triplet mining and batch triplet losses against brute-force references.

Expected values and gradients come from tests/naive_triplet.py: distances from explicit
differences, triplets enumerated by loops, the loss composed of torch operations and
differentiated by torch autograd. Mined triplet sets come from pytorch-metric-learning
2.9's ``TripletMarginMiner`` (the oracle the API contract names) and from the naive
loop. The semi-hard value is also checked against a NumPy transcription of TensorFlow
Addons' ``triplet_semihard_loss``.
"""
import os
import subprocess
import sys
import tracemalloc

import naive_triplet as naive
import numpy as np
import pytest
import torch
from conftest import assert_close
from hostile import SPECIALS, check_hostile

import fastloss as fl
from fastloss import triplet

pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
pml_distances = pytest.importorskip("pytorch_metric_learning.distances")

DTYPES = [np.float32, np.float64]
METRICS = ["euclidean", "squared_euclidean", "cosine"]
STRATEGIES = ["batch_hard", "batch_all", "semi_hard"]
REDUCTIONS = ["mean", "mean_nonzero", "sum"]


def _data(rng, b=14, d=5, classes=4, dtype=np.float64):
    return rng.standard_normal((b, d)).astype(dtype), rng.integers(0, classes, b)


def _reference(x, labels, grad_output=1.0, **options):
    """naive torch loss and its autograd gradient, in float64."""
    t = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    value = naive.batch_triplet_loss(t, labels, options["strategy"], options["margin"], options["metric"],
                                     options["soft_margin"], options["reduction"])
    (value * grad_output).backward()
    return value.item(), t.grad.numpy()


def assert_grad_close(actual, expected, dtype):
    """Gradients: relative tolerance, plus an absolute one relative to the largest entry
    (the dense path forms sum_j S_kj (x_k - x_j) as r_k x_k - (S x)_k, which cancels)."""
    rtol = 1e-9 if dtype == np.float64 else 5e-5
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.fixture(params=["sparse", "dense"])
def gradient_path(request, monkeypatch):
    """Both ways of applying the pair weights of semi_hard: sparse lists pair by pair,
    or a dense matrix and one product (batch_all's only way). batch_hard's two
    pairs per anchor are always lists."""
    monkeypatch.setattr(triplet, "SPARSE_BELOW", 2.0 if request.param == "sparse" else 0.0)
    return request.param


# ---------------------------------------------------------------- pairwise_distances

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
def test_pairwise_distances(rng, dtype, metric):
    x, _ = _data(rng, b=30, d=7, dtype=dtype)
    d = fl.pairwise_distances(x, metric)
    assert d.dtype == dtype and d.shape == (30, 30)
    expected = naive.distances(torch.tensor(x.astype(np.float64)), metric).numpy()
    assert_close(d, expected, dtype, scale=10)
    if metric != "cosine":
        assert (np.diag(d) == 0).all()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 1e300])
@pytest.mark.parametrize("metric", ["euclidean", "squared_euclidean"])
def test_pairwise_distances_of_non_finite_rows(rng, value, metric):
    """Rows holding NaN, inf or a value whose square overflows: torch.cdist's numbers for
    up to 25 rows (explicit differences): NaN where a row holds NaN (its diagonal too),
    inf where the distance is infinite, the finite rows untouched."""
    x, _ = _data(rng, b=12, d=3)
    x[2, 1] = value
    x[7, 0] = value
    expected = torch.cdist(torch.tensor(x), torch.tensor(x)).numpy()
    if metric == "squared_euclidean":
        expected = expected ** 2
    d = fl.pairwise_distances(x, metric)
    np.testing.assert_array_equal(np.isnan(d), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(d), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(d[finite], expected[finite], rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- batch_triplet_loss

@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("soft_margin", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_and_grad_float64(rng, gradient_path, strategy, metric, soft_margin, reduction):
    x, y = _data(rng)
    options = dict(strategy=strategy, margin=0.7, metric=metric, soft_margin=soft_margin, reduction=reduction)
    expected, expected_grad = _reference(x, y, grad_output=0.6, **options)
    value = fl.batch_triplet_loss(x, y, **options)
    value2, g = fl.batch_triplet_loss(x, y, **options, grad=True, grad_output=0.6)
    assert value.dtype == np.float64 and g.dtype == np.float64 and g.shape == x.shape
    assert value == value2
    assert_close(value, expected, np.float64)
    assert_grad_close(g, expected_grad, np.float64)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_loss_and_grad_float32(rng, strategy, metric):
    x, y = _data(rng, b=20, d=6, classes=3, dtype=np.float32)
    options = dict(strategy=strategy, margin=0.5, metric=metric, soft_margin=False, reduction="mean")
    expected, expected_grad = _reference(x, y, **options)
    value, g = fl.batch_triplet_loss(x, y, **options, grad=True)
    assert value.dtype == np.float32 and g.dtype == np.float32
    assert_close(value, expected, np.float32, scale=10)
    assert_grad_close(g, expected_grad, np.float32)


@pytest.mark.parametrize("metric", METRICS)
def test_semi_hard_matches_tensorflow_addons(rng, metric):
    # TFA's default distance_metric "L_2" is the squared Euclidean distance; its default margin is 1.
    for _ in range(5):
        x, y = _data(rng, b=16, d=4, classes=3)
        value = fl.batch_triplet_loss(x, y, strategy="semi_hard", margin=1.0, metric=metric)
        assert_close(value, naive.tfa_semihard_value(x, y, 1.0, metric), np.float64)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ties_go_to_the_first_index(gradient_path, strategy):
    # 16 distinct points of the integer grid {0..3}^3: many exactly equal distances,
    # computed exactly in float64; the naive reference picks the first index of a tie.
    rng = np.random.default_rng(7)
    grid = np.stack(np.meshgrid(*[np.arange(4.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    x = grid[rng.choice(len(grid), 16, replace=False)]
    y = np.tile([0, 1, 2, 3], 4)
    for metric in ["euclidean", "squared_euclidean"]:
        d = naive.distances(torch.tensor(x), metric).numpy()
        assert len(np.unique(d)) < 20  # really tied
        options = dict(strategy=strategy, margin=1.0, metric=metric, soft_margin=False, reduction="sum")
        expected, expected_grad = _reference(x, y, **options)
        value, g = fl.batch_triplet_loss(x, y, **options, grad=True)
        assert_close(value, expected, np.float64)
        assert_grad_close(g, expected_grad, np.float64)


def test_zero_distance_has_zero_subgradient():
    # Embeddings 0 and 1 coincide (a positive pair at Euclidean distance 0); their
    # negative is at distance 0.5 < margin, so the hinge is active. By the documented
    # convention the zero distance contributes no gradient: the reference holds d_01 = 0
    # constant and differentiates the rest with torch autograd.
    x = np.array([[0.0, 0.0], [0.0, 0.0], [0.3, 0.4], [5.0, 5.0]])
    y = np.array([0, 0, 1, 1])
    value, g = fl.batch_triplet_loss(x, y, margin=1.0, grad=True)
    t = torch.tensor(x, requires_grad=True)
    d_an = torch.linalg.norm(t[2] - t[[0, 1]], dim=1)  # anchors 0 and 1: hardest negative is 2
    d_23 = torch.linalg.norm(t[2] - t[3])
    d_32 = torch.linalg.norm(t[3] - t[2])
    d_3n = torch.linalg.norm(t[3] - t[0])  # 0 and 1 tie as negatives of 2 and 3: the first index
    d_2n = torch.linalg.norm(t[2] - t[0])
    terms = torch.stack([torch.relu(1.0 - d_an[0]), torch.relu(1.0 - d_an[1]),
                         torch.relu(1.0 + d_23 - d_2n), torch.relu(1.0 + d_32 - d_3n)])
    terms.mean().backward()
    assert np.isfinite(g).all()
    assert_close(value, terms.mean().item(), np.float64)
    assert_grad_close(g, t.grad.numpy(), np.float64)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_no_valid_triplet_gives_zero(rng, strategy, reduction):
    x = rng.standard_normal((6, 3))
    for labels in ([0] * 6, list(range(6))):  # no negative anywhere; no positive anywhere
        value, g = fl.batch_triplet_loss(x, labels, strategy=strategy, reduction=reduction, grad=True)
        assert value == 0 and (g == 0).all()
    # Every triplet satisfied: mean_nonzero over nothing is 0 as well.
    far = np.array([[0.0, 0], [0, 0.1], [10, 0], [10, 0.1]])
    value, g = fl.batch_triplet_loss(far, [0, 0, 1, 1], strategy=strategy, reduction=reduction, grad=True)
    assert value == 0 and (g == 0).all()
    value, g = fl.batch_triplet_loss(np.zeros((0, 3)), [], strategy=strategy, grad=True)
    assert value == 0 and g.shape == (0, 3)


@pytest.mark.parametrize("strategy", ["semi_hard", "batch_all"])
def test_many_positives(rng, strategy):
    # A class of 36: its anchors have 35 positives, more than triplet.cpu._LINEAR_COUNT, so
    # the negatives are placed among the sorted positives by binary search.
    assert triplet.cpu._LINEAR_COUNT < 35
    x = rng.standard_normal((50, 3))
    y = np.repeat([0, 1], [36, 14])
    rng.shuffle(y)
    options = dict(strategy=strategy, margin=0.8, metric="euclidean", soft_margin=False, reduction="mean")
    expected, expected_grad = _reference(x, y, **options)
    value, g = fl.batch_triplet_loss(x, y, **options, grad=True)
    assert_close(value, expected, np.float64)
    assert_grad_close(g, expected_grad, np.float64)


def test_anchors_without_positive_are_left_out(rng):
    # Class 9 has one member: it is never an anchor; it still serves as a negative.
    x = rng.standard_normal((9, 4))
    y = np.array([0, 0, 0, 1, 1, 1, 2, 2, 9])
    for strategy in STRATEGIES:
        options = dict(strategy=strategy, margin=0.4, metric="euclidean", soft_margin=False, reduction="mean")
        expected, expected_grad = _reference(x, y, **options)
        value, g = fl.batch_triplet_loss(x, y, **options, grad=True)
        assert_close(value, expected, np.float64)
        assert_grad_close(g, expected_grad, np.float64)


def _naive_loss(x, labels, **options):
    defaults = {"strategy": "batch_hard", "margin": 0.2, "metric": "euclidean", "soft_margin": False,
                "reduction": "mean"}
    o = {**defaults, **options}
    return naive.batch_triplet_loss(x, labels.numpy(), o["strategy"], o["margin"], o["metric"], o["soft_margin"],
                                    o["reduction"])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("soft_margin", [False, True])
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_hostile_values(rng, strategy, metric, soft_margin, reduction):
    """NaN, +-inf and 1e300 in one or two embedding entries (and a NaN grad_output): the
    value agrees with the naive reference everywhere, the gradient wherever the embedding
    is finite. Distances that involve a non-finite row are taken from its differences (the
    Gram matrix would give inf - inf), as the reference takes every distance. (At most one
    1e300: two in one column give gradient terms of +-1e300 whose sum's rounding depends
    on the order of the additions.)"""
    options = {"strategy": strategy, "metric": metric, "soft_margin": soft_margin, "reduction": reduction}
    for trial in range(8):
        x, y = _data(rng, b=10, d=3, classes=3)
        specials = rng.choice(SPECIALS, 2, replace=False)[:1 + trial % 2]
        x.reshape(-1)[rng.choice(x.size, len(specials), replace=False)] = specials
        g = np.nan if trial == 7 else 0.7
        check_hostile(fl.batch_triplet_loss, _naive_loss, [x, y], (0,), options, g,
                      torch_kwargs={k: v for k, v in options.items()})


def test_layouts_and_buffers(rng):
    x, y = _data(rng, b=12, d=8)
    expected, expected_grad = fl.batch_triplet_loss(x, y, strategy="semi_hard", grad=True)
    strided = np.asfortranarray(np.repeat(x, 2, axis=1))[:, ::2]
    read_only = x.copy()
    read_only.flags.writeable = False
    for variant in (strided, read_only, x.tolist()):
        value, g = fl.batch_triplet_loss(variant, y.astype(np.int8), strategy="semi_hard", grad=True)
        assert_close(value, expected, np.float64)
        assert_grad_close(g, expected_grad, np.float64)
    # grad_out: a caller's array, a strided one, and the embeddings themselves (in place).
    out = np.empty_like(x)
    _, g = fl.batch_triplet_loss(x, y, strategy="semi_hard", grad=True, grad_out=out)
    assert g is out
    assert_grad_close(out, expected_grad, np.float64)
    wide = np.zeros((12, 16))
    _, g = fl.batch_triplet_loss(x, y, strategy="semi_hard", grad=True, grad_out=wide[:, ::2])
    assert_grad_close(wide[:, ::2], expected_grad, np.float64)
    inplace = x.copy()
    _, g = fl.batch_triplet_loss(inplace, y, strategy="semi_hard", grad=True, grad_out=inplace)
    assert np.shares_memory(g, inplace)
    assert_grad_close(inplace, expected_grad, np.float64)
    # float16 computes in float32
    value = fl.batch_triplet_loss(x.astype(np.float16), y)
    assert value.dtype == np.float32


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_grad_out_is_the_embeddings(rng, gradient_path, dtype, strategy, metric):
    """grad_out = embeddings (in place): value and gradient bit for bit those of the call
    without grad_out; a view of the same buffer shifted by part of a row or a whole row: a
    ValueError saying so."""
    x, y = _data(rng, dtype=dtype)
    options = dict(strategy=strategy, metric=metric, margin=0.5, grad=True, grad_output=0.3)
    expected, expected_grad = fl.batch_triplet_loss(x, y, **options)
    inplace = x.copy()
    value, g = fl.batch_triplet_loss(inplace, y, **options, grad_out=inplace)
    assert g is inplace
    np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(g, expected_grad)
    for shift in (2, x.shape[1], -3):
        buffer = np.zeros(x.size + abs(shift), dtype)
        start = max(-shift, 0)
        view = buffer[start:start + x.size].reshape(x.shape)
        view[...] = x
        out = buffer[start + shift:start + shift + x.size].reshape(x.shape)
        with pytest.raises(ValueError, match="grad_out overlaps the input"):
            fl.batch_triplet_loss(view, y, **options, grad_out=out)


@pytest.mark.parametrize("kind", ["all", "hard", "semihard", "easy"])
def test_mine_triplets_with_nan(rng, kind):
    """A NaN embedding has NaN distances, which satisfy no condition: no triplet names it,
    as in the naive loop on explicit differences."""
    x, y = _data(rng, b=12, d=3, classes=3)
    x[4, 2] = np.nan
    got = fl.mine_triplets(x, y, type_of_triplets=kind, margin=0.5)
    expected = naive.mined_triplets(x, y, kind, 0.5, "euclidean")
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    assert not any((g == 4).any() for g in got)


def test_criterion(rng):
    x, y = _data(rng)
    crit = fl.BatchTripletLoss(strategy="batch_all", margin=0.3, reduction="mean_nonzero")
    assert crit(x, y) == fl.batch_triplet_loss(x, y, strategy="batch_all", margin=0.3, reduction="mean_nonzero")
    value, g = crit.value_and_grad(x, y, grad_output=2.0)
    _, expected = fl.batch_triplet_loss(x, y, strategy="batch_all", margin=0.3, reduction="mean_nonzero",
                                        grad=True, grad_output=2.0)
    np.testing.assert_array_equal(g, expected)


def test_bad_input(rng):
    x, y = _data(rng)
    with pytest.raises(ValueError, match=r"labels has shape \(13,\); expected \(14,\)"):
        fl.batch_triplet_loss(x, y[:13])
    with pytest.raises(ValueError, match="embeddings must be 2-D"):
        fl.batch_triplet_loss(x[0], y)
    with pytest.raises(ValueError, match="strategy must be one of"):
        fl.batch_triplet_loss(x, y, strategy="hardest")
    with pytest.raises(ValueError, match="metric must be one of"):
        fl.batch_triplet_loss(x, y, metric="manhattan")
    with pytest.raises(ValueError, match="reduction must be one of"):
        fl.batch_triplet_loss(x, y, reduction="none")
    with pytest.raises(ValueError, match="margin must be >= 0 and finite, got -0.1"):
        fl.batch_triplet_loss(x, y, margin=-0.1)
    with pytest.raises(TypeError, match="labels must hold integer class indices"):
        fl.batch_triplet_loss(x, y.astype(float))
    with pytest.raises(TypeError, match="embeddings must be a floating-point array"):
        fl.batch_triplet_loss(x.astype(int), y)
    with pytest.raises(ValueError, match="grad_output must be a scalar"):
        fl.batch_triplet_loss(x, y, grad=True, grad_output=np.ones(3))
    with pytest.raises(ValueError, match="grad_out has shape"):
        fl.batch_triplet_loss(x, y, grad=True, grad_out=np.empty((3, 3)))
    with pytest.raises(ValueError, match="type_of_triplets must be one of"):
        fl.mine_triplets(x, y, type_of_triplets="medium")
    with pytest.raises(ValueError, match="margin must be >= 0 and finite"):
        fl.mine_triplets(x, y, margin=-1.0)
    with pytest.raises(ValueError, match="metric must be one of"):
        fl.pairwise_distances(x, "l1")


# ---------------------------------------------------------------- mine_triplets

def _pml_distance(metric):
    # pytorch-metric-learning normalises embeddings by default; fastloss's metric does not.
    if metric == "cosine":
        return pml_distances.CosineSimilarity()
    return pml_distances.LpDistance(normalize_embeddings=False, power=2 if metric == "squared_euclidean" else 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("kind", ["all", "hard", "semihard", "easy"])
def test_mine_triplets_matches_pml(rng, dtype, metric, kind):
    x, y = _data(rng, b=24, d=4, classes=4, dtype=dtype)
    margin = 0.3
    miner = pml_miners.TripletMarginMiner(margin=margin, type_of_triplets=kind, distance=_pml_distance(metric))
    expected = [t.numpy() for t in miner(torch.tensor(x), torch.tensor(y))]
    got = fl.mine_triplets(x, y, type_of_triplets=kind, margin=margin, metric=metric)
    assert all(g.dtype == np.int64 for g in got)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    naive_set = naive.mined_triplets(x.astype(np.float64), y, kind, margin, metric)
    for g, e in zip(got, naive_set):
        np.testing.assert_array_equal(g, e)


def test_mine_triplets_degenerate(rng):
    x, _ = _data(rng, b=5)
    for labels in ([1] * 5, [0, 1, 2, 3, 4]):
        a, p, n = fl.mine_triplets(x, labels)
        assert a.shape == p.shape == n.shape == (0,)


# ---------------------------------------------------------------- memory

def test_no_cubic_temporaries():
    # NumPy's allocations are traced: at B = 600 a B^3 boolean mask would be 216 MB and a
    # triplet list of batch_all hundreds of MB; the losses keep to a few B x B buffers.
    rng = np.random.default_rng(0)
    b = 600
    x = rng.standard_normal((b, 16))
    y = rng.integers(0, 4, b)
    for strategy in STRATEGIES:
        fl.batch_triplet_loss(x[:20], y[:20], strategy=strategy, grad=True)  # compile outside the trace
        tracemalloc.start()
        fl.batch_triplet_loss(x, y, strategy=strategy, grad=True)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 2.5 * b * b * 8, (strategy, peak)


def test_memory_at_4096_by_512():
    """Peak RSS increase of each strategy at B=4096, D=512 (float32), in a fresh process."""
    bench = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
    script = f"import sys; sys.path.insert(0, {bench!r}); import bench_triplet; bench_triplet.memory_report()"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    for line in out.strip().splitlines():
        assert float(line.split()[-2]) < 256, line
