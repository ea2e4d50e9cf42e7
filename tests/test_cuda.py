"""Runs the GPU kernels' tests (``tests/cuda/``) under Numba's CUDA simulator, in a
process of their own: the simulator is chosen by ``NUMBA_ENABLE_CUDASIM=1`` before numba
is imported, and this process imported numba long ago."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba.cuda", reason="numba-cuda is not installed (pip install 'fastloss[test]')")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_kernels_under_the_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    result = subprocess.run([sys.executable, "-m", "pytest", os.path.join(ROOT, "tests", "cuda"), "-q",
                             "-p", "no:xdist", "-p", "no:cacheprovider", "-o", "addopts="],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
