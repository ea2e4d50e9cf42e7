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
from fastloss._core import backends as _backend
from fastloss._core import threads as _threads

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


def check_same_bits(backend, counts):
    """Losses, reduced or not, and gradients of several losses on each thread count of
    ``counts``: AssertionError unless every count gives the same bits as the first."""
    rng = np.random.default_rng(20261201)
    x = rng.standard_normal((4096, 64))  # over the serial threshold: the parallel kernels run
    t = rng.integers(0, 64, 4096)
    y = rng.standard_normal((4096, 64))
    p = rng.dirichlet(np.ones(64), 4096)
    calls = [lambda: fl.cross_entropy(x, t, grad=True, backend=backend),
             lambda: fl.cross_entropy(x, t, label_smoothing=0.1, grad=True, backend=backend),
             lambda: fl.cross_entropy(x, p, grad=True, backend=backend),
             lambda: fl.nll_loss(x, t, grad=True, backend=backend),
             lambda: fl.cross_entropy(x, t, reduction="none", backend=backend),
             lambda: fl.mse_loss(x, y, grad=True, backend=backend)]
    if backend == "numba":
        calls += [lambda: fl.multi_margin_loss(x, t, grad=True),
                  lambda: fl.triplet_margin_loss(x, y, x[::-1], grad=True),
                  lambda: fl.anchor_loss(x, t, grad=True),
                  lambda: fl.batch_triplet_loss(x[:512], t[:512] % 8, grad=True),
                  # GEMMs in the kernel (fastloss/_core/blas.py): a head of 512 classes
                  lambda: fl.linear_cross_entropy(x, y[:512], t, grad=True),
                  lambda: fl.large_margin_cosine_loss(x, y[:512], t, grad=True)]
    results = []
    for n in counts:
        with fl.num_threads(n):
            results.append([call() for call in calls])
    for other in results[1:]:
        for first, again in zip(results[0], other):
            (value, grad), (value_again, grad_again) = (first, again) if isinstance(first, tuple) else \
                ((first, None), (again, None))
            np.testing.assert_array_equal(value, value_again)
            as_tuple = [g if isinstance(g, tuple) else (g,) for g in (grad, grad_again)]
            for g, g_again in zip(*as_tuple, strict=True):
                np.testing.assert_array_equal(g, g_again)


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_do_not_depend_on_the_thread_count(backend):
    """The same bits on 1, 2 and 8 threads: every kernel adds its row losses up after its
    parallel loop. In a process whose thread pool has 8 threads (NUMBA_NUM_THREADS=8),
    more than this machine's cores if need be."""
    code = f"import test_threads; test_threads.check_same_bits({backend!r}, (1, 2, 8)); print('same')"
    env = {**os.environ, "NUMBA_NUM_THREADS": "8", "OMP_NUM_THREADS": "8",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["same"]


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


def test_import_leaves_numba_and_the_warnings_filters_alone():
    """Importing fastloss (and running a loss) sets no threading layer of Numba's and adds
    no process-wide warnings filter."""
    code = ("import warnings, numba; before = (numba.config.THREADING_LAYER, list(warnings.filters));"
            "import numpy as np, fastloss; fastloss.cross_entropy(np.zeros((4, 3)), [0, 1, 2, 0]);"
            "fastloss.mse_loss(np.zeros(5), np.ones(5));"
            "print(before == (numba.config.THREADING_LAYER, list(warnings.filters)))")
    if _backend.numba is None:
        pytest.skip("numba is not in use")
    done = _run_with_env("", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]


def test_concurrent_calls_under_a_layer_that_is_not_thread_safe():
    """Under Numba's workqueue layer (not thread-safe: two parallel regions launched at once
    abort the process) concurrent calls take turns and give the same numbers as one
    thread's calls."""
    if _backend.numba is None:
        pytest.skip("numba is not in use")
    code = """
import threading
import numpy as np, numba, fastloss
x = np.random.default_rng(0).standard_normal((1 << 15, 16)); t = np.arange(1 << 15) % 16
expected = fastloss.cross_entropy(x, t)
results = []
def work():
    for _ in range(20):
        results.append(fastloss.cross_entropy(x, t) == expected)
threads = [threading.Thread(target=work) for _ in range(4)]
[th.start() for th in threads]; [th.join() for th in threads]
print(numba.threading_layer(), len(results), all(results))
"""
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["workqueue", "80", "True"]
