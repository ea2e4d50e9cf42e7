"""fastloss.dask on a real two-process LocalCluster, against the in-memory call (the oracle,
itself tested against torch in test_classification.py)."""
import os

import numpy as np
import pytest

import fastloss as fl
from fastloss._core.table import LOSSES

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
import fastloss.dask as fld  # noqa: E402


def test_fastloss_dask_does_not_shadow_dask():
    assert da.__name__ == "dask.array" and os.sep + "fastloss" + os.sep not in da.__file__
    assert fld.__name__ == "fastloss.dask" and callable(fld.cross_entropy)


@pytest.fixture(scope="module")
def client():
    # The worker processes import fastloss from the same place as this process.
    root = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = root + (os.pathsep + old if old else "")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()
    if old is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = old


def test_cross_entropy_on_the_cluster(client, rng):
    x = rng.standard_normal((400, 9))
    t = rng.integers(0, 9, 400)
    t[::5] = -100
    w = rng.random(9) + 0.1
    X = da.from_array(x, chunks=(70, 4))  # uneven batch chunks, class axis split too (rechunked)
    T = da.from_array(t, chunks=150)  # other chunks than X: aligned to X's
    lazy = fld.cross_entropy(X, T, w, label_smoothing=0.1, grad=True, grad_output=2.0)
    assert isinstance(lazy[0], da.Array) and isinstance(lazy[1], da.Array)
    assert lazy[1].chunks[0] == X.chunks[0]
    value, grad = client.compute(lazy, sync=True)
    ref_value, ref_grad = fl.cross_entropy(x, t, w, label_smoothing=0.1, grad=True, grad_output=2.0)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-12, atol=1e-15)
    for reduction in ("sum", "none"):
        got = client.compute(fld.cross_entropy(X, T, w, reduction=reduction), sync=True)
        np.testing.assert_allclose(got, fl.cross_entropy(x, t, w, reduction=reduction), rtol=1e-12)


def test_float32_and_other_losses_on_the_cluster(client, rng):
    x = rng.standard_normal((300, 6)).astype(np.float32)
    p = rng.random((300, 6)).astype(np.float32)
    X = da.from_array(x, chunks=(64, 6))
    v, g = client.compute(fld.kl_div(X, p, reduction="batchmean", grad=True), sync=True)
    rv, rg = fl.kl_div(x, p, reduction="batchmean", grad=True)
    assert v.dtype == np.float32 and g.dtype == np.float32
    np.testing.assert_allclose(v, rv, rtol=2e-6)
    np.testing.assert_allclose(g, rg, rtol=2e-6, atol=1e-7)
    weight = rng.random((300, 6)).astype(np.float32)  # per-element: follows the batch
    go = rng.random((300, 6)).astype(np.float32)
    v, g = client.compute(fld.binary_cross_entropy_with_logits(X, p, weight, reduction="none", grad=True,
                                                               grad_output=da.from_array(go, chunks=100)), sync=True)
    rv, rg = fl.binary_cross_entropy_with_logits(x, p, weight, reduction="none", grad=True, grad_output=go)
    np.testing.assert_array_equal(v, rv)
    np.testing.assert_allclose(g, rg, rtol=2e-6, atol=1e-7)


def test_from_npy_reads_on_the_workers(client, rng, tmp_path):
    x = rng.standard_normal((250, 5)).astype(np.float32)
    t = rng.integers(0, 5, 250)
    np.save(tmp_path / "x.npy", x)
    X = fld.from_npy(str(tmp_path / "x.npy"), chunk_rows=60)
    assert X.chunks[0] == (60, 60, 60, 60, 10)
    np.testing.assert_allclose(client.compute(fld.focal_loss(X, t), sync=True), fl.focal_loss(x, t), rtol=2e-6)


