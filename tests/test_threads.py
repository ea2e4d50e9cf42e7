"""Thread control: fastloss.set_num_threads / get_num_threads / num_threads and
FASTLOSS_NUM_THREADS hold for the whole process, on both backends.

The thread count a kernel ran with is read inside it: Numba's ``get_num_threads()``
called in a parallel region gives the count of the calling thread's setting, and the
Cython modules report the cap their loops use. Expected results are the same call on
one thread (the sums are float64 per row or tile, combined in a fixed order, so any
thread count gives the same bits).
"""
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import fastloss as fl
from fastloss import _backend, _threads

ROOT = Path(__file__).resolve().parent.parent
needs_numba = pytest.mark.skipif(_backend.numba is None, reason="numba is not in use (FASTLOSS_BACKEND=cython)")
LIMIT = _threads.max_threads()


@pytest.fixture(autouse=True)
def _restore_setting():
    """Each test starts and ends without a process setting."""
    previous = _threads._count
    _threads._set(None)
    yield
    _threads._set(previous)


if _backend.numba is not None:
    import numba

    @_threads.parallel_kernel  # as fastloss's jit(parallel=True) makes its kernels (here without its cache)
    @numba.njit(parallel=True)
    def _threads_in_kernel(out):
        """Each slot: the thread count seen inside a parallel region of a fastloss kernel."""
        for i in numba.prange(out.shape[0]):
            out[i] = numba.get_num_threads()

    def kernel_threads():
        out = np.zeros(4, np.int64)
        _threads_in_kernel(out)
        assert (out == out[0]).all()
        return int(out[0])


def _in_new_thread(fn):
    result = []
    worker = threading.Thread(target=lambda: result.append(fn()))
    worker.start()
    worker.join()
    return result[0]


@needs_numba
def test_setting_holds_in_a_thread_started_later():
    fl.set_num_threads(1)
    assert kernel_threads() == 1
    assert _in_new_thread(kernel_threads) == 1  # numba.set_num_threads alone would give LIMIT there
    assert _in_new_thread(fl.get_num_threads) == 1


@needs_numba
def test_context_manager_sets_then_restores():
    before = kernel_threads()
    with fl.num_threads(1):
        assert fl.get_num_threads() == 1
        assert kernel_threads() == 1
        assert _in_new_thread(kernel_threads) == 1
    assert kernel_threads() == before == LIMIT
    assert fl.get_num_threads() == LIMIT


def test_context_manager_restores_after_an_exception():
    fl.set_num_threads(LIMIT)
    with pytest.raises(KeyError), fl.num_threads(1):
        raise KeyError
    assert fl.get_num_threads() == LIMIT


@needs_numba
def test_a_thread_is_given_back_its_own_numba_setting():
    """A thread's own numba.set_num_threads stands until fastloss has a setting, and comes back after it."""
    if LIMIT < 2:
        pytest.skip("needs 2 threads")

    def run():
        numba.set_num_threads(1)
        seen = [kernel_threads()]
        with fl.num_threads(2):
            seen.append(kernel_threads())
        seen.append(kernel_threads())
        return seen

    assert _in_new_thread(run) == [1, 2, 1]


@pytest.mark.skipif(not _backend.cython_built(), reason="the Cython extension is not built")
def test_cython_modules_follow_the_setting():
    modules = [_backend.cython_module(name) for name in ("classification", "elementwise")]
    with fl.num_threads(1):
        assert [m.get_num_threads() for m in modules] == [1, 1]
        assert _in_new_thread(lambda: [m.get_num_threads() for m in modules]) == [1, 1]
    if LIMIT >= 2:
        fl.set_num_threads(2)
        assert _in_new_thread(lambda: [m.get_num_threads() for m in modules]) == [2, 2]


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-1, ValueError), (LIMIT + 1, ValueError),
                                      (1.0, TypeError), ("2", TypeError), (True, TypeError), (None, TypeError)])
def test_bad_counts_are_refused(bad, exc):
    with pytest.raises(exc, match="n must be"):
        fl.set_num_threads(bad)
    with pytest.raises(exc, match="n must be"), fl.num_threads(bad):
        pass
    assert _threads._count is None


def test_numpy_integers_are_counts():
    fl.set_num_threads(np.int64(1))
    assert fl.get_num_threads() == 1 and type(fl.get_num_threads()) is int


def _run_with_env(value, code):
    env = {**os.environ, "FASTLOSS_NUM_THREADS": value, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)


def test_environment_variable_is_read_at_import():
    done = _run_with_env("1", "import fastloss; print(fastloss.get_num_threads())")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]


@pytest.mark.parametrize("value", ["0", "two", str(LIMIT + 1)])
def test_bad_environment_variable_fails_the_import(value):
    done = _run_with_env(value, "import fastloss")
    assert done.returncode != 0
    assert "ValueError: FASTLOSS_NUM_THREADS" in done.stderr


BACKENDS = [pytest.param("numba", marks=needs_numba),
            pytest.param("cython", marks=pytest.mark.skipif(not _backend.cython_built(), reason="no Cython build"))]


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_do_not_depend_on_the_thread_count(rng, backend):
    """Per-sample losses and gradients are the same bits on 1 and 2 threads. So is a mean
    on the Cython kernels (the row losses are summed after the parallel loop); Numba's
    row kernels sum the mean in their parallel loop (a prange reduction), one partial sum
    per thread, so there it may differ by float64 rounding."""
    if LIMIT < 2:
        pytest.skip("needs 2 threads")
    x = rng.standard_normal((4096, 64))  # over the serial threshold: the parallel kernels run
    t = rng.integers(0, 64, 4096)
    y = rng.standard_normal((4096, 64))
    results = []
    for n in (1, 2):
        with fl.num_threads(n):
            results.append([fl.cross_entropy(x, t, grad=True, backend=backend),
                            fl.cross_entropy(x, t, reduction="none", backend=backend),
                            fl.mse_loss(x, y, grad=True, backend=backend)])
    (ce_one, ce_grad_one), per_sample_one, (mse_one, mse_grad_one) = results[0]
    (ce_two, ce_grad_two), per_sample_two, (mse_two, mse_grad_two) = results[1]
    np.testing.assert_array_equal(ce_grad_one, ce_grad_two)
    np.testing.assert_array_equal(per_sample_one, per_sample_two)
    np.testing.assert_array_equal(mse_grad_one, mse_grad_two)
    assert mse_one == mse_two
    if backend == "cython":
        assert ce_one == ce_two
    else:
        assert ce_one == pytest.approx(ce_two, rel=1e-14)


def test_cli_threads_option(tmp_path):
    """``fastloss eval --threads 1`` runs under the setting (the loss equals the in-process call)."""
    from fastloss import cli

    x = np.linspace(-2, 2, 60).reshape(20, 3)
    t = np.arange(20) % 3
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    code = ("import sys, fastloss, fastloss.cli as c; c.main(sys.argv[1:]);"
            " print(fastloss.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", code, "eval", "cross_entropy", "--input", str(tmp_path / "x.npy"),
                           "--target", str(tmp_path / "t.npy"), "--threads", "1"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result, threads = done.stdout.splitlines()
    assert float(result.split(": ")[-1]) == pytest.approx(float(fl.cross_entropy(x, t)), rel=1e-14)
    assert threads == "1"
    with pytest.raises(SystemExit) as exit_status:
        cli.main(["eval", "cross_entropy", "--input", "x.npy", "--threads", "0"])
    assert exit_status.value.code == 2
    assert _threads._count is None
