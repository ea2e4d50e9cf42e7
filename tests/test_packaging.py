"""Packaging: ``python -m build`` makes an sdist and a wheel, the wheel works when
installed in a fresh virtual environment, and the README's path (install, run the
command, reinstall editable) leaves a working package.

``python -m build`` builds the wheel from the sdist, so a wheel with its compiled
kernels proves that the sdist carries every source the build needs. The wheel is
then installed (no dependencies, no index) into a new virtual environment that sees
this environment's packages (numpy, numba, torch) only after its own; a smoke check of
both backends and a subset of the tests run from a temporary directory against the
installed package, not the source tree: the classification and regression tests
against torch, on the wheel's Cython kernels. Then, in the same environment, the
README's two commands in order: the installed ``fastloss`` command runs a loss (which
fills Numba's cache), an editable install of a copy of the source tree replaces the
wheel, and ``import fastloss`` and the ``fastloss`` command must work from outside the
checkout. A minute or two, most of it compiling; deselect with ``-m "not packaging"``.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import numpy as np
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
from fastloss._core import backends as _backend
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


class Environment:
    """The built sdist and wheel, and a fresh virtual environment to install them in."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.dist = tmp / "dist"
        # --no-isolation: the build requirements (setuptools, Cython) come from this environment
        # (the test extra), so the test needs no index; CI's own `pip install` builds in isolation.
        _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(self.dist), str(ROOT)])
        self.sdist, = self.dist.glob("fastloss-*.tar.gz")
        self.wheel, = self.dist.glob("fastloss-*.whl")
        venv = tmp / "venv"
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        self.bin = venv / ("Scripts" if os.name == "nt" else "bin")
        self.python = self.bin / "python"
        self.site = Path(_run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
                         .stdout.strip())
        # This environment's packages, after the venv's own: numpy, numba, torch without downloads.
        (self.site / "parent-environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
        # A user's environment: no PYTHONPATH, no backend choice, no cache directory of its own
        # (Numba then picks the cache's place), and a user cache directory inside the test's.
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "FASTLOSS_BACKEND", "NUMBA_CACHE_DIR")}
        self.env["XDG_CACHE_HOME"] = str(tmp / "user-cache")

    def pip_install(self, *args):
        _run([sys.executable, "-m", "pip", "--python", str(self.python), "install", "--no-deps", "--no-index",
              "--quiet", *map(str, args)], env=self.env)

    def run(self, command, cwd, **env):
        return _run(command, cwd=cwd, env={**self.env, **env})


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    pytest.importorskip("build")
    pytest.importorskip("Cython")
    return Environment(tmp_path_factory.mktemp("packaging"))


def test_sdist_and_wheel_install_in_a_fresh_environment(environment):
    env = environment
    with tarfile.open(env.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"setup.py", "pyproject.toml", "MANIFEST.in", "LICENSE", "fastloss/_cython/fastmath.h",
            "fastloss/_cython/fastmath.pxd", "fastloss/_cython/classification.pyx",
            "fastloss/_cython/elementwise.pyx"} <= names
    assert not any(name.endswith((".c", ".so")) for name in names)  # generated files stay out
    with zipfile.ZipFile(env.wheel) as archive:
        names = archive.namelist()
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for module in ("classification", "elementwise"):
        assert f"fastloss/_cython/{module}{suffix}" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), names
    assert {"fastloss/py.typed", "fastloss/__init__.pyi"} <= set(names)  # the types, with the generated stub

    env.pip_install("--force-reinstall", env.wheel)
    work = env.tmp / "work"
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("test_packaging.py", "__pycache__"))
    assert "smoke ok" in env.run([str(env.python), "-c", SMOKE], cwd=work).stdout
    # With FASTLOSS_BACKEND=cython the torch-oracle tests of the classification and regression
    # losses run on the wheel's Cython kernels, and numba is never imported (the Numba
    # parity tests skip: they would compile every Numba kernel anew for the installed copy).
    done = env.run([str(env.python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_classification.py",
                    "tests/test_regression.py", "tests/test_cython.py"], cwd=work, FASTLOSS_BACKEND="cython")
    passed = int(done.stdout.split(" passed")[0].split()[-1])
    assert passed > 400 and " failed" not in done.stdout, done.stdout[-2000:]


def test_install_run_then_editable_reinstall(environment, rng):
    """The README's commands in order: ``pip install .``, the ``fastloss`` command, then
    ``pip install -e .``. Numba must not cache into the installed package (pip would leave
    that ``fastloss/`` folder behind, an empty namespace package hiding the editable install)."""
    env = environment
    env.pip_install("--force-reinstall", env.wheel)
    data = env.tmp / "data"
    data.mkdir()
    logits = rng.standard_normal((300, 7))
    labels = rng.integers(0, 7, 300)
    np.save(data / "logits.npy", logits)
    np.save(data / "labels.npy", labels)
    shifted = logits - logits.max(1, keepdims=True)
    expected = float(np.mean(np.log(np.exp(shifted).sum(1)) - shifted[np.arange(300), labels]))  # the definition
    fastloss = str(env.bin / "fastloss")
    command = [fastloss, "eval", "cross_entropy", "--input", "logits.npy", "--target", "labels.npy", "--json"]

    def evaluate():
        done = env.run(command, cwd=data)
        assert json.loads(done.stdout)["value"] == pytest.approx(expected, rel=1e-12)

    evaluate()  # the installed command, on Numba: compiles and caches its kernels
    installed = env.site / "fastloss"
    assert not [p.name for p in installed.rglob("*") if p.suffix in (".nbi", ".nbc")]
    assert list((env.tmp / "user-cache" / "numba").rglob("*.nbi"))  # cached in the user's cache directory

    # An editable install of a fresh copy of the source tree. Without the Cython sources it
    # builds no extension (the wheel above tests that), so the step takes seconds.
    checkout = env.tmp / "checkout"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "__pycache__", "*.egg-info", "*.so", "*.c", "*.pyx"))
    env.pip_install("--no-build-isolation", "-e", checkout)
    assert not installed.exists()
    where = env.run([str(env.python), "-c", "import fastloss; print(fastloss.__file__)"], cwd=data).stdout
    assert Path(where.strip()) == checkout / "fastloss" / "__init__.py"
    evaluate()