def test_ctc_ragged_targets_and_per_sample_factor(rng):
    """CTC's spec: ragged (concatenated) targets, batch axis 1, a mean of loss / target length;
    the in-memory fastloss.ctc_loss is the reference."""
    n, steps, classes = 7, 12, 5
    log_probs = np.log(rng.dirichlet(np.ones(classes), (steps, n)))
    target_lengths = rng.integers(1, 5, n)
    targets = rng.integers(1, classes, int(target_lengths.sum()))
    input_lengths = np.full(n, steps)
    LP = da.from_array(log_probs, chunks=(steps, 3, classes))
    for reduction in ("mean", "sum"):
        value, grad = dask.compute(*fld.ctc_loss(LP, targets, input_lengths, target_lengths,
                                                 reduction=reduction, grad=True), scheduler="sync")
        ref_value, ref_grad = fl.ctc_loss(log_probs, targets, input_lengths, target_lengths, reduction=reduction,
                                          grad=True)
        np.testing.assert_allclose(value, ref_value, rtol=1e-12)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", [entry.name for entry in LOSSES if entry.decomposable])
def test_every_loss_in_chunks_as_in_memory(name, rng):
    """Each loss's example calls with their first input in chunks of two along its batch
    axis, every reduction, value and gradients (the synchronous scheduler: the graph is
    the cluster's)."""
    entry = LOSSES[name]
    for make in (entry.example, *entry.variants):
        args, options = entry.call(rng, np.float64, make)
        axis = entry.axes.get(entry.data[0], 0)
        first = da.from_array(args[0], chunks=tuple(2 if i == axis else -1 for i in range(args[0].ndim)))
        for reduction in entry.reductions:
            grad_output = None if reduction == "none" else 1.5
            value, grads = dask.compute(*fld.loss(name, first, *args[1:], **options, reduction=reduction, grad=True,
                                                  grad_output=grad_output), scheduler="sync")
            ref_value, ref_grads = entry.function(*args, **options, reduction=reduction, grad=True,
                                                  grad_output=grad_output)
            np.testing.assert_allclose(value, ref_value, rtol=1e-13, err_msg=reduction)
            for got, expected in zip(*(g if isinstance(g, tuple) else (g,) for g in (grads, ref_grads))):
                np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15, err_msg=reduction)


def test_not_decomposable_and_bad_calls(rng):
    for loss in (fl.dice_loss, "batch_triplet_loss"):  # marked not decomposable in the table
        with pytest.raises(ValueError, match="not a per-sample loss"):
            fld.loss(loss, rng.standard_normal((4, 3)), np.zeros(4, int))

    def cross_entropy(input, target, reduction="mean"):  # a namesake is not the loss
        return 0.0

    with pytest.raises(ValueError, match="unknown loss"):
        fld.loss(cross_entropy, rng.standard_normal((4, 3)), np.zeros(4, int))
    x = da.from_array(rng.standard_normal((10, 3)), chunks=5)
    with pytest.raises(ValueError, match="the batch sizes differ"):
        fld.cross_entropy(x, np.zeros(9, int))
    with pytest.raises(ValueError, match="reduction must be one of"):
        fld.cross_entropy(x, np.zeros(10, int), reduction="batchmean")
    with pytest.raises(ValueError, match="label_smoothing"):  # bad options raise when the call is made
        fld.cross_entropy(x, np.zeros(10, int), label_smoothing=3.0)


def _never_read():
    raise RuntimeError("the chunk was computed")


def test_the_call_builds_the_graph_without_computing(rng):
    """Making the graph reads no chunk: the result's shape and dtype come from the loss on
    an empty batch made from the arrays' shapes and dtypes (so a chunk that raises when read
    raises only at compute time), with and without gradient."""
    x = da.from_delayed(dask.delayed(_never_read)(), (8, 5), np.float32)
    t = rng.integers(0, 5, 8)
    value = fld.cross_entropy(x, t)
    (none, grad) = fld.cross_entropy(x, t, reduction="none", grad=True)
    assert (value.shape, value.dtype) == ((), np.float32)
    assert (none.shape, none.dtype, grad.shape, grad.dtype) == ((8,), np.float32, (8, 5), np.float32)
    with pytest.raises(RuntimeError, match="the chunk was computed"):
        dask.compute(value, scheduler="sync")
