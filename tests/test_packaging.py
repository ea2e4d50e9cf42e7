"""Packaging: ``python -m build`` makes an sdist and a wheel, and the wheel works when
installed in a fresh virtual environment.

``python -m build`` builds the wheel from the sdist, so a wheel with its compiled
kernels proves that the sdist carries every source the build needs. The wheel is
then installed (no dependencies, no index) into a new virtual environment that sees
this environment's packages (numpy, numba, torch) only after its own; a smoke check of
both backends and a subset of the tests run from a temporary directory against the
installed package, not the source tree: the classification and regression tests
against torch, on the wheel's Cython kernels. About a minute, most of it compiling;
deselect with ``-m "not packaging"``.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(not (ROOT / "setup.py").exists(), reason="needs the source tree"),
]

SMOKE = """
import sys, os
import numpy as np
import fastloss as fl
from fastloss import _backend
assert fl.__file__.startswith(sys.prefix), fl.__file__  # the installed package, not the source tree
assert _backend.cython_built(), "the wheel has no working Cython kernels"
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 10)).astype(np.float32)
t = rng.integers(0, 10, 64)
for backend in ("cython", "numba"):
    value, grad = fl.cross_entropy(x, t, grad=True, backend=backend)
    m = x.max(1, keepdims=True)
    p = np.exp(x - m) / np.exp(x - m).sum(1, keepdims=True)
    expected = -np.log(p[np.arange(64), t]).mean()
    assert abs(float(value) - expected) < 1e-5, (backend, float(value), expected)
    p[np.arange(64), t] -= 1
    assert np.abs(grad - p / 64).max() < 1e-6, backend
print("smoke ok")
"""


def _run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def test_sdist_and_wheel_install_in_a_fresh_environment(tmp_path):
    pytest.importorskip("build")
    pytest.importorskip("Cython")
    dist = tmp_path / "dist"
    # --no-isolation: the build requirements (setuptools, Cython) come from this environment
    # (the test extra), so the test needs no index; CI's own `pip install` builds in isolation.
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)])
    sdist, = dist.glob("fastloss-*.tar.gz")
    wheel, = dist.glob("fastloss-*.whl")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"setup.py", "pyproject.toml", "MANIFEST.in", "fastloss/_cython/fastmath.h",
            "fastloss/_cython/fastmath.pxd", "fastloss/_cython/classification.pyx",
            "fastloss/_cython/elementwise.pyx"} <= names
    assert not any(name.endswith((".c", ".so")) for name in names)  # generated files stay out
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for module in ("classification", "elementwise"):
        assert f"fastloss/_cython/{module}{suffix}" in names

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    # This environment's packages, after the venv's own: numpy, numba, torch without downloads.
    Path(site, "parent-environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--quiet",
          str(wheel)])

    work = tmp_path / "work"
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("test_packaging.py", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FASTLOSS_BACKEND")}
    assert "smoke ok" in _run([str(python), "-c", SMOKE], cwd=work, env=env).stdout
    # With FASTLOSS_BACKEND=cython the torch-oracle tests of the classification and regression
    # losses run on the wheel's Cython kernels, and numba is never imported (the Numba
    # parity tests skip: they would compile every Numba kernel anew for the installed copy).
    done = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_classification.py",
                 "tests/test_regression.py", "tests/test_cython.py"], cwd=work, env={**env, "FASTLOSS_BACKEND": "cython"})
    passed = int(done.stdout.split(" passed")[0].split()[-1])
    assert passed > 400 and " failed" not in done.stdout, done.stdout[-2000:]
